package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamfold/streamfold"
)

// The --kafka-sasl-* settings reach every client the shop starts: against a
// cluster that demands SCRAM, the shop comes up, takes a command and serves
// its result.
func TestShop_GivenAClusterThatDemandsSCRAM_WhenStartedWithItsCredentials_ThenItServes(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.DefaultNumPartitions(4),
		kfake.EnableSASL(), kfake.Superuser(streamfold.SASLSCRAMSHA512, "shop", "shop-secret"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cfg := testConfig(t.TempDir())
	cfg.Brokers = c.ListenAddrs()
	cfg.Kafka = KafkaSecurity{SASLMechanism: streamfold.SASLSCRAMSHA512, SASLUser: "shop", SASLPassword: "shop-secret"}
	require.NoError(t, cfg.Validate())

	s := startShop(t, cfg)
	resp := s.do(http.MethodPost, "/customers", `{"id":"ada","name":"Ada","email":"ada@example.com"}`, nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	s.awaitVersion("ada", 1)
}
