package report

import (
	"fmt"
	"slices"
	"strings"
)

// Merge combines repeated runs of the same measurements: each row's
// figures become the median over the runs that have it, and its note
// gains the range ("3 runs: p50 41.9–64.9 ms"). Rows keep the order of
// their first appearance; header fields come from the first run. One run
// is returned as it is.
func Merge(runs []*Results) *Results {
	if len(runs) == 0 {
		return &Results{}
	}
	if len(runs) == 1 {
		return runs[0]
	}
	out := *runs[0]
	out.Runs, out.Rows, out.Skipped = len(runs), nil, nil
	type key struct{ section, name string }
	var order []key
	byKey := map[key][]Row{}
	for _, res := range runs {
		for _, r := range res.Rows {
			k := key{r.Section, r.Name}
			if _, ok := byKey[k]; !ok {
				order = append(order, k)
			}
			byKey[k] = append(byKey[k], r)
		}
		for _, s := range res.Skipped {
			if !slices.Contains(out.Skipped, s) {
				out.Skipped = append(out.Skipped, s)
			}
		}
	}
	for _, k := range order {
		out.Rows = append(out.Rows, mergeRows(byKey[k]))
	}
	return &out
}

// mergeRows returns the median row of rows (one measurement, several
// runs) with the range in its note.
func mergeRows(rows []Row) Row {
	r := rows[0]
	if len(rows) == 1 {
		return r
	}
	pick := func(f func(Row) float64) (median, lo, hi float64) {
		v := make([]float64, len(rows))
		for i, row := range rows {
			v[i] = f(row)
		}
		slices.Sort(v)
		return v[(len(v)-1)/2], v[0], v[len(v)-1]
	}
	var rng string
	if r.Latency() {
		var lo, hi float64
		r.P50, lo, hi = pick(func(x Row) float64 { return x.P50 })
		r.P99, _, _ = pick(func(x Row) float64 { return x.P99 })
		rng = fmt.Sprintf("%d runs: p50 %s–%s ms", len(rows), num(lo), num(hi))
	} else {
		var lo, hi float64
		r.Value, lo, hi = pick(func(x Row) float64 { return x.Value })
		rng = fmt.Sprintf("%d runs: %s–%s %s", len(rows), num(lo), num(hi), r.Unit)
	}
	// A note that carries figures of one run (e.g. "created in 9.4s")
	// stays that of the first run, said so.
	r.Note = strings.TrimSpace(rng + "; first run: " + r.Note)
	r.Note = strings.TrimSuffix(r.Note, "; first run:")
	return r
}
