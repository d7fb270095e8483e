package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/internal/promtext"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/queryapi"
	"github.com/streamfold/streamfold/shop"
)

// TestHTTP_GivenARunningShop_ThenOutsideTestingFindingsAreFixed runs the
// findings of outside testing against one shop: each subtest failed before.
func TestHTTP_GivenARunningShop_ThenOutsideTestingFindingsAreFixed(t *testing.T) {
	s := startShop(t, testConfig(t.TempDir()))

	t.Run("an id is in Location escaped", func(t *testing.T) {
		resp := s.do(http.MethodPost, "/customers", `{"id":"a b-ü","name":"A","email":"a@example.com"}`, nil)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		assert.Equal(t, "/customers/a%20b-%C3%BC", resp.Header.Get("Location"))
	})

	t.Run("minVersion of a cart that never existed is 404 at once", func(t *testing.T) {
		start := time.Now()
		p := s.expectProblem(t, http.MethodGet, "/carts/never-was?minVersion=1", "", http.StatusNotFound)
		assert.Equal(t, http.StatusNotFound, p.Status)
		assert.Less(t, time.Since(start), minVersionWait, "the view is caught up: no reason to wait")
	})

	t.Run("one body limit, wherever the body goes", func(t *testing.T) {
		big := `{"id":"big","name":"` + strings.Repeat("x", 9<<20) + `"}`
		want := fmt.Sprintf("larger than %d bytes", queryapi.MaxBodyBytes)
		for _, path := range []string{"/customers", "/carts/big/commands"} {
			p := s.expectProblem(t, http.MethodPost, path, big, http.StatusRequestEntityTooLarge)
			assert.Contains(t, p.Detail, want, path)
		}
	})

	t.Run("metrics parse as Prometheus reads them and serve what the dashboard shows", func(t *testing.T) {
		// Some traffic first, so every family has series: a request, a
		// customer applied, a dead letter, a cart parked for its customer.
		s.do(http.MethodGet, "/customers/ghost", "", nil)
		addProducts(t, s, "apple")
		status, rep := s.command("metrics-cart", "", `{"type":"AddItem","data":{"productId":"apple","quantity":1,"customerId":"metrics-nobody"}}`)
		require.Equal(t, http.StatusOK, status, rep.Detail)
		cl := kafkaClient(t, s.brokers())
		rec, _ := eventRecord(t, "metrics-cust", shop.CustomerRegisteredType, shop.CustomerRegistered{Name: "M", Email: "m@example.com"})
		produce(t, cl, rec, &kgo.Record{Topic: shop.CustomerEvents.Name, Key: []byte("metrics-poison"), Value: []byte("poison")})
		var b []byte
		var fams promtext.Families
		require.Eventually(t, func() bool {
			resp, err := http.Get(s.base + "/metrics")
			require.NoError(t, err)
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			fams, err = promtext.Parse(strings.NewReader(string(b)))
			require.NoError(t, err, "%s", b)
			dead, _ := fams.Sample("streamfold_dead_letters_total", "group", "customers", "class", processors.ClassDecode)
			applied, _ := fams.Sample("streamfold_records_applied_total", "group", "customers", "topic", shop.CustomerEvents.Name)
			parked, _ := fams.Sample("streamfold_records_parked", "group", shop.CustomerCartsGroup)
			return dead >= 1 && applied >= 1 && parked >= 1
		}, wait, 50*time.Millisecond, "the customers group applies the customer and dead-letters the poison, customer-carts parks the cart")
		checkWithPrometheusClient(t, b)
		requireDashboardServed(t, fams)
	})

	t.Run("operator endpoints need the admin token", func(t *testing.T) {
		for _, tc := range []struct{ method, path, body string }{
			{http.MethodGet, "/dlq", ""},
			{http.MethodGet, "/dlq/customers", ""},
			{http.MethodGet, "/dlq/customers/0/0", ""},
			{http.MethodPost, "/dlq/customers/redrive", `{"all":true}`},
			{http.MethodGet, "/parked/customer-carts", ""},
		} {
			for _, auth := range []string{"", "Bearer wrong", "Bearer " + testAdminToken + "x", "Basic " + testAdminToken} {
				req, err := http.NewRequest(tc.method, s.base+tc.path, stringsReader(tc.body))
				require.NoError(t, err)
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				var p problem
				resp := s.send(req, &p)
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s %s with %q", tc.method, tc.path, auth)
				assert.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
				assert.Equal(t, `Bearer realm="shop-admin"`, resp.Header.Get("WWW-Authenticate"))
			}
		}
		// With the token (the harness sends it): served.
		assert.Equal(t, http.StatusOK, s.do(http.MethodGet, "/dlq/customers", "", nil).StatusCode)
		assert.Equal(t, http.StatusOK, s.do(http.MethodGet, "/parked/customer-carts", "", nil).StatusCode)
		// Queries stay open.
		resp, err := http.Get(s.base + "/customers?state=active")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
}

// checkWithPrometheusClient parses an exposition with the Prometheus Python
// client's parser, when a python3 with prometheus_client is installed
// (Debian: python3-prometheus-client).
func checkWithPrometheusClient(t *testing.T, exposition []byte) {
	t.Helper()
	const script = `
import sys
from prometheus_client.parser import text_string_to_metric_families
names = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    if f.type == "unknown":
        sys.exit("family %s has no TYPE" % f.name)
    # The parser names a counter without its _total, so the Go collector's
    # counter go_memstats_alloc_bytes_total and gauge go_memstats_alloc_bytes
    # share a name: a family is its name and type.
    if (f.name, f.type) in names:
        sys.exit("family %s appears twice: its HELP/TYPE and samples are apart" % f.name)
    names[(f.name, f.type)] = True
print(len(names))
`
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import prometheus_client").Run() != nil {
			continue
		}
		cmd := exec.Command(py, "-c", script)
		cmd.Stdin = strings.NewReader(string(exposition))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "prometheus_client: %s", out)
		return
	}
	t.Log("skipped the prometheus_client check: no python3 with prometheus_client (apt-get install python3-prometheus-client)")
}

