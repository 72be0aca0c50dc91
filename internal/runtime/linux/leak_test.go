package linux

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sdbx/sdbx/internal/network"
	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/runtime/runtimetest"
)

// TestNoLeaks creates and deletes many sandboxes, a few at a time, and then
// looks for anything left: mounts, cgroups, processes, files, links and
// firewall rules (half of them have egress internet, a few allowlist).
func TestNoLeaks(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		e, nm := newNetEnv(t)
		testNoLeaks(t, e, nm, 50)
	})
	// With the disk pool, also no subvolume or qgroup is left.
	t.Run("disk-pool", func(t *testing.T) {
		e := newDiskEnv(t)
		testNoLeaks(t, e, nil, 20)
		waitNoQgroups(t, e.d.cfg.StateDir)
	})
}

// testNoLeaks runs total sandboxes through e; with nm, a half of them get
// egress internet and a quarter an allowlist.
func testNoLeaks(t *testing.T, e *testEnv, nm *network.Manager, total int) {
	const parallel = 4
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	errs := make(chan error, total)
	for i := range total {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			id := runtimetest.NewID(t, fmt.Sprintf("leak%d", i))
			spec := runtimetest.HostSpec(id, e.etc)
			switch {
			case nm == nil:
			case i%4 == 1 || i%4 == 2:
				spec.Network.Egress = runtime.EgressInternet
			case i%4 == 3:
				spec.Network = runtime.Network{Egress: runtime.EgressAllowlist, Allow: []string{"registry.npmjs.org", "203.0.113.0/24"}}
			}
			if err := e.d.Create(t.Context(), spec); err != nil {
				errs <- fmt.Errorf("Create(%s): %w", id, err)
				return
			}
			res, err := runtimetest.Exec(t.Context(), e.d, id, nil, "sh", "-c", "sleep 100 & echo ok")
			if err != nil || res.Stdout != "ok\n" {
				errs <- fmt.Errorf("exec in %s: %+v, %v", id, res, err)
			}
			if err := e.d.Delete(t.Context(), id); err != nil {
				errs <- fmt.Errorf("Delete(%s): %w", id, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	if nm != nil {
		for _, left := range networkLeftovers(t, nm) {
			t.Errorf("left behind: %s", left)
		}
	}
	if ids, err := e.d.List(context.Background()); err != nil || len(ids) != 0 {
		t.Errorf("List = %v, %v; want nothing", ids, err)
	}
	if ents, err := os.ReadDir(e.d.cfg.StateDir); err != nil || len(ents) != 0 {
		t.Errorf("state dir holds %v (%v)", ents, err)
	}
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mountinfo), "\n") {
		// The disk pool's own mount stays until Close.
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], e.data) && f[4] != e.d.cfg.StateDir {
			t.Errorf("mount %s left in the host's mount table", f[4])
		}
	}
	for _, parent := range cgroupParents(e.d) {
		ents, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range ents {
			if ent.IsDir() {
				t.Errorf("cgroup %s left", filepath.Join(parent, ent.Name()))
			}
		}
	}
	// No process anywhere sits in one of the driver's cgroups.
	procs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), "/"+e.d.cfg.CgroupParent+"/") {
			t.Errorf("process %s left in a sandbox cgroup: %s", filepath.Dir(f), b)
		}
	}
}

// BenchmarkCreateExecDelete measures a sandbox's whole life: Create, the
// first command (true) and Delete.
func BenchmarkCreateExecDelete(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchCreateExecDelete(b, newTestEnv(b)) })
	b.Run("disk-pool", func(b *testing.B) { benchCreateExecDelete(b, newDiskEnv(b)) })
}

func benchCreateExecDelete(b *testing.B, e *testEnv) {
	for b.Loop() {
		id := runtimetest.NewID(b, "bench")
		if err := e.d.Create(b.Context(), runtimetest.HostSpec(id, e.etc)); err != nil {
			b.Fatal(err)
		}
		runtimetest.MustExec(b, e.d, id, "true")
		if err := e.d.Delete(b.Context(), id); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
}

// BenchmarkCreateExecDeleteNetwork is BenchmarkCreateExecDelete per egress
// policy: what a sandbox's link and rules add to its life.
func BenchmarkCreateExecDeleteNetwork(b *testing.B) {
	for _, egress := range []string{runtime.EgressNone, runtime.EgressInternet} {
		b.Run(egress, func(b *testing.B) {
			e, _ := newNetEnv(b)
			for b.Loop() {
				id := runtimetest.NewID(b, "bench")
				spec := runtimetest.HostSpec(id, e.etc)
				spec.Network.Egress = egress
				if err := e.d.Create(b.Context(), spec); err != nil {
					b.Fatal(err)
				}
				runtimetest.MustExec(b, e.d, id, "true")
				if err := e.d.Delete(b.Context(), id); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
}
