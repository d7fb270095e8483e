package kafkaconf

import (
	"context"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/sasl"
)

// SCRAM makes sarama's SCRAM clients from franz-go's mechanism, so that
// sarama and franz-go clients of a runtime authenticate with one
// implementation.
func SCRAM(mech sasl.Mechanism) func() sarama.SCRAMClient {
	return func() sarama.SCRAMClient { return &scramClient{mech: mech} }
}

// scramClient drives a franz-go SASL session through sarama's SCRAMClient
// steps: the first Step sends the client-first message, each later one
// answers the server. Used by one connection's handshake at a time.
type scramClient struct {
	mech sasl.Mechanism
	sess sasl.Session
	done bool
}

// Begin ignores its arguments: the mechanism already holds the credentials.
func (c *scramClient) Begin(_, _, _ string) error { return nil }

func (c *scramClient) Step(challenge string) (string, error) {
	if c.sess == nil {
		sess, first, err := c.mech.Authenticate(context.Background(), "")
		if err != nil {
			return "", err
		}
		c.sess = sess
		return string(first), nil
	}
	done, next, err := c.sess.Challenge([]byte(challenge))
	if err != nil {
		return "", err
	}
	c.done = done
	return string(next), nil
}

func (c *scramClient) Done() bool { return c.done }
