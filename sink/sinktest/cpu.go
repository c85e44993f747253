package sinktest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SelfCPU is the CPU time (user+system) this process has used.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ServerCPU is the CPU time of the private ClickHouse server, found through its pid file
// (.run/clickhouse/clickhouse-server.pid above the working directory, or in $CEKAT_CH_DIR);
// ok is false when it cannot be read. Benchmarks put it beside their own.
func ServerCPU() (cpu time.Duration, ok bool) {
	var candidates []string
	if d := os.Getenv("CEKAT_CH_DIR"); d != "" {
		candidates = append(candidates, filepath.Join(d, "clickhouse-server.pid"))
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			candidates = append(candidates, filepath.Join(dir, ".run", "clickhouse", "clickhouse-server.pid"))
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	for _, c := range candidates {
		pid, err := os.ReadFile(c)
		if err != nil || strings.TrimSpace(string(pid)) == "" {
			continue
		}
		stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
		if err != nil {
			return 0, false
		}
		// After the command in parentheses: state is field 3, utime 14, stime 15 (clock ticks).
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 {
			return 0, false
		}
		ut, err1 := strconv.ParseInt(f[11], 10, 64)
		st, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		const ticksPerSecond = 100 // USER_HZ on Linux
		return time.Duration(ut+st) * time.Second / ticksPerSecond, true
	}
	return 0, false
}
