package streamfold_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/processors"
)

// selfSigned returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "streamfold test broker"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// secureCluster is a kfake cluster that demands SASL (users for every
// mechanism) and, with a certificate, TLS.
func secureCluster(t *testing.T, cert *tls.Certificate) []string {
	t.Helper()
	opts := []kfake.Opt{
		kfake.NumBrokers(1), kfake.Ports(0), kfake.EnableSASL(),
		kfake.Superuser(streamfold.SASLPlain, "plain-user", "plain-pass"),
		kfake.Superuser(streamfold.SASLSCRAMSHA256, "scram256-user", "scram256-pass"),
		kfake.Superuser(streamfold.SASLSCRAMSHA512, "scram512-user", "scram512-pass"),
	}
	if cert != nil {
		opts = append(opts, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}))
	}
	c, err := kfake.NewCluster(opts...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// foldOne opens and runs the counter topology against brokers with sec,
// produces one number with the test's own (authenticated) client and waits
// until the group folded it.
func foldOne(t *testing.T, brokers []string, sec streamfold.Security, producer ...kgo.Opt) {
	t.Helper()
	g := processors.NewGroup("counter")
	processors.Project(g, numbers, add)
	topo := streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(g).WrittenBy(numbers, "test")
	rt, err := streamfold.Open(context.Background(), topo, streamfold.Config{Brokers: brokers, StateDir: t.TempDir(), Replication: 1, Security: sec})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	defer func() {
		cancel()
		assert.NoError(t, <-done)
		assert.NoError(t, rt.Close())
	}()
	require.Eventually(t, rt.Recovered, wait, 10*time.Millisecond)

	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, producer...)...)
	require.NoError(t, err)
	defer cl.Close()
	pctx, pcancel := context.WithTimeout(context.Background(), wait)
	defer pcancel()
	// A key of this test's own: subtests share the cluster, and a key folded
	// by an earlier one would be restored already.
	key := t.Name()
	require.NoError(t, cl.ProduceSync(pctx, numberRecord(t, key, 7)).FirstErr())
	require.Eventually(t, func() bool {
		c, ok := readCounter(t, rt, key)
		return ok && c.Sum == 7
	}, wait, 20*time.Millisecond, "the group never folded the record")
}

func TestSecurity_GivenASASLBroker_WhenTheRuntimeHasCredentials_ThenItFoldsWithEachMechanism(t *testing.T) {
	brokers := secureCluster(t, nil)
	for _, sec := range []streamfold.Security{
		{SASLMechanism: streamfold.SASLSCRAMSHA256, SASLUser: "scram256-user", SASLPassword: "scram256-pass"},
		{SASLMechanism: streamfold.SASLSCRAMSHA512, SASLUser: "scram512-user", SASLPassword: "scram512-pass"},
	} {
		t.Run(sec.SASLMechanism, func(t *testing.T) {
			foldOne(t, brokers, sec, sec.KgoOpts()...)
		})
	}
}

func TestSecurity_GivenATLSAndSASLBroker_WhenTheRuntimeTrustsItsCertificate_ThenPlainOverTLSFolds(t *testing.T) {
	cert, pool := selfSigned(t)
	brokers := secureCluster(t, &cert)
	sec := streamfold.Security{TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, SASLMechanism: streamfold.SASLPlain, SASLUser: "plain-user", SASLPassword: "plain-pass"}
	foldOne(t, brokers, sec, sec.KgoOpts()...)
}

func TestSecurity_GivenSettings_ThenSaramaConfigIsValidAndSaysSo(t *testing.T) {
	for _, sec := range []streamfold.Security{
		{},
		{TLS: &tls.Config{MinVersion: tls.VersionTLS12}},
		{SASLMechanism: streamfold.SASLPlain, SASLUser: "u", SASLPassword: "p"},
		{SASLMechanism: streamfold.SASLSCRAMSHA512, SASLUser: "u", SASLPassword: "p"},
	} {
		c := sarama.NewConfig()
		sec.ApplySarama(c)
		assert.NoError(t, c.Validate(), "%s", sec)
		assert.Equal(t, sec.TLS != nil, c.Net.TLS.Enable)
		assert.Equal(t, sec.SASLMechanism != "", c.Net.SASL.Enable)
		assert.NotContains(t, sec.String(), "p\"", "no password in %s", sec)
	}
}

func TestSecurity_GivenWrongCredentialsOrNoTLS_ThenOpenFailsSayingWhy(t *testing.T) {
	cert, _ := selfSigned(t)
	tlsBrokers := secureCluster(t, &cert)
	saslBrokers := secureCluster(t, nil)
	for name, tc := range map[string]struct {
		brokers []string
		sec     streamfold.Security
		want    string
	}{
		"wrong SCRAM password": {saslBrokers, streamfold.Security{SASLMechanism: streamfold.SASLSCRAMSHA256, SASLUser: "scram256-user", SASLPassword: "nope"}, `SASL SCRAM-SHA-256 as user "scram256-user"`},
		"unknown PLAIN user":   {saslBrokers, streamfold.Security{SASLMechanism: streamfold.SASLPlain, SASLUser: "who", SASLPassword: "nope"}, `SASL PLAIN as user "who"`},
		"untrusted cert":       {tlsBrokers, streamfold.Security{TLS: &tls.Config{MinVersion: tls.VersionTLS12}, SASLMechanism: streamfold.SASLPlain, SASLUser: "plain-user", SASLPassword: "plain-pass"}, "certificate"},
	} {
		t.Run(name, func(t *testing.T) {
			g := processors.NewGroup("counter")
			processors.Project(g, numbers, add)
			topo := streamfold.NewTopology(streamfold.WithPartitions(2)).AddGroup(g).WrittenBy(numbers, "test")
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			rt, err := streamfold.Open(ctx, topo, streamfold.Config{Brokers: tc.brokers, StateDir: t.TempDir(), Replication: 1, Security: tc.sec})
			if rt != nil {
				_ = rt.Close()
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "connect to kafka")
			assert.NotContains(t, err.Error(), "nope", "the password stays out of errors")
		})
	}
}

func TestSecurity_GivenIncompleteSettings_ThenConfigValidateNamesThem(t *testing.T) {
	for _, tc := range []struct {
		sec  streamfold.Security
		want string
	}{
		{streamfold.Security{SASLMechanism: "GSSAPI", SASLUser: "u", SASLPassword: "p"}, "unknown SASL mechanism"},
		{streamfold.Security{SASLMechanism: streamfold.SASLPlain, SASLUser: "u"}, "needs a user and a password"},
		{streamfold.Security{SASLUser: "u", SASLPassword: "p"}, "without a SASL mechanism"},
	} {
		err := streamfold.Config{Brokers: []string{"b:9092"}, StateDir: "x", Replication: 1, Security: tc.sec}.Validate()
		assert.ErrorContains(t, err, tc.want)
	}
}
