//go:build !linux

package tables

// restoreBenchRSS is not measured on this platform.
func restoreBenchRSS() int64 { return 0 }
