//go:build unix

package tables

import (
	"syscall"
	"time"
)

// restoreBenchCPU returns the CPU time (user and system) the process has
// used: on a machine shared with other work it varies far less than
// elapsed time.
func restoreBenchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
