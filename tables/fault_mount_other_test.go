//go:build !linux

package tables

import "testing"

// faultTestMount skips: only Linux mounts a tmpfs to fill.
func faultTestMount(t *testing.T, size int) string {
	t.Helper()
	t.Skip("filling a disk needs a tmpfs, mounted on Linux only")
	return ""
}
