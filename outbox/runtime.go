package outbox

import (
	"time"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/internal/kafkaconf"
)

// KafkaOf is the Kafka of a running topology, for a relay or a sink beside
// it: its brokers, and the framework's producer settings with the
// runtime's TLS and SASL, under clientID.
func KafkaOf(rt *streamfold.Runtime, clientID string) Kafka {
	c := kafkaconf.Sarama(clientID, 0)
	c.Producer.Flush.Frequency = time.Millisecond
	rt.Security().ApplySarama(c)
	return Kafka{Brokers: rt.Brokers(), Config: c, ClientID: clientID}
}
