//go:build !unix

package bench

import "time"

// benchProcessCPU is not measured here; the CPU figures read zero.
func benchProcessCPU() time.Duration { return 0 }

// benchChildCPU is not measured here either.
func benchChildCPU(int) time.Duration { return 0 }
