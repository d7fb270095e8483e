package streamfold

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamfold/streamfold/internal/kafkaconf"
)

// SASL mechanisms Security supports.
const (
	SASLPlain       = "PLAIN"
	SASLSCRAMSHA256 = "SCRAM-SHA-256"
	SASLSCRAMSHA512 = "SCRAM-SHA-512"
)

// Security is how every Kafka client of a runtime (processors, views,
// emitters, replies, the admin client and the table restorer) encrypts and
// authenticates its connections. The zero value is plaintext without
// authentication, what the embedded broker speaks.
type Security struct {
	// TLS, when non-nil, encrypts every connection with this configuration
	// (root CAs, client certificate, server name).
	TLS *tls.Config
	// SASLMechanism is "" (none), SASLPlain, SASLSCRAMSHA256 or
	// SASLSCRAMSHA512; SASLUser and SASLPassword are its credentials. PLAIN
	// sends the password as is: use it over TLS only.
	SASLMechanism string
	SASLUser      string
	SASLPassword  string
}

// Validate reports an unknown mechanism or missing credentials.
func (s Security) Validate() error {
	switch s.SASLMechanism {
	case "":
		if s.SASLUser != "" || s.SASLPassword != "" {
			return errors.New("security: SASL credentials without a SASL mechanism")
		}
		return nil
	case SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512:
	default:
		return fmt.Errorf("security: unknown SASL mechanism %q (%s, %s or %s)", s.SASLMechanism, SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512)
	}
	if s.SASLUser == "" || s.SASLPassword == "" {
		return fmt.Errorf("security: SASL %s needs a user and a password", s.SASLMechanism)
	}
	return nil
}

// String says how clients connect, for errors and logs; never the password.
func (s Security) String() string {
	var parts []string
	if s.TLS != nil {
		parts = append(parts, "TLS")
	} else {
		parts = append(parts, "plaintext")
	}
	if s.SASLMechanism != "" {
		parts = append(parts, fmt.Sprintf("SASL %s as user %q", s.SASLMechanism, s.SASLUser))
	}
	return strings.Join(parts, ", ")
}

// ApplySarama sets c's Net.TLS and Net.SASL, for a sarama client outside the
// runtime (a dead-letter tool) that talks to the same cluster.
func (s Security) ApplySarama(c *sarama.Config) {
	if s.TLS != nil {
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = s.TLS.Clone()
	}
	if s.SASLMechanism == "" {
		return
	}
	c.Net.SASL.Enable = true
	c.Net.SASL.Handshake = true
	c.Net.SASL.Version = sarama.SASLHandshakeV1
	c.Net.SASL.User = s.SASLUser
	c.Net.SASL.Password = s.SASLPassword
	c.Net.SASL.Mechanism = sarama.SASLMechanism(s.SASLMechanism)
	if mech := s.scram(); mech != nil {
		c.Net.SASL.SCRAMClientGeneratorFunc = kafkaconf.SCRAM(mech)
	}
}

// KgoOpts are the same settings as options for franz-go clients.
func (s Security) KgoOpts() []kgo.Opt {
	var opts []kgo.Opt
	if s.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(s.TLS.Clone()))
	}
	switch s.SASLMechanism {
	case SASLPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: s.SASLUser, Pass: s.SASLPassword}.AsMechanism()))
	case SASLSCRAMSHA256, SASLSCRAMSHA512:
		opts = append(opts, kgo.SASL(s.scram()))
	}
	return opts
}

// scram is the SCRAM mechanism of s, nil for other mechanisms. Both clients
// use franz-go's implementation: sarama through kafkaconf.SCRAM.
func (s Security) scram() sasl.Mechanism {
	auth := scram.Auth{User: s.SASLUser, Pass: s.SASLPassword}
	switch s.SASLMechanism {
	case SASLSCRAMSHA256:
		return auth.AsSha256Mechanism()
	case SASLSCRAMSHA512:
		return auth.AsSha512Mechanism()
	}
	return nil
}
