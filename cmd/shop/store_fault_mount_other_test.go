//go:build !linux

package main

import "testing"

// storeFaultMount skips: only Linux mounts a tmpfs to fill.
func storeFaultMount(t *testing.T, dir string, size int) {
	t.Helper()
	t.Skip("filling a disk needs a tmpfs, mounted on Linux only")
}
