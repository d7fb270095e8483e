package embedded

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

func TestGivenKfakeLogsWhenBridgedThenOnlyWarningsAndErrorsReachSlog(t *testing.T) {
	var buf bytes.Buffer
	lb := &logBridge{l: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	lb.Logf(kfake.LogLevelDebug, "debug %d", 1)
	lb.Logf(kfake.LogLevelInfo, "info %d", 2)
	lb.Logf(kfake.LogLevelWarn, "warn %d", 3)
	lb.Logf(kfake.LogLevelError, "error %d", 4)
	out := buf.String()
	for _, want := range []string{"level=WARN msg=\"warn 3\" component=kfake", "level=ERROR msg=\"error 4\" component=kfake"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "debug 1") || strings.Contains(out, "info 2") {
		t.Errorf("log %q has messages below warn", out)
	}
}

func TestGivenErrorsLoggedWhileClosingThenCloseReturnsThem(t *testing.T) {
	lb := &logBridge{} // nil logger: discard, but still collect
	lb.Logf(kfake.LogLevelError, "before close")
	lb.collectErrors(true)
	lb.Logf(kfake.LogLevelWarn, "a warning")
	lb.Logf(kfake.LogLevelError, "persist to disk: %v", errors.New("disk full"))
	err := lb.collectErrors(false)
	if err == nil || !strings.Contains(err.Error(), "persist to disk: disk full") || strings.Contains(err.Error(), "before close") || strings.Contains(err.Error(), "warning") {
		t.Fatalf("got %v", err)
	}
	if err := lb.collectErrors(false); err != nil {
		t.Fatalf("errors returned twice: %v", err)
	}
}
