package cli

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Off by default: without an OTLP endpoint in the environment (or with the
// SDK disabled) the run command gets no tracer provider, and the framework
// then traces nothing.
func TestTracerFromEnv_GivenNoEndpointOrTheSDKDisabled_ThenNoProvider(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"no endpoint":  {envOTLPEndpoint: "", envOTLPTracesEndpoint: "", envSDKDisabled: ""},
		"sdk disabled": {envOTLPEndpoint: "http://127.0.0.1:4318", envOTLPTracesEndpoint: "", envSDKDisabled: "true"},
	} {
		t.Run(name, func(t *testing.T) {
			for k, v := range env {
				t.Setenv(k, v)
			}
			tp, shutdown, err := tracerFromEnv(context.Background(), "app", slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			assert.Nil(t, tp)
			assert.NoError(t, shutdown(context.Background()))
		})
	}
	t.Run("traces endpoint alone", func(t *testing.T) {
		t.Setenv(envOTLPEndpoint, "")
		t.Setenv(envSDKDisabled, "")
		t.Setenv(envOTLPTracesEndpoint, "http://127.0.0.1:4318/v1/traces")
		tp, shutdown, err := tracerFromEnv(context.Background(), "app", slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		assert.NotNil(t, tp)
		assert.NoError(t, shutdown(context.Background()), "nothing buffered, nothing to send")
	})
}