func TestConfig_GivenNoHTTPFlag_ThenLoopbackWithTheEmbeddedBrokerOnly(t *testing.T) {
	cfg, err := parseRunFlags(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8080", cfg.HTTPAddr)

	cfg, err = parseRunFlags([]string{"--brokers", "kafka:9092"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, ":8080", cfg.HTTPAddr, "a cluster member must be reachable by its peers")

	t.Setenv("SHOP_ADMIN_TOKEN", "from-env")
	cfg, err = parseRunFlags([]string{"--write-token", "w"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "from-env", cfg.AdminToken)
	assert.Equal(t, "w", cfg.WriteToken)

	_, err = parseRunFlags([]string{"--admin-token", "same", "--write-token", "same"}, io.Discard)
	assert.ErrorContains(t, err, "must differ")
}

func TestConfig_GivenKafkaSecurityFlags_ThenTheRuntimeGetsTLSAndSASL(t *testing.T) {
	t.Setenv("SHOP_KAFKA_SASL_PASSWORD", "from-env")
	cfg, err := parseRunFlags([]string{"--brokers", "kafka:9093", "--kafka-tls", "--kafka-sasl-mechanism", "scram-sha-512", "--kafka-sasl-user", "shop"}, io.Discard)
	require.NoError(t, err)
	sec, err := cfg.Kafka.Security()
	require.NoError(t, err)
	assert.NotNil(t, sec.TLS)
	assert.Equal(t, streamfold.Security{TLS: sec.TLS, SASLMechanism: streamfold.SASLSCRAMSHA512, SASLUser: "shop", SASLPassword: "from-env"}, sec)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "u"}, "apply to --brokers"},
		{[]string{"--brokers", "k:9093", "--kafka-sasl-mechanism", "GSSAPI", "--kafka-sasl-user", "u"}, "unknown SASL mechanism"},
		{[]string{"--brokers", "k:9093", "--kafka-tls-cert", "c.pem"}, "go together"},
	} {
		_, err := parseRunFlags(tc.args, io.Discard)
		assert.ErrorContains(t, err, tc.want, "%v", tc.args)
	}

	// -h shows no secret taken from the environment.
	t.Setenv("SHOP_ADMIN_TOKEN", "hunter2")
	var usage strings.Builder
	_, err = parseRunFlags([]string{"-h"}, &usage)
	require.ErrorIs(t, err, flag.ErrHelp)
	assert.Contains(t, usage.String(), "admin-token")
	assert.NotContains(t, usage.String(), "hunter2")
	assert.NotContains(t, usage.String(), "from-env")
}

func TestConfig_GivenACAFile_ThenTLSTrustsIt(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, testCAPEM(t), 0o600))
	cfg, err := parseRunFlags([]string{"--brokers", "k:9093", "--kafka-tls-ca", ca}, io.Discard)
	require.NoError(t, err)
	assert.True(t, cfg.Kafka.TLS, "a CA file implies TLS")
	sec, err := cfg.Kafka.Security()
	require.NoError(t, err)
	require.NotNil(t, sec.TLS.RootCAs)

	require.NoError(t, os.WriteFile(ca, []byte("not a certificate"), 0o600))
	_, err = cfg.Kafka.Security()
	assert.ErrorContains(t, err, "no PEM certificate")
}

func testCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// The database's default lives in --data-dir: the run command's parsed
// configuration reaches the shop's routes, not a zero one (which put
// shop.db in the working directory).
func TestConfig_GivenADataDir_ThenTheDatabaseIsInIt(t *testing.T) {
	t.Setenv("SHOP_DATABASE", "")
	cfg, err := parseRunFlags([]string{"--data-dir", "/var/lib/shop"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join("/var/lib/shop", "shop.db"), cfg.DatabaseURL())
	cfg, err = parseRunFlags([]string{"--database", "postgres://db/shop"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "postgres://db/shop", cfg.DatabaseURL())
}
