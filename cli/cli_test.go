package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/cli"
	"github.com/streamfold/streamfold/embedded"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/serve"
	"github.com/streamfold/streamfold/shop"
)

// testApp is an application other than the shop (its name, its variables,
// its own flag) over the shop's topology.
func testApp(greeting *string) cli.App {
	return cli.App{
		Name: "my-orders",
		Topology: func(partitions int, log *slog.Logger, policy processors.Policy) *streamfold.Topology {
			return shop.Topology(partitions, log, shop.WithPolicy(policy))
		},
		Flags: func(fs *flag.FlagSet, env cli.Env) {
			fs.StringVar(greeting, "greeting", env.String("greeting", "hello"), "what to say ("+env.Name("greeting")+")")
		},
		Validate: func() error {
			if *greeting == "" {
				return errors.New("--greeting must not be empty")
			}
			return nil
		},
	}
}

func TestParseRunFlags_GivenTheAppsVariables_ThenTheyAreDefaultsAndFlagsWin(t *testing.T) {
	t.Setenv("MY_ORDERS_BROKERS", "k1:9092, k2:9092")
	t.Setenv("MY_ORDERS_PARTITIONS", "3")
	t.Setenv("MY_ORDERS_GREETING", "hi")
	t.Setenv("MY_ORDERS_ADMIN_TOKEN", "hunter2")
	var greeting string
	cfg, err := cli.ParseRunFlags(testApp(&greeting), []string{"--partitions", "5", "--no-query"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"k1:9092", "k2:9092"}, cfg.Brokers)
	assert.Equal(t, 5, cfg.Partitions)
	assert.Equal(t, "hi", greeting)
	assert.Equal(t, "hunter2", cfg.AdminToken)
	assert.True(t, cfg.NoQuery)
	assert.Nil(t, cfg.Groups, "all groups by default")
	assert.Equal(t, ":8080", cfg.HTTPAddr, "a cluster member listens on every address")
	assert.Equal(t, -1, cfg.Replication, "the cluster's default")

	// -h names every variable and prints no secret.
	var usage strings.Builder
	_, err = cli.ParseRunFlags(testApp(&greeting), []string{"-h"}, &usage)
	require.ErrorIs(t, err, flag.ErrHelp)
	for _, want := range []string{"(MY_ORDERS_DATA_DIR)", "(MY_ORDERS_ADMIN_TOKEN)", "(MY_ORDERS_KAFKA_SASL_PASSWORD)", "(MY_ORDERS_GREETING)", "my-orders is nobody else's"} {
		assert.Contains(t, usage.String(), want)
	}
	assert.NotContains(t, usage.String(), "hunter2")
}

func TestParseRunFlags_GivenBadFlags_ThenEveryProblemIsReportedAtOnce(t *testing.T) {
	var greeting string
	_, err := cli.ParseRunFlags(testApp(&greeting), []string{"--greeting", "", "--partitions", "0", "--groups", "customers,shipping"}, io.Discard)
	require.Error(t, err)
	assert.False(t, errors.Is(err, cli.ErrUsage))
	for _, want := range []string{"--greeting must not be empty", "--partitions must be at least 1", `unknown group "shipping"`, shop.CartsGroup + "-relay"} {
		assert.ErrorContains(t, err, want)
	}

	_, err = cli.ParseRunFlags(testApp(&greeting), []string{"--no-such-flag"}, io.Discard)
	assert.ErrorIs(t, err, cli.ErrUsage)
	_, err = cli.ParseRunFlags(testApp(&greeting), []string{"stray"}, io.Discard)
	assert.ErrorIs(t, err, cli.ErrUsage)
}

func TestConfig_GivenTLSAndSASLSettings_ThenValidateNamesTheFlags(t *testing.T) {
	cfg := cli.Config{DataDir: "d", HTTPAddr: ":0", Partitions: 1, Replication: 1, SessionTimeout: 10 * time.Second,
		MaxWait: time.Hour, DedupHorizon: time.Hour, StoreMemoryMiB: 1, KafkaListen: "127.0.0.1:0"}
	require.NoError(t, cfg.Validate())
	cfg.Kafka = cli.KafkaSecurity{SASLMechanism: "PLAIN", SASLUser: "u"}
	assert.ErrorContains(t, cfg.Validate(), "apply to --brokers")
	cfg.Brokers = []string{"k:9093"}
	cfg.Kafka = cli.KafkaSecurity{CertFile: "c.pem"}
	assert.ErrorContains(t, cfg.Validate(), "go together")
	cfg.Kafka = cli.KafkaSecurity{TLS: true, CAFile: "/nonexistent/ca.pem"}
	_, err := cfg.Kafka.Security()
	assert.ErrorContains(t, err, "--kafka-tls-ca")
}

