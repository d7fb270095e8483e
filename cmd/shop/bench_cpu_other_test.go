//go:build !unix

package main

import "time"

// benchProcessCPU is not measured here; the CPU figures read zero.
func benchProcessCPU() time.Duration { return 0 }
