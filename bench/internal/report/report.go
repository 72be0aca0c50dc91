// Package report holds the results of one benchmark harness run
// (bench/all) and renders them: a text table for the terminal, a
// Markdown section for docs/benchmarks.md, a PNG chart and a JSON file.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Results is one harness run.
type Results struct {
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Command  string    `json:"command"` // the command line that produced it
	Machine  string    `json:"machine"` // cores, memory, kernel
	Quick    bool      `json:"quick"`
	Runs     int       `json:"runs,omitempty"` // repeats merged into each row (median, range in the note)
	Rows     []Row     `json:"rows"`
	Skipped  []string  `json:"skipped,omitempty"` // measurements left out, and why
}

// Row is one figure.
type Row struct {
	Section string `json:"section"` // e.g. "create → first runCode('print(1)')"
	Name    string `json:"name"`    // e.g. "sdbx, from the warm pool"
	// Unit is "ms" for latencies (P50 and P99 set) or the unit of Value.
	Unit  string  `json:"unit"`
	N     int     `json:"n,omitempty"` // samples
	P50   float64 `json:"p50,omitempty"`
	P99   float64 `json:"p99,omitempty"`
	Value float64 `json:"value,omitempty"`
	// Target is the goal: P50 (or Value) at most Target when Lower,
	// at least Target otherwise; 0 means no target.
	Target float64 `json:"target,omitempty"`
	Lower  bool    `json:"lower,omitempty"`
	Note   string  `json:"note,omitempty"`    // ratios, conditions
	Label  string  `json:"label,omitempty"`   // short name in the chart (default "Section: Name")
	Alone  string  `json:"command,omitempty"` // a stand-alone command measuring the same
}

// Latency reports whether the row is a latency distribution.
func (r Row) Latency() bool { return r.Unit == "ms" }

// Measured is the figure compared with the target: P50 of a latency,
// otherwise Value.
func (r Row) Measured() float64 {
	if r.Latency() {
		return r.P50
	}
	return r.Value
}

// Met reports whether the row has a target and meets it.
func (r Row) Met() bool {
	if r.Target == 0 {
		return false
	}
	if r.Lower {
		return r.Measured() <= r.Target
	}
	return r.Measured() >= r.Target
}

// Score is how the row stands against its target, as a factor where ≥ 1
// meets it (target/measured for lower-is-better targets); 0 without one.
func (r Row) Score() float64 {
	m := r.Measured()
	switch {
	case r.Target == 0:
		return 0
	case r.Lower && m == 0:
		return 1e9
	case r.Lower:
		return r.Target / m
	default:
		return m / r.Target
	}
}

// ChartLabel is the row's name in the chart.
func (r Row) ChartLabel() string {
	if r.Label != "" {
		return r.Label
	}
	return r.Section + ": " + r.Name
}

// Result formats the row's figure.
func (r Row) Result() string {
	if r.Latency() {
		return fmt.Sprintf("p50 %s · p99 %s", num(r.P50)+" ms", num(r.P99)+" ms")
	}
	return num(r.Value) + " " + r.Unit
}

// TargetText formats the row's target ("p50 ≤ 10 ms", "≥ 5,000 runCode/s").
func (r Row) TargetText() string {
	if r.Target == 0 {
		return ""
	}
	op := "≥"
	if r.Lower {
		op = "≤"
	}
	s := op + " " + num(r.Target) + " " + r.Unit
	if r.Latency() {
		s = "p50 " + s
	}
	return s
}

// Verdict is "met", "not met" or empty without a target.
func (r Row) Verdict() string {
	switch {
	case r.Target == 0:
		return ""
	case r.Met():
		return "met"
	default:
		return "NOT met"
	}
}

// num formats v with three significant digits and thousands separators.
func num(v float64) string {
	switch {
	case v >= 1000:
		s := fmt.Sprintf("%.0f", v)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	case v >= 100 || v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// WriteTable prints the results as an aligned text table.
func (res *Results) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", "measure", "result", "target", "", "note")
	section := ""
	for _, r := range res.Rows {
		if r.Section != section {
			section = r.Section
			fmt.Fprintf(tw, "%s\t\t\t\t\n", section)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", r.Name, r.Result(), r.TargetText(), r.Verdict(), r.Note)
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(tw, "skipped: %s\t\t\t\t\n", s)
	}
	return tw.Flush()
}

// WriteJSON writes the results to path, indented.
func (res *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadJSON reads results written by WriteJSON.
func ReadJSON(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &res, nil
}
