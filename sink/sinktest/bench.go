package sinktest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// BenchLogf prints a line of figures under the benchmark's name. It writes to stdout rather
// than through b.Logf, whose output the testing package cuts to a few lines for benchmarks.
func BenchLogf(b *testing.B, format string, args ...any) {
	msg := strings.ReplaceAll(strings.TrimRight(fmt.Sprintf(format, args...), "\n"), "\n", "\n        ")
	fmt.Printf("    %s: %s\n", b.Name(), msg)
}

// EnvInt reads a positive integer from the environment variable name, def when it is unset
// or empty; anything else fails the test. Benchmarks take their sizes so.
func EnvInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
