//go:build !unix

package tables

import "time"

// restoreBenchCPU is not measured on this platform.
func restoreBenchCPU() time.Duration { return 0 }
