package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The standard OpenTelemetry environment variables that turn tracing on:
// where the OTLP/HTTP exporter sends spans. Without either the service
// traces nothing. The exporter reads the rest of its settings (headers,
// timeout, TLS, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_TRACES_SAMPLER) from the environment itself.
const (
	envOTLPEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envOTLPTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envSDKDisabled        = "OTEL_SDK_DISABLED"
)

// tracerFromEnv returns a tracer provider that exports spans over OTLP/HTTP
// in batches when the environment names an endpoint, and shutdown, which
// flushes the spans still buffered; nil and a no-op shutdown when it names
// none (or OTEL_SDK_DISABLED=true). service is the default service.name.
func tracerFromEnv(ctx context.Context, service string, log *slog.Logger) (*sdktrace.TracerProvider, func(context.Context) error, error) {
	endpoint := os.Getenv(envOTLPTracesEndpoint)
	if endpoint == "" {
		endpoint = os.Getenv(envOTLPEndpoint)
	}
	if endpoint == "" || strings.EqualFold(strings.TrimSpace(os.Getenv(envSDKDisabled)), "true") {
		return nil, func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("otlp trace exporter for %s: %w", endpoint, err)
	}
	// The environment's service name and attributes win over the default.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil {
		return nil, nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	log.Info("tracing", "otlp", endpoint)
	return tp, func(ctx context.Context) error {
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("flush traces to %s: %w", endpoint, err)
		}
		return nil
	}, nil
}

// traceFlushWait bounds the flush of buffered spans at exit.
const traceFlushWait = 5 * time.Second
