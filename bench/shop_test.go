package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamfold/streamfold/queryapi"
)

// TestMain removes the shop binary the benchmarks built, if any. Run with
// bareDBEnv set, the test binary is BenchmarkGetCustomer's bare server in a
// process of its own instead.
func TestMain(m *testing.M) {
	if dir := os.Getenv(bareDBEnv); dir != "" {
		os.Exit(bareServerMain(dir))
	}
	code := m.Run()
	if shopBuild.dir != "" {
		_ = os.RemoveAll(shopBuild.dir)
	}
	os.Exit(code)
}

// shopBuild is cmd/shop built once per test binary.
var shopBuild struct {
	once sync.Once
	dir  string // holds the binary
	path string
	err  error
}

// shopBinary builds cmd/shop from this module (the first benchmark that
// needs it waits for the build) and returns the binary's path.
func shopBinary(b testing.TB) string {
	b.Helper()
	shopBuild.once.Do(func() {
		gomod, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			shopBuild.err = err
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(gomod)))
		if shopBuild.dir, err = os.MkdirTemp("", "streamfold-bench-"); err != nil {
			shopBuild.err = err
			return
		}
		path := filepath.Join(shopBuild.dir, "shop")
		build := exec.Command("go", "build", "-o", path, "./cmd/shop")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			shopBuild.err = &buildError{err: err, out: string(out)}
			return
		}
		shopBuild.path = path
	})
	if shopBuild.err != nil {
		b.Fatalf("build cmd/shop: %v", shopBuild.err)
	}
	return shopBuild.path
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// shopProcess is the shop binary running as a child process.
type shopProcess struct {
	cmd  *exec.Cmd
	base string // http://host:port of its HTTP API
	// run says when the process exits (done, err) and stops it (cancel:
	// SIGTERM, the shop's graceful shutdown).
	run *benchRunning

	mu   sync.Mutex
	tail []string // its last log lines
}

// runShopProcess starts the shop binary with args and waits until it
// listens and /readyz answers 200. The process is killed at the end of the
// benchmark if it still runs.
func runShopProcess(b testing.TB, args ...string) *shopProcess {
	b.Helper()
	return startProcess(b, exec.Command(shopBinary(b), args...), true)
}

// startProcess starts cmd and waits until it logs where it listens, and
// with ready until /readyz answers 200.
func startProcess(b testing.TB, cmd *exec.Cmd, ready bool) *shopProcess {
	b.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &shopProcess{cmd: cmd, run: &benchRunning{done: make(chan struct{})}}
	p.run.cancel = func() { _ = cmd.Process.Signal(syscall.SIGTERM) }
	addr := make(chan string, 1)
	go func() {
		defer close(p.run.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			l := sc.Text()
			p.mu.Lock()
			p.tail = append(p.tail, l)
			if len(p.tail) > 30 {
				p.tail = p.tail[1:]
			}
			p.mu.Unlock()
			// The shop logs where it listens: a JSON line off a terminal
			// (the bare server, text: the address at its end).
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "http listening" {
				if a, ok := m["addr"].(string); ok {
					select {
					case addr <- a:
					default:
					}
				}
			} else if _, rest, ok := strings.Cut(l, "http listening"); ok {
				if i := strings.LastIndex(rest, "addr="); i >= 0 {
					select {
					case addr <- strings.Trim(rest[i+len("addr="):], `"`):
					default:
					}
				}
			}
		}
		p.run.err = cmd.Wait()
	}()
	b.Cleanup(p.kill)
	select {
	case a := <-addr:
		p.base = "http://" + a
	case <-p.run.done:
		b.Fatalf("shop process exited before listening: %v\n%s", p.run.err, p.logTail())
	case <-time.After(benchPatience):
		b.Fatalf("shop process never listened:\n%s", p.logTail())
	}
	if !ready {
		return p
	}
	probe := newBenchClient(1)
	defer probe.CloseIdleConnections()
	benchAwait(b, p.run, "shop process ready (GET /readyz 200)", func() bool {
		resp, err := probe.Get(p.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

func (p *shopProcess) logTail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// kill ends the process at once (SIGKILL) and waits for it.
func (p *shopProcess) kill() {
	_ = p.cmd.Process.Kill()
	<-p.run.done
}

// bareDBEnv names the LevelDB directory the bare server process serves.
const bareDBEnv = "STREAMFOLD_BENCH_BARE_DB"

// bareServerMain serves dir's documents as BenchmarkGetCustomer's bare server
// does, on a loopback port it logs as the shop logs its own, until SIGTERM.
func bareServerMain(dir string) int {
	db, err := leveldb.OpenFile(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "msg=\"http listening\" addr=%s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := queryapi.ServeListener(ctx, ln, bareHandler(db), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// runBareProcess starts this test binary as the bare server of dir and
// waits until it listens; it is killed at the end of the benchmark.
func runBareProcess(b testing.TB, dir string) *shopProcess {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), bareDBEnv+"="+dir)
	return startProcess(b, cmd, false)
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(b testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// kafkaClient is a plain Kafka client, as any producer outside the shop
// would use; franz-go's default partitioner is the Java client's murmur2.
func kafkaClient(b testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	return cl
}
