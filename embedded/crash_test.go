package embedded_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/streamfold/streamfold/embedded"
)

const crashDirEnv = "STREAMFOLD_EMBEDDED_CRASH_DIR"

// TestCrashChild is the process TestGivenABrokerKilledWithoutClose... kills:
// it writes records and a group commit, says so, and waits to be killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestGivenABrokerKilledWithoutCloseWhenRestartedThenAcknowledgedDataSurvives")
	}
	b, err := embedded.Start(embedded.Config{Dir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, b)
	createTopic(t, c, "crash", 1, nil)
	produce(t, c, "crash", records("crash", 20)...)
	consumeWithGroup(t, b, "crash-group", "crash", 15)
	fmt.Println("ready")
	select {} // until killed: no Close, no flush
}

func TestGivenABrokerKilledWithoutCloseWhenRestartedThenAcknowledgedDataSurvives(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			if s.Text() == "ready" {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	var ok bool
	select {
	case ok = <-ready:
	case <-time.After(waitFor):
	}
	_ = cmd.Process.Kill() // SIGKILL: nothing gets to run
	_ = cmd.Wait()
	if !ok {
		t.Fatalf("child did not get ready; stderr:\n%s", stderr.String())
	}

	b := start(t, embedded.Config{Dir: dir, Listen: "127.0.0.1:0"})
	c := newClient(t, b)
	want := make(map[coord]record)
	for i, r := range records("crash", 20) {
		want[coord{0, int64(i)}] = r
	}
	sameRecords(t, readAll(t, c, "crash"), want)
	if offs := groupOffsets(t, c, "crash-group", "crash"); offs[0] != 15 {
		t.Errorf("committed offset after the crash = %v, want 15", offs)
	}
}
