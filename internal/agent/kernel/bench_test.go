package kernel

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/agentproto"
)

// reportP50 adds the median of durations to b's report.
func reportP50(b *testing.B, durations []time.Duration, unit string) {
	if len(durations) == 0 {
		return
	}
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)/2].Microseconds())/1000, unit)
}

// BenchmarkPythonRoundTrip runs `x += 1` through the manager: request to
// the driver, exec, sync markers on both streams, done.
func BenchmarkPythonRoundTrip(b *testing.B) {
	benchmarkRoundTrip(b, agentproto.LanguagePython, "x = 0")
}

// BenchmarkJavaScriptRoundTrip runs `x += 1` in a Node context.
func BenchmarkJavaScriptRoundTrip(b *testing.B) {
	benchmarkRoundTrip(b, agentproto.LanguageJavaScript, "var x = 0")
}

// benchmarkRoundTrip reports the p50 of `x += 1` in a context of lang
// after running init.
func benchmarkRoundTrip(b *testing.B, lang, init string) {
	m := newTestManager(b)
	id := newContext(b, m, lang)
	mustRun(b, m, id, init)
	ctx := context.Background()
	req := agentproto.ContextExecRequest{ID: id, Code: "x += 1"}
	var durations []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := m.Execute(ctx, req, func(agentproto.Event, bool) {}); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
	}
	reportP50(b, durations, "ms-p50")
}

func benchmarkStart(b *testing.B, lang string) { benchmarkStartWith(b, lang, nil) }

func benchmarkStartWith(b *testing.B, lang string, bc *agentproto.Bytecode) {
	needLanguage(b, lang)
	m := newTestManager(b)
	ctx := context.Background()
	var durations []time.Duration
	for b.Loop() {
		id := "bench-" + randomHex(4)
		start := time.Now()
		if _, err := m.Create(ctx, agentproto.ContextCreateRequest{ID: id, Language: lang, Env: testEnv(), Bytecode: bc}); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
		b.StopTimer()
		if _, err := m.Delete(ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportP50(b, durations, "ms-p50")
}

// BenchmarkStartPython measures Create of a Python context: spawn, driver
// start, ready message.
func BenchmarkStartPython(b *testing.B) { benchmarkStart(b, agentproto.LanguagePython) }

// BenchmarkStartJavaScript measures Create of a JavaScript context.
func BenchmarkStartJavaScript(b *testing.B) { benchmarkStart(b, agentproto.LanguageJavaScript) }
