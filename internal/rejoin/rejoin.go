// Package rejoin makes one Consume of a consumer group span sessions: when a
// rebalance ends a session, the member joins again at once.
//
// goka's processor would otherwise wait five seconds (hard-coded) before it
// rejoins, sending no heartbeats meanwhile: every rebalance would stop the
// group for 5 s, and with a session timeout under that the coordinator expels
// the waiting member, so that two instances take turns being thrown out of
// the group.
//
// It also rejoins after a failure of the group protocol itself (a coordinator
// that moved or went away, a join that timed out), which goka treats as fatal
// for the whole processor, for up to two minutes; a failure that lasts longer is
// returned.
package rejoin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/IBM/sarama"
)

const (
	// minSession paces a session that ends as soon as it began.
	minSession = 100 * time.Millisecond
	// rejoinFor is how long a member keeps rejoining after failures of the
	// group protocol before it gives up.
	rejoinFor = 2 * time.Minute
)

// Group wraps cg, the consumer group named group, so that Consume rejoins
// until ctx ends or the group protocol fails for longer than rejoinFor.
func Group(cg sarama.ConsumerGroup, group string, log *slog.Logger) sarama.ConsumerGroup {
	return rejoining{ConsumerGroup: cg, group: group, log: log}
}

type rejoining struct {
	sarama.ConsumerGroup
	group string
	log   *slog.Logger
}

func (r rejoining) Consume(ctx context.Context, topics []string, h sarama.ConsumerGroupHandler) error {
	var failingSince time.Time
	backoff := minSession
	for {
		began := time.Now()
		err := r.ConsumerGroup.Consume(ctx, topics, h)
		if ctx.Err() != nil {
			return nil
		}
		wait := minSession - time.Since(began)
		switch {
		case err == nil:
			failingSince, backoff = time.Time{}, minSession
		case !retriable(err):
			return err
		default:
			if failingSince.IsZero() {
				failingSince = began
			}
			if time.Since(failingSince) > rejoinFor {
				return fmt.Errorf("group %s: rejoining for %s: %w", r.group, rejoinFor, err)
			}
			r.log.Warn("consumer group failed; rejoining", "group", r.group, "err", err, "backoff", backoff)
			wait, backoff = backoff, min(2*backoff, 5*time.Second)
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}
}

// retriable reports a failure of the connection or of the group protocol,
// after which joining again is the cure.
func retriable(err error) bool {
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	for _, kerr := range []sarama.KError{
		sarama.ErrNotCoordinatorForConsumer, sarama.ErrConsumerCoordinatorNotAvailable,
		sarama.ErrOffsetsLoadInProgress, sarama.ErrRebalanceInProgress, sarama.ErrUnknownMemberId,
		sarama.ErrIllegalGeneration, sarama.ErrRequestTimedOut, sarama.ErrNetworkException,
	} {
		if errors.Is(err, kerr) {
			return true
		}
	}
	return errors.Is(err, sarama.ErrOutOfBrokers) || errors.Is(err, sarama.ErrNotConnected)
}
