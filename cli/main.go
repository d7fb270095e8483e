package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/processors"
	"github.com/streamfold/streamfold/serve"
)

// App is what a service brings to its command line: its name, its topology,
// its own flags and its resources. Everything else (the run flags, the
// embedded broker, serving, the topology and dlq commands) is the
// framework's.
type App struct {
	// Name is the program's name ("shop"): usage text, the Kafka client id,
	// the realm of the access tokens.
	Name string
	// EnvPrefix names the environment variables of the flags: "SHOP" reads
	// SHOP_BROKERS, SHOP_DATA_DIR, ... Empty is Name in upper case.
	EnvPrefix string
	// Topology builds the application's topology for a default partition
	// count, logging to log (nil discards), with policy as every group's
	// failure policy.
	Topology func(partitions int, log *slog.Logger, policy processors.Policy) *streamfold.Topology
	// Flags, if set, declares the application's own flags of the run
	// command on fs; env reads their defaults from the environment.
	Flags func(fs *flag.FlagSet, env Env)
	// Parsed, if set, receives the framework's run configuration once its
	// flags are parsed, before Validate: an application whose own settings
	// derive from it (a file under --data-dir) keeps it.
	Parsed func(Config)
	// Validate, if set, checks the application's flags once parsed.
	Validate func() error
	// Routes, if set, registers the application's resources on srv; it is
	// not called with --no-query. close releases what they hold once the
	// server has stopped.
	Routes func(srv *serve.Server, rt *streamfold.Runtime) (close func() error, err error)
}

func (a App) env() Env {
	if a.EnvPrefix != "" {
		return Env(a.EnvPrefix)
	}
	return Env(strings.ToUpper(strings.ReplaceAll(a.Name, "-", "_")))
}

// ErrUsage is a command line that does not parse; the usage has been written.
var ErrUsage = errors.New("usage")

const usage = `usage: %[1]s [command] [flags]

commands:
  run        run the broker (unless --brokers), the processors and the HTTP API (default)
  topology   print the topology (--format text|mermaid|json)
  dlq        list, show and re-drive a group's dead letters (%[1]s dlq -h)

run '%[1]s <command> -h' for its flags.
`

// Main runs the command line args (without the program name) of app:
//
//	<name> [run] [flags]          run everything (the default)
//	<name> topology [--format]    print the topology: text, mermaid or json
//	<name> dlq list|show|redrive  read and re-drive a group's dead letters
//	<name> help
//
// It returns the exit code: 0 done (or help), 2 a usage error, 1 any other
// error, which it writes to stderr. The run command runs until ctx ends.
func Main(ctx context.Context, app App, args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "run":
		err = runCommand(ctx, app, args, stderr)
	case "topology":
		err = topologyCommand(app, args, stdout, stderr)
	case "dlq":
		err = dlqCommand(ctx, app, args, stdout, stderr)
	case "help":
		fmt.Fprintf(stdout, usage, app.Name)
	default:
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n", app.Name, cmd)
		fmt.Fprintf(stderr, usage, app.Name)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", app.Name, err)
		return 1
	}
}

func runCommand(ctx context.Context, app App, args []string, stderr io.Writer) error {
	cfg, err := ParseRunFlags(app, args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(logHandler(stderr, cfg.LogLevel))
	if cfg.CPUProfile != "" {
		stop, err := startCPUProfile(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer stop(log)
	}
	tp, flushTraces, err := tracerFromEnv(ctx, app.Name, log)
	if err != nil {
		return err
	}
	defer func() {
		// Spans still buffered go out before the process ends.
		ctx, stop := context.WithTimeout(context.WithoutCancel(ctx), traceFlushWait)
		defer stop()
		if err := flushTraces(ctx); err != nil {
			log.Warn("traces not flushed", "err", err)
		}
	}()
	if tp != nil {
		cfg.TracerProvider = tp
	}
	r, err := Start(ctx, app, cfg, log)
	if err != nil {
		return err
	}
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		r.Server().ShowRestore(f)
	}
	return r.Run(ctx)
}

func topologyCommand(app App, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(app.Name+" topology", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "text", "text, mermaid or json")
	partitions := fs.Int("partitions", 8, "default partition count")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return ErrUsage
	}
	t := app.Topology(*partitions, nil, processors.DefaultPolicy())
	if err := t.Validate(); err != nil {
		return err
	}
	return t.Describe(stdout, streamfold.Format(*format))
}

// logHandler writes readable text to a terminal and one JSON object per
// line anywhere else (a file, a pipe, a log collector), at level and above.
func logHandler(w io.Writer, level slog.Leveler) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		return slog.NewTextHandler(w, opts)
	}
	return slog.NewJSONHandler(w, opts)
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// startCPUProfile profiles the process's CPU into path until stop.
func startCPUProfile(path string) (stop func(*slog.Logger), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func(log *slog.Logger) {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Error("write CPU profile", "file", path, "err", err)
		}
	}, nil
}
