// Package measure holds the measurements of the sdbx benchmark harness
// (bench/all) and of the stand-alone bench commands: create → first run,
// warm code round trips, context starts, streaming, files, throughput,
// density and the bubblewrap, runc and Jupyter baselines. Each function
// measures one thing against a running server (or the host) and returns
// raw figures; bench/internal/report renders them.
package measure

import (
	"fmt"
	"slices"
	"time"
)

// Summary is the distribution of a set of timed samples.
type Summary struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

// Summarize sorts a copy of d and returns its nearest-rank percentiles
// (see Percentile). An empty d gives the zero Summary.
func Summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return Summary{N: len(s), P50: Percentile(s, 50), P90: Percentile(s, 90), P99: Percentile(s, 99), Max: s[len(s)-1]}
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted samples
// by nearest rank: the sample at index ⌈p·n/100⌉-1.
func Percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Ms formats d in milliseconds with three significant decimals.
func Ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v < 10 {
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}
