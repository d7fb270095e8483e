//go:build unix

package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
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

// benchClockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux that Go runs on.
const benchClockTicks = 100

// benchChildCPU is the CPU time (user + system) that the running process pid
// (the shop's child process) has used so far, from /proc/<pid>/stat. Zero if
// the system cannot say.
func benchChildCPU(pid int) time.Duration {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count from after it.
	i := strings.LastIndexByte(string(st), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(st[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * time.Second / benchClockTicks
}
