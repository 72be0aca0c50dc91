package linux

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/runtime/runtimetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testEnv is a driver with its own state dir and cgroup parent, whose
// sandboxes and parent cgroups are removed when the test ends.
type testEnv struct {
	d    *Driver
	etc  string // a MinimalEtc
	data string // the "data dir" that holds the state dir
}

// envOption adds to a test driver: it may change the Config (data is the
// test's data dir) before New, and the func it returns, if any, runs at
// the end of the test once the driver's sandboxes are gone.
type envOption func(t testing.TB, data string, cfg *Config) (atEnd func(d *Driver))

func newTestEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	runtimetest.RequireRoot(t)
	data := t.TempDir()
	cfg := Config{
		StateDir:     filepath.Join(data, "sandboxes"),
		Exe:          runtimetest.BuildBinary(t),
		CgroupParent: runtimetest.NewID(t, "sdbx-test"),
	}
	var atEnd []func(*Driver)
	for _, opt := range opts {
		if f := opt(t, data, &cfg); f != nil {
			atEnd = append(atEnd, f)
		}
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		removeAll(t, d)
		for _, f := range atEnd {
			f(d)
		}
	})
	return &testEnv{d: d, etc: runtimetest.MinimalEtc(t), data: data}
}

// removeAll deletes every sandbox of d, closes d and checks that its
// parent cgroups are gone.
func removeAll(t testing.TB, d *Driver) {
	ctx := context.Background()
	ids, err := d.List(ctx)
	if err != nil {
		t.Errorf("cleanup: List: %v", err)
	}
	for _, id := range ids {
		if err := d.Delete(ctx, id); err != nil {
			t.Errorf("cleanup: Delete(%s): %v", id, err)
		}
	}
	// The reapers of this driver's sandboxes end with their inits.
	d.reapers.Wait()
	// With no sandbox left, Close removes the parent cgroups.
	if err := d.Close(); err != nil {
		t.Errorf("cleanup: Close: %v", err)
	}
	for _, dir := range cgroupParents(d) {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cleanup: parent cgroup %s is left after Close (%v)", dir, err)
			os.Remove(dir)
		}
	}
}

// cgroupParents lists the parent cgroup directories of d.
func cgroupParents(d *Driver) []string {
	switch g := d.cg.(type) {
	case *cgroupV1:
		var dirs []string
		for _, dir := range g.parents {
			dirs = append(dirs, dir)
		}
		return dirs
	case *cgroupV2:
		return []string{g.dir}
	}
	return nil
}

// create creates a sandbox from the host spec, changed by mut.
func (e *testEnv) create(t testing.TB, prefix string, mut func(*runtime.Spec)) string {
	t.Helper()
	id := runtimetest.NewID(t, prefix)
	spec := runtimetest.HostSpec(id, e.etc)
	if mut != nil {
		mut(&spec)
	}
	if err := e.d.Create(t.Context(), spec); err != nil {
		t.Fatalf("Create(%s): %v", id, err)
	}
	t.Cleanup(func() {
		if err := e.d.Delete(context.Background(), id); err != nil {
			t.Errorf("cleanup: Delete(%s): %v", id, err)
		}
	})
	return id
}

func TestConformance(t *testing.T) {
	runtimetest.RequireRoot(t)
	runtimetest.Run(t, func(t *testing.T) runtime.Driver { return newTestEnv(t).d })
}

func TestNewValidatesConfig(t *testing.T) {
	runtimetest.RequireRoot(t)
	exe := runtimetest.BuildBinary(t)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no state dir", Config{Exe: exe}},
		{"exe missing", Config{StateDir: t.TempDir(), Exe: "/nonexistent/sdbx"}},
		{"exe is a directory", Config{StateDir: t.TempDir(), Exe: t.TempDir()}},
		{"absolute cgroup parent", Config{StateDir: t.TempDir(), Exe: exe, CgroupParent: "/sdbx"}},
		{"escaping cgroup parent", Config{StateDir: t.TempDir(), Exe: exe, CgroupParent: "../sdbx"}},
		{"tiny default memory", Config{StateDir: t.TempDir(), Exe: exe, DefaultResources: runtime.Resources{MemoryMB: 1}}},
		{"state dir with colon", Config{StateDir: filepath.Join(t.TempDir(), "a:b"), Exe: exe}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("New = %v, want invalid argument", err)
			}
		})
	}
}

