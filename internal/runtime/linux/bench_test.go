package linux

import (
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/network"
	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/runtime/runtimetest"
)

// BenchmarkColdStart splits a cold start the way the server's runs it
// (disk pool, egress internet) into its parts: Create, then the agent's
// first answer (its start after init executed it), then a first and a
// second python3 -S in the sandbox (the first one pays the new overlay's
// cold lookups). Delete is untimed.
func BenchmarkColdStart(b *testing.B) {
	var nm *network.Manager
	e := newDiskEnv(b, withNetwork(&nm))
	var create, agent, first, second time.Duration
	for b.Loop() {
		id := runtimetest.NewID(b, "bench")
		spec := runtimetest.HostSpec(id, e.etc)
		spec.Network.Egress = runtime.EgressInternet
		t0 := time.Now()
		if err := e.d.Create(b.Context(), spec); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := runtimetest.Client(e.d, id).Ping(b.Context()); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		runtimetest.MustExec(b, e.d, id, "python3", "-S", "-c", "pass")
		t3 := time.Now()
		runtimetest.MustExec(b, e.d, id, "python3", "-S", "-c", "pass")
		t4 := time.Now()
		create, agent, first, second = create+t1.Sub(t0), agent+t2.Sub(t1), first+t3.Sub(t2), second+t4.Sub(t3)
		b.StopTimer()
		if err := e.d.Delete(b.Context(), id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(create), "create-ms/op")
	b.ReportMetric(ms(agent), "agent-ms/op")
	b.ReportMetric(ms(first), "python1-ms/op")
	b.ReportMetric(ms(second), "python2-ms/op")
}
