package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/cli"
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
	cfg.Kafka = cli.KafkaSecurity{SASLMechanism: streamfold.SASLSCRAMSHA512, SASLUser: "shop", SASLPassword: "shop-secret"}
	require.NoError(t, cfg.Validate())

	s := startShop(t, cfg)
	resp := s.do(http.MethodPost, "/customers", `{"id":"ada","name":"Ada","email":"ada@example.com"}`, nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	s.awaitVersion("ada", 1)
}

// shop dlq talks to the same secured cluster with the same flags, and says
// why it cannot without them.
func TestDLQCommand_GivenAClusterThatDemandsSCRAM_ThenItListsWithTheCredentialsAndFailsWithout(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.DefaultNumPartitions(1),
		kfake.SeedTopics(1, "customers-dlq"),
		kfake.EnableSASL(), kfake.Superuser(streamfold.SASLSCRAMSHA256, "ops", "ops-secret"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	brokers := strings.Join(c.ListenAddrs(), ",")

	var out, errOut bytes.Buffer
	code := shopMain(context.Background(), []string{"dlq", "list", "--brokers", brokers, "--group", "customers", "--timeout", "10s",
		"--kafka-sasl-mechanism", "scram-sha-256", "--kafka-sasl-user", "ops", "--kafka-sasl-password", "ops-secret"}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())

	out.Reset()
	code = shopMain(context.Background(), []string{"dlq", "list", "--brokers", brokers, "--group", "customers", "--timeout", "3s"}, &out, &errOut)
	require.Equal(t, 1, code, "a cluster that demands SASL refuses a client without it")
}