func TestCreateRejectsBadOverlays(t *testing.T) {
	e := newTestEnv(t)
	tests := []struct {
		name string
		ovl  []runtime.Overlay
	}{
		{"relative target", []runtime.Overlay{{Target: "usr", Lower: []string{"/usr"}}}},
		{"unclean target", []runtime.Overlay{{Target: "/usr/../etc", Lower: []string{"/usr"}}}},
		{"reserved target", []runtime.Overlay{{Target: "/proc", Lower: []string{"/usr"}}}},
		{"under a reserved target", []runtime.Overlay{{Target: "/dev/x", Lower: []string{"/usr"}}}},
		{"twice the same target", []runtime.Overlay{{Target: "/usr", Lower: []string{"/usr"}}, {Target: "/usr", Lower: []string{"/usr"}}}},
		{"no lower", []runtime.Overlay{{Target: "/usr"}}},
		{"relative lower", []runtime.Overlay{{Target: "/usr", Lower: []string{"usr"}}}},
		{"lower with colon", []runtime.Overlay{{Target: "/usr", Lower: []string{"/us:r"}}}},
		{"missing lower", []runtime.Overlay{{Target: "/usr", Lower: []string{"/nonexistent"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := runtimetest.NewID(t, "badovl")
			err := e.d.Create(t.Context(), runtime.Spec{ID: id, Overlays: tc.ovl})
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Create = %v, want invalid argument", err)
			}
			if _, err := os.Stat(e.d.layout(id).dir()); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("refused Create left %s behind", e.d.layout(id).dir())
			}
		})
	}
}

// A restarted server (a new Driver on the same state) finds, serves,
// stops and deletes the sandboxes of the earlier one.
func TestRestartedServer(t *testing.T) {
	e := newTestEnv(t)
	ctx := t.Context()
	id := e.create(t, "restart", nil)
	runtimetest.MustExec(t, e.d, id, "sh", "-c", "echo before > /workspace/f")
	// The first server shuts down with the sandbox running: the parent
	// cgroups stay.
	if err := e.d.Close(); err != nil {
		t.Fatalf("Close with a sandbox left: %v", err)
	}
	for _, dir := range cgroupParents(e.d) {
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("parent cgroup after Close with a sandbox left: %v", err)
		}
	}

	d2, err := New(e.d.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if ids, err := d2.List(ctx); err != nil || !slices.Contains(ids, id) {
		t.Fatalf("List on the new driver = %v, %v", ids, err)
	}
	if st, err := d2.Status(ctx, id); err != nil || st != runtime.StateRunning {
		t.Fatalf("Status on the new driver = %v, %v", st, err)
	}
	if out := runtimetest.MustExec(t, d2, id, "cat", "/workspace/f"); out != "before\n" {
		t.Fatalf("cat through the new driver = %q", out)
	}
	if err := d2.Stop(ctx, id); err != nil {
		t.Fatalf("Stop on the new driver: %v", err)
	}
	if procs, _ := e.d.cg.Procs(id); len(procs) != 0 {
		t.Fatalf("processes left after Stop: %v", procs)
	}
	if err := d2.Start(ctx, id); err != nil {
		t.Fatalf("Start on the new driver: %v", err)
	}
	runtimetest.MustExec(t, d2, id, "true")
	if err := d2.Delete(ctx, id); err != nil {
		t.Fatalf("Delete on the new driver: %v", err)
	}
	if _, err := e.d.Status(ctx, id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Status after Delete: %v", err)
	}
	d2.reapers.Wait()
	// The last sandbox is gone: Close removes the parent cgroups, and a
	// sandbox created afterwards makes them again.
	if err := d2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, dir := range cgroupParents(d2) {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("parent cgroup %s after Close with no sandbox: %v", dir, err)
		}
	}
	again := e.create(t, "again", nil)
	runtimetest.MustExec(t, e.d, again, "true")
}

