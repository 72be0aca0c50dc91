package measure

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/sdbx/sdbx/bench/internal/server"
	sdbx "github.com/sdbx/sdbx/sdk/go"
)

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(d)
	want := Summary{N: 100, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}
	if s != want {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
	if d[0] != 100*time.Millisecond {
		t.Error("Summarize sorted its argument")
	}
	if got := Summarize([]time.Duration{7}); got.P50 != 7 || got.P99 != 7 || got.N != 1 {
		t.Errorf("one sample: %+v", got)
	}
	if got := Summarize(nil); got != (Summary{}) {
		t.Errorf("no samples: %+v", got)
	}
	if got := Percentile([]time.Duration{1, 2, 3}, 50); got != 2 {
		t.Errorf("p50 of 1,2,3 = %v", got)
	}
}

// TestSmoke runs the harness's measurements briefly against a real server,
// so that they can't rot unnoticed: create → first runCode, warm round
// trips, a context start, streaming and a file transfer.
func TestSmoke(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("sandboxes need root")
	}
	ctx := t.Context()
	bin, err := server.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Run(ctx, bin, "--pool", "none")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c, err := sdbx.New(sdbx.Config{ServerURL: srv.URL, APIKey: srv.Key})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := CreateFirstRun(ctx, c, 2, FirstRun{Code: "print(1)"})
	if err != nil {
		t.Fatal(err)
	}
	if cf.Total.N != 2 || cf.Total.P50 < cf.Create.P50 || cf.Create.P50 <= 0 {
		t.Errorf("create → first runCode: %+v", cf)
	}
	a := NewAPI(srv.URL, srv.Key, 2)
	id, err := a.CreateSandbox(ctx, "python-3-11")
	if err != nil {
		t.Fatal(err)
	}
	defer a.DeleteSandbox(ctx, id)
	if rt, err := WarmRoundTrip(ctx, a, id, 20); err != nil || rt.N != 20 || rt.P50 <= 0 {
		t.Errorf("warm round trip: %+v, %v", rt, err)
	}
	if cs, err := ContextStarts(ctx, a, id, 1); err != nil || cs.N != 1 {
		t.Errorf("context start: %+v, %v", cs, err)
	}
	if lps, err := StreamLines(ctx, a, id, 1000); err != nil || lps <= 0 {
		t.Errorf("streaming: %v lines/s, %v", lps, err)
	}
	if fr, err := FileTransfer(ctx, c, id, 1<<20); err != nil || fr.Write <= 0 || fr.Read <= 0 {
		t.Errorf("files: %+v, %v", fr, err)
	}
	if err := a.DeleteSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	tp, err := Throughput(ctx, srv.URL, srv.Key, srv.Pid(), 1, 2, 300*time.Millisecond)
	if err != nil || tp.Runs == 0 || tp.Rate <= 0 || tp.CPU.Client <= 0 {
		t.Errorf("throughput: %+v, %v", tp, err)
	}
	list, err := c.ListSandboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range list {
		if sb.Status != "terminated" {
			t.Errorf("sandbox %s left %s", sb.ID, sb.Status)
		}
	}
}

// TestBaselines runs each host baseline once where its tool is installed
// (bench/all installs them; the test suite does not need them).
func TestBaselines(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runc needs root")
	}
	for _, tc := range []struct {
		tool string
		run  func(context.Context, int) (Summary, error)
	}{{"bwrap", Bubblewrap}, {"runc", Runc}} {
		t.Run(tc.tool, func(t *testing.T) {
			if _, err := exec.LookPath(tc.tool); err != nil {
				t.Skipf("%s not installed", tc.tool)
			}
			s, err := tc.run(t.Context(), 1)
			if err != nil {
				t.Fatal(err)
			}
			if s.N != 1 || s.P50 <= 0 {
				t.Errorf("%+v", s)
			}
		})
	}
}
