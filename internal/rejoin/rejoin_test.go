package rejoin

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/IBM/sarama"
)

func TestRetriable_GivenConnectionAndGroupProtocolFailures_ThenRejoinIsTheCure(t *testing.T) {
	for _, err := range []error{
		io.EOF,
		fmt.Errorf("join: %w", sarama.ErrRebalanceInProgress),
		sarama.ErrNotCoordinatorForConsumer,
		sarama.ErrOutOfBrokers,
	} {
		if !retriable(err) {
			t.Errorf("%v: not retriable", err)
		}
	}
	for _, err := range []error{errors.New("handler failed"), sarama.ErrTopicAuthorizationFailed} {
		if retriable(err) {
			t.Errorf("%v: retriable", err)
		}
	}
}