// A cgroup without a state directory (a crash between the two) is listed
// and swept by Delete.
func TestSweepOrphanCgroup(t *testing.T) {
	e := newTestEnv(t)
	ctx := t.Context()
	id := runtimetest.NewID(t, "orphan")
	if err := e.d.cg.Create(ctx, id, e.d.cfg.DefaultResources); err != nil {
		t.Fatal(err)
	}
	if ids, _ := e.d.List(ctx); !slices.Contains(ids, id) {
		t.Fatalf("List = %v, want %s", ids, id)
	}
	if st, err := e.d.Status(ctx, id); err != nil || st != runtime.StateStopped {
		t.Fatalf("Status = %v, %v; want stopped", st, err)
	}
	if err := e.d.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if e.d.cg.Exists(id) {
		t.Fatal("cgroup left after Delete")
	}
}

// A failing init is reported by Create, which then leaves nothing behind.
func TestCreateFailureLeavesNothing(t *testing.T) {
	e := newTestEnv(t)
	tests := []struct {
		name string
		exe  string // a script run instead of sdbx
		mut  func(*runtime.Spec)
		want string
	}{
		// Not sdbx: reads its config and exits without executing the agent.
		{"init exits", "#!/bin/sh\ncat <&4 >/dev/null\n", nil, "before starting the agent"},
		// Real init whose setup fails: an overlay onto a file of the /usr
		// overlay cannot be mounted.
		{"setup fails", "", func(s *runtime.Spec) {
			s.Overlays = append(s.Overlays, runtime.Overlay{Target: "/usr/bin/true", Lower: []string{t.TempDir()}})
		}, "/usr/bin/true"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.d.cfg
			if tc.exe != "" {
				cfg.Exe = filepath.Join(t.TempDir(), "init.sh")
				if err := os.WriteFile(cfg.Exe, []byte(tc.exe), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			d, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close() // its spare init
			id := runtimetest.NewID(t, "fail")
			spec := runtimetest.HostSpec(id, e.etc)
			if tc.mut != nil {
				tc.mut(&spec)
			}
			err = d.Create(t.Context(), spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, errdefs.ErrInternal) {
				t.Fatalf("Create = %v, want an internal error containing %q", err, tc.want)
			}
			if _, err := os.Stat(d.layout(id).dir()); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("failed Create left its state dir")
			}
			if d.cg.Exists(id) {
				t.Fatalf("failed Create left its cgroup")
			}
			if _, err := d.Status(t.Context(), id); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("Status after failed Create: %v", err)
			}
			d.reapers.Wait()
		})
	}
}

// A Create whose context ends while init sets up returns a timeout and
// leaves nothing behind.
func TestCreateTimeout(t *testing.T) {
	e := newTestEnv(t)
	cfg := e.d.cfg
	// An init that takes its config and then hangs, holding the status
	// pipe open.
	cfg.Exe = filepath.Join(t.TempDir(), "init.sh")
	if err := os.WriteFile(cfg.Exe, []byte("#!/bin/sh\ncat <&4 >/dev/null\nexec sleep 1000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close() // its spare init
	id := runtimetest.NewID(t, "slow")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = d.Create(ctx, runtimetest.HostSpec(id, e.etc))
	if !errors.Is(err, errdefs.ErrTimeout) {
		t.Fatalf("Create = %v, want a timeout", err)
	}
	if _, err := d.Status(t.Context(), id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Status after the timed-out Create: %v", err)
	}
	d.reapers.Wait()

	expired, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if err := e.d.Create(expired, runtimetest.HostSpec(id, e.etc)); !errors.Is(err, context.Canceled) && !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Create with a cancelled context = %v", err)
	}
	if _, err := os.Stat(e.d.layout(id).dir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Create with a cancelled context left its state dir")
	}
}
