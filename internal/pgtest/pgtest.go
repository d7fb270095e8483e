// Package pgtest runs a private PostgreSQL server for the tests of one test
// binary, from the distribution's packages (Debian's postgresql: initdb and
// postgres under /usr/lib/postgresql/<version>/bin), so `go test ./...` needs
// no server set up beforehand.
//
// The server is started on first use, on a free loopback port, with
// wal_level=logical (the log-tailing relay needs it) and trust
// authentication, and every caller of [Database] gets a fresh database in it.
// [Main] stops the server when the package's tests end.
//
// STREAMFOLD_TEST_POSTGRES=postgres://… uses a running server instead (its
// role must be allowed to create databases and replication slots). Without
// either, tests that need PostgreSQL skip, unless
// STREAMFOLD_REQUIRE_POSTGRES=1 (set by .ci/run), where they fail: CI must
// not pass by skipping them.
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

var (
	once     sync.Once
	srv      *server
	startErr error
	dbs      atomic.Int64
)

// Main runs the package's tests and then stops the private server, if one
// was started. Use it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if srv != nil {
		srv.stop()
	}
	return code
}

// Database returns the URL of a new, empty database for t on the private
// server (or on STREAMFOLD_TEST_POSTGRES's), skipping t when PostgreSQL is
// not installed (failing it under STREAMFOLD_REQUIRE_POSTGRES=1).
func Database(t testing.TB) string {
	t.Helper()
	base := os.Getenv("STREAMFOLD_TEST_POSTGRES")
	if base == "" {
		once.Do(func() { srv, startErr = start() })
		if errors.Is(startErr, errNotInstalled) && os.Getenv("STREAMFOLD_REQUIRE_POSTGRES") == "" {
			t.Skipf("PostgreSQL tests skip: %v (apt-get install postgresql, or set STREAMFOLD_TEST_POSTGRES)", startErr)
		}
		if startErr != nil {
			t.Fatalf("pgtest: %v", startErr)
		}
		base = srv.url("postgres")
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbs.Add(1))
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("pgtest: open %s: %v", base, err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return withDatabase(base, name)
}

var errNotInstalled = errors.New("initdb and postgres not found")

type server struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan error
}

func (s *server) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// withDatabase replaces the database of a postgres:// URL.
func withDatabase(base, db string) string {
	// postgres://user@host:port/db?query
	q := ""
	if i := strings.IndexByte(base, '?'); i >= 0 {
		base, q = base[:i], base[i:]
	}
	schemeEnd := len("postgres://")
	if i := strings.IndexByte(base[schemeEnd:], '/'); i >= 0 {
		base = base[:schemeEnd+i]
	}
	return base + "/" + db + q
}

// binDir finds the newest installed PostgreSQL's binaries.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errNotInstalled
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// start initialises a cluster in a temporary directory and starts it. As
// root it runs as the postgres user, since PostgreSQL refuses to run as root.
func start() (*server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "streamfold-pg-")
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and no postgres user to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &server{dir: dir, port: port, done: make(chan error, 1)}
		s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data,
			"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-k", dir,
			"-c", "wal_level=logical", "-c", "max_replication_slots=20", "-c", "max_wal_senders=20",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=200", "-c", "shared_buffers=32MB")
		var log bytes.Buffer
		s.cmd.Stdout, s.cmd.Stderr = &log, &log
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
		if err := s.cmd.Start(); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		go func() { s.done <- s.cmd.Wait() }()
		if err := s.ready(); err != nil {
			s.stop()
			if attempt < 3 {
				continue // most likely the port was taken meanwhile
			}
			return nil, fmt.Errorf("postgres did not start: %v\n%s", err, log.String())
		}
		return s, nil
	}
}

// ready waits until the server accepts queries, or exits, or a minute passed.
func (s *server) ready() error {
	db, err := sql.Open("pgx", s.url("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case werr := <-s.done:
			s.done <- werr
			return fmt.Errorf("exited: %v", werr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// stop shuts the server down fast and removes its files.
func (s *server) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	_ = os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