func TestMain_GivenEachCommand_ThenItsExitCodeAndOutput(t *testing.T) {
	t.Setenv("MY_ORDERS_BROKERS", "")
	var greeting string
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli.Main(context.Background(), testApp(&greeting), args, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, _ := run("help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "usage: my-orders [command] [flags]")

	code, _, errOut := run("frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `my-orders: unknown command "frobnicate"`)

	code, _, _ = run("run", "--no-such-flag")
	assert.Equal(t, 2, code)
	code, _, errOut = run("--partitions", "0")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "my-orders: --partitions must be at least 1")

	code, out, _ = run("topology", "--format", "mermaid")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, shop.CustomersGroup)
	code, _, _ = run("topology", "--format")
	assert.Equal(t, 2, code)

	code, _, errOut = run("dlq")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "usage: my-orders dlq")
	code, out, _ = run("dlq", "-h")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "--brokers (MY_ORDERS_BROKERS;")
	assert.Contains(t, out, "at --kafka-listen, MY_ORDERS_KAFKA_LISTEN")

	code, _, errOut = run("--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, errOut, "topology", "--help names the commands, not only run's flags")
	assert.Contains(t, errOut, "dlq ")
	assert.Contains(t, errOut, "-greeting", "and run's flags")
	code, _, errOut = run("dlq", "list")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "my-orders dlq list: --group is required")
	code, _, errOut = run("dlq", "redrive", "--group", "customers", "--partition", "0", "--from", "1")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--all")
}

// Start brings up the embedded broker, the runtime and the server with the
// application's routes; Run serves until its context ends and closes the
// routes' resources, the runtime and the broker.
func TestStart_GivenAnAppWithRoutes_WhenRunEnds_ThenEverythingIsClosed(t *testing.T) {
	var greeting string
	app := testApp(&greeting)
	closed := false
	app.Routes = func(srv *serve.Server, rt *streamfold.Runtime) (func() error, error) {
		srv.Handle(http.MethodGet, "/greeting", func(*http.Request) (int, any, error) {
			return http.StatusOK, map[string]string{"greeting": "hello"}, nil
		})
		return func() error { closed = true; return nil }, nil
	}
	cfg, err := cli.ParseRunFlags(app, []string{"--data-dir", t.TempDir(), "--http", "127.0.0.1:0", "--kafka-listen", "127.0.0.1:0", "--partitions", "1", "--groups", "none"}, io.Discard)
	require.NoError(t, err)
	var logs bytes.Buffer
	r, err := cli.Start(context.Background(), app, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "embedded broker listening")
	assert.Len(t, r.Brokers(), 1)
	assert.NotEmpty(t, r.Advertised())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	resp, err := http.Get("http://" + r.HTTPAddr() + "/greeting")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("Run did not return")
	}
	assert.True(t, closed, "the routes' close was not called")
	assert.Contains(t, logs.String(), "stopped cleanly")
}

// Without --brokers, "dlq" reads the embedded broker of a running service
// where --kafka-listen (or its variable) put it, not 127.0.0.1:9092.
func TestMain_GivenDLQWithoutBrokers_ThenItDialsTheKafkaListenAddress(t *testing.T) {
	b, err := embedded.Start(embedded.Config{Dir: t.TempDir(), Listen: "127.0.0.1:0", Partitions: 1})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	admin, err := sarama.NewClusterAdmin(b.Addrs(), kafkaConfig())
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	require.NoError(t, admin.CreateTopic("customers-dlq", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false))
	var greeting string
	for name, setup := range map[string]func() []string{
		"flag": func() []string {
			t.Setenv("MY_ORDERS_KAFKA_LISTEN", "")
			return []string{"--kafka-listen", b.Addrs()[0]}
		},
		"variable": func() []string { t.Setenv("MY_ORDERS_KAFKA_LISTEN", b.Addrs()[0]); return nil },
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("MY_ORDERS_BROKERS", "")
			args := append([]string{"dlq", "list", "--group", "customers", "--timeout", "20s"}, setup()...)
			var out, errb bytes.Buffer
			code := cli.Main(context.Background(), testApp(&greeting), args, &out, &errb)
			assert.Equal(t, 0, code, "stderr: %s", errb.String())
		})
	}
}

func kafkaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	return c
}

func TestParseRunFlags_GivenSecretsAndPasswords_ThenSettingsShowEveryFlagButNoSecret(t *testing.T) {
	t.Setenv("MY_ORDERS_ADMIN_TOKEN", "admin-secret")
	var greeting string
	cfg, err := cli.ParseRunFlags(testApp(&greeting), []string{
		"--partitions", "5", "--greeting", "postgres://shop:db-secret@db:5432/shop",
		"--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "u", "--kafka-sasl-password", "sasl-secret", "--brokers", "k:9092",
	}, io.Discard)
	require.NoError(t, err)

	b, err := json.Marshal(cfg.Settings)
	require.NoError(t, err)
	for _, secret := range []string{"admin-secret", "sasl-secret", "db-secret"} {
		assert.NotContains(t, string(b), secret)
	}
	assert.Equal(t, "set (hidden)", cfg.Settings["admin-token"], "from its variable")
	assert.Equal(t, "set (hidden)", cfg.Settings["kafka-sasl-password"], "from its flag")
	assert.Equal(t, "not set", cfg.Settings["write-token"])
	assert.Equal(t, "postgres://shop:xxxxx@db:5432/shop", cfg.Settings["greeting"], "an application's flag, its URL's password hidden")
	assert.Equal(t, "5", cfg.Settings["partitions"])
	assert.Equal(t, "k:9092", cfg.Settings["brokers"])

	// A key=value DSN hides its password too.
	cfg, err = cli.ParseRunFlags(testApp(&greeting), []string{"--greeting", "host=db user=shop password='a b' dbname=shop"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "host=db user=shop password=xxxxx dbname=shop", cfg.Settings["greeting"])
}
