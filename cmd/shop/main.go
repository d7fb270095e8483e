// Command shop runs the streamfold reference shop: an embedded Kafka-protocol
// broker (or a real cluster with --brokers), the shop's processor groups and
// its HTTP API.
//
//	shop [run] [flags]          run everything (the default)
//	shop topology [--format]    print the topology: text, mermaid or json
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/streamfold/streamfold"
	"github.com/streamfold/streamfold/shop"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: shop [command] [flags]

commands:
  run        run the broker (unless --brokers), the processors and the HTTP API (default)
  topology   print the topology (--format text|mermaid|json)
  dlq        list, show and re-drive a group's dead letters (shop dlq -h)

run 'shop <command> -h' for its flags.
`

func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "run":
		err = runCommand(ctx, args, stderr)
	case "topology":
		err = topologyCommand(args, stdout, stderr)
	case "dlq":
		err = dlqCommand(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "shop: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "shop: %v\n", err)
		return 1
	}
}

var errUsage = errors.New("usage")

func runCommand(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseRunFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	app, err := start(ctx, cfg, log)
	if err != nil {
		return err
	}
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		app.srv.ShowRestore(f)
	}
	return app.Run(ctx)
}

func topologyCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shop topology", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "text", "text, mermaid or json")
	partitions := fs.Int("partitions", 8, "default partition count")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	t := shop.Topology(*partitions, nil)
	if err := t.Validate(); err != nil {
		return err
	}
	return t.Describe(stdout, streamfold.Format(*format))
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
