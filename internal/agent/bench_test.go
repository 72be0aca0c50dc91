package agent_test

import (
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/agent"
	"github.com/sdbx/sdbx/internal/agentproto"
)

// BenchmarkExecRoundTrip measures one exec of `true` through the client:
// connect, spawn, wait, exit event.
func BenchmarkExecRoundTrip(b *testing.B) {
	ta := startAgent(b, agent.ReapChildren)
	req := agentproto.ExecRequest{Args: []string{"/bin/true"}}
	ctx := b.Context()
	start := time.Now()
	for b.Loop() {
		exit, err := ta.client.Exec(ctx, req, nil)
		if err != nil || exit.ExitCode != 0 {
			b.Fatalf("exec: %+v %v", exit, err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "execs/s")
}

// BenchmarkStreamLines measures output streaming: `seq 200000` per
// operation, every line delivered to the callback.
func BenchmarkStreamLines(b *testing.B) {
	const lines = 200000
	ta := startAgent(b, agent.ReapChildren)
	req := agentproto.ExecRequest{Args: []string{"seq", "200000"}, Env: map[string]string{"PATH": testPath}}
	ctx := b.Context()
	total := 0
	start := time.Now()
	for b.Loop() {
		n := 0
		exit, err := ta.client.Exec(ctx, req, func(ev agentproto.Event) {
			if ev.Type == agentproto.EventStdout {
				n++
			}
		})
		if err != nil || exit.ExitCode != 0 || n != lines {
			b.Fatalf("exec: %+v %v, %d lines", exit, err, n)
		}
		total += n
	}
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "lines/s")
}
