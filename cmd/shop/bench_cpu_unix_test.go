//go:build unix

package main

import (
	"syscall"
	"time"
)

// benchProcessCPU is the CPU time (user + system) the process has used so
// far, every goroutine included: the in-process broker's as well as the
// processor's. Zero if the system cannot say.
func benchProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
