//go:build linux

package tables

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// restoreBenchRSS returns the process's resident memory in bytes, 0 if it
// cannot be read.
func restoreBenchRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// restoreBenchBuffer returns an empty buffer of capacity n outside the Go
// heap (an anonymous mapping, never unmapped: the benchmark's process is
// short-lived), so that a large input held through a benchmark does not
// raise the garbage collector's target and, with it, the resident memory
// measured; a plain slice if the mapping fails.
func restoreBenchBuffer(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, 0, n)
	}
	return b[:0]
}
