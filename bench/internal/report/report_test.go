package report

import (
	"bytes"
	"image/color"
	"image/png"
	"strings"
	"testing"
	"time"
)

func sample() *Results {
	return &Results{
		Started: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Duration: "3m0s",
		Command: "go run ./bench/all -quick", Machine: "2 cores", Quick: true,
		Rows: []Row{
			{Section: "create", Name: "sdbx, from the warm pool", Unit: "ms", N: 10, P50: 5.6, P99: 9, Target: 10, Lower: true, Label: "pool"},
			{Section: "create", Name: "sdbx, cold", Unit: "ms", N: 10, P50: 64.9, P99: 120, Target: 60, Lower: true},
			{Section: "create", Name: "bubblewrap | one-shot", Unit: "ms", N: 10, P50: 22, P99: 30, Note: "sdbx 4× faster"},
			{Section: "throughput", Name: "runCode/s", Unit: "runCode/s", Value: 2987, Target: 5000},
			{Section: "density", Name: "memory", Unit: "MiB", Value: 1.92, Target: 5, Lower: true},
		},
		Skipped: []string{"runc baseline (not installed)"},
	}
}

func TestRowTargets(t *testing.T) {
	rows := sample().Rows
	for _, tc := range []struct {
		row     Row
		met     bool
		verdict string
		target  string
	}{
		{rows[0], true, "met", "p50 ≤ 10 ms"},
		{rows[1], false, "NOT met", "p50 ≤ 60 ms"},
		{rows[2], false, "", ""},
		{rows[3], false, "NOT met", "≥ 5,000 runCode/s"},
		{rows[4], true, "met", "≤ 5 MiB"},
	} {
		t.Run(tc.row.Name, func(t *testing.T) {
			if got := tc.row.Met(); got != tc.met {
				t.Errorf("Met() = %v, want %v", got, tc.met)
			}
			if got := tc.row.Verdict(); got != tc.verdict {
				t.Errorf("Verdict() = %q, want %q", got, tc.verdict)
			}
			if got := tc.row.TargetText(); got != tc.target {
				t.Errorf("TargetText() = %q, want %q", got, tc.target)
			}
			if s := tc.row.Score(); tc.row.Target > 0 && (s >= 1) != tc.met {
				t.Errorf("Score() = %v disagrees with Met() = %v", s, tc.met)
			}
		})
	}
	if got := rows[3].Result(); got != "2,987 runCode/s" {
		t.Errorf("Result() = %q", got)
	}
	if got := rows[0].Result(); got != "p50 5.60 ms · p99 9 ms" {
		t.Errorf("Result() = %q", got)
	}
}

func TestTableAndMarkdown(t *testing.T) {
	res := sample()
	var tbl bytes.Buffer
	if err := res.WriteTable(&tbl); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sdbx, cold", "p50 64.9 ms · p99 120 ms", "NOT met", "2,987 runCode/s", "skipped: runc baseline"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	var md bytes.Buffer
	if err := res.WriteMarkdown(&md, "benchmarks.png"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"`go run ./bench/all -quick`", "![benchmark chart](benchmarks.png)", "| **create** |", `bubblewrap \| one-shot`, "**met**", "Skipped: runc baseline"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
}

func TestSpliceSection(t *testing.T) {
	doc := []byte("# Benchmarks\n\nhand-written intro\n")
	once, err := spliceSection(doc, []byte("first run\n"))
	if err != nil {
		t.Fatal(err)
	}
	twice, err := spliceSection(append(once, "\n## History\n\nkept\n"...), []byte("second run"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(twice)
	if !strings.Contains(s, "hand-written intro") || !strings.Contains(s, "## History\n\nkept") {
		t.Errorf("hand-written text lost:\n%s", s)
	}
	if strings.Contains(s, "first run") || strings.Count(s, "second run") != 1 || strings.Count(s, BeginMarker) != 1 {
		t.Errorf("section not replaced exactly once:\n%s", s)
	}
	if _, err := spliceSection([]byte(EndMarker+"\n"+BeginMarker), nil); err == nil {
		t.Error("markers out of order: no error")
	}
}

func TestPNG(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WritePNG(&b); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatalf("chart is not a PNG: %v", err)
	}
	bounds := img.Bounds()
	if bounds.Dx() != chartWidth || bounds.Dy() < 10*rowHeight {
		t.Fatalf("chart is %v", bounds)
	}
	var white, blue, red, green, dark int
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			switch color.RGBAModel.Convert(img.At(x, y)) {
			case colBackground:
				white++
			case colSdbx:
				blue++
			case colMissed:
				red++
			case colMet:
				green++
			case colText:
				dark++
			}
		}
	}
	// Bars for sdbx latencies, targets met and missed, and text.
	for name, n := range map[string]int{"sdbx bars": blue, "missed-target bars": red, "met-target bars": green, "text": dark} {
		if n < 100 {
			t.Errorf("%s: %d pixels, want a visible amount", name, n)
		}
	}
	if white == bounds.Dx()*bounds.Dy() {
		t.Error("chart is blank")
	}
}

func TestASCII(t *testing.T) {
	if got := ascii("create → first ≤ 10 ms ×2 ünï"); got != "create -> first <= 10 ms x2 ?n?" {
		t.Errorf("ascii = %q", got)
	}
}

func TestMerge(t *testing.T) {
	a, b, c := sample(), sample(), sample()
	b.Rows[1].P50, c.Rows[1].P50 = 50, 70 // cold: 64.9, 50, 70
	b.Rows[3].Value, c.Rows[3].Value = 3500, 2000
	c.Rows = c.Rows[:4] // the last row is missing in one run
	m := Merge([]*Results{a, b, c})
	if m.Runs != 3 || len(m.Rows) != len(a.Rows) {
		t.Fatalf("merged %d runs into %d rows", m.Runs, len(m.Rows))
	}
	if got := m.Rows[1]; got.P50 != 64.9 || !strings.HasPrefix(got.Note, "3 runs: p50 50–70 ms") {
		t.Errorf("cold row: p50 %v, note %q", got.P50, got.Note)
	}
	if got := m.Rows[3]; got.Value != 2987 || got.Note != "3 runs: 2,000–3,500 runCode/s" {
		t.Errorf("throughput row: %v, note %q", got.Value, got.Note)
	}
	if got := m.Rows[4]; !strings.HasPrefix(got.Note, "2 runs:") {
		t.Errorf("row of two runs: note %q", got.Note)
	}
	if got := m.Rows[2].Note; got != "3 runs: p50 22–22 ms; first run: sdbx 4× faster" {
		t.Errorf("note of the first run kept: %q", got)
	}
	if one := Merge([]*Results{a}); one != a {
		t.Error("one run is not returned as it is")
	}
}
