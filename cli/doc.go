// Package cli is the command line of a streamfold service: what every
// application's binary would otherwise copy.
//
// An application describes itself as an App (its name, its topology, its
// own flags and HTTP resources) and hands its arguments to Main:
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//		defer stop()
//		os.Exit(cli.Main(ctx, cli.App{Name: "orders", Topology: orders.Topology}, os.Args[1:], os.Stdout, os.Stderr))
//	}
//
// Main gives the binary its commands:
//
//   - run (the default): flags and <PREFIX>_* environment variables (flags
//     win; secrets such as --admin-token are read from the environment
//     after parsing, so -h never prints them) become a Config; Start brings
//     up the embedded broker unless --brokers names a cluster, binds the
//     HTTP listener (serve.Listen), opens the runtime (streamfold.Open) and
//     the server (serve.New) with the application's Routes; Running.Run
//     processes and serves until the context ends, then closes HTTP, the
//     runtime and the broker in that order;
//   - topology: the topology as text, Mermaid or JSON;
//   - dlq list|show|redrive: a group's dead letters (package deadletters).
//
// Exit codes: 0 done or help, 2 a usage error, 1 any other error.
//
// ParseRunFlags, Start and Running are exported for tests and for programs
// that embed a service.
package cli
