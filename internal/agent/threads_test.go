package agent

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// threads returns the number of threads of this process.
func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

func TestReserveThreads(t *testing.T) {
	n := threads(t) + 6
	ReserveThreads(n)
	// n locked goroutines had a thread each, besides the caller's; the
	// runtime keeps idle threads, so they are still there.
	runtime.GC()
	if got := threads(t); got < n+1 {
		t.Errorf("%d threads after reserving %d", got, n)
	}
}
