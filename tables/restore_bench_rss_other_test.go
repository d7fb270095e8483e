//go:build !linux

package tables

// restoreBenchRSS is not measured on this platform.
func restoreBenchRSS() int64 { return 0 }

// restoreBenchBuffer returns an empty buffer of capacity n.
func restoreBenchBuffer(n int) []byte { return make([]byte, 0, n) }
