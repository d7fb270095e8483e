// Package bench holds the framework-versus-baseline benchmarks of streamfold:
// the shop's folds, command handling and HTTP API against plain goka and a
// bare net/http + LevelDB server, and a windowed aggregation and a
// stream–stream join against hand-written goka processors doing the same
// work, each end to end on the embedded broker.
// They are Benchmark functions in its test files, run one scenario per
// invocation (-benchtime=1x), and are described, with their figures, in
// docs/BENCHMARKS.md:
//
//	go test -run '^$' -bench BenchmarkFoldCustomers -benchtime=1x ./bench/
//
// Benchmarks of the framework alone use its public API in-process; those of
// the whole shop (its HTTP API, its memory) build cmd/shop and run the binary
// as a child process, as a user would.
package bench
