package linux

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/runtime/runtimetest"
)

// A Create leaves a spare init for the next one; Close kills it, and
// Creates after Close start their own.
func TestSpareInit(t *testing.T) {
	e := newTestEnv(t)
	e.create(t, "spare", nil)
	p := waitSpare(t, e.d)
	pid := p.cmd.Process.Pid
	if n := niceOf(t, pid, pid); n != strconv.Itoa(spareNice) {
		t.Errorf("spare init runs at nice %s, want %d", n, spareNice)
	}
	// The spare is in none of the sandboxes' cgroups.
	if ids, err := e.d.List(t.Context()); err != nil || len(ids) != 1 {
		t.Fatalf("List = %v, %v; want the one sandbox", ids, err)
	}
	// The next Create takes it.
	second := e.create(t, "spare", nil)
	if got, err := readPid(e.d.layout(second).pidFile()); err != nil || got != pid {
		t.Fatalf("second sandbox's init = %d, %v; want the spare %d", got, err, pid)
	}
	// The spare started at a lower priority; the agent runs at the normal
	// one, all its threads.
	if _, err := runtimetest.Client(e.d, second).Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	tasks, err := os.ReadDir(procDir(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		if n := niceOf(t, pid, tid); n != "0" {
			t.Errorf("agent thread %d runs at nice %s, want 0", tid, n)
		}
	}
	next := waitSpare(t, e.d).cmd.Process.Pid
	if err := e.d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(procDir(next)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("spare init %d after Close: %v", next, err)
	}
	// A closed driver still creates, without keeping a spare.
	e.create(t, "spare", nil)
	if spareOf(e.d) != nil {
		t.Fatalf("a closed driver keeps a spare init")
	}
}

// A spare that died is not used: the next Create starts its own init.
func TestSpareInitDied(t *testing.T) {
	e := newTestEnv(t)
	e.create(t, "spare", nil)
	p := waitSpare(t, e.d)
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Killed, not yet reaped: its control socket is closed.
	deadline := time.Now().Add(10 * time.Second)
	for p.waiting() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	id := e.create(t, "spare", nil)
	if got, err := readPid(e.d.layout(id).pidFile()); err != nil || got == p.cmd.Process.Pid {
		t.Fatalf("init of the sandbox = %d, %v; the dead spare was %d", got, err, p.cmd.Process.Pid)
	}
	runtimetest.MustExec(t, e.d, id, "true")
}

// A spare that waited spareAge is replaced by a new one.
func TestSpareInitRenewed(t *testing.T) {
	e := newTestEnv(t)
	e.d.spareAge = 100 * time.Millisecond
	e.create(t, "spare", nil)
	old := waitSpare(t, e.d)
	oldPid := old.cmd.Process.Pid
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p := spareOf(e.d); p != nil && p != old {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the spare was not renewed in 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(procDir(oldPid)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old spare %d is still there: %v", oldPid, err)
	}
	runtimetest.MustExec(t, e.d, e.create(t, "spare", nil), "true")
}

// An init whose driver went away (EOF on its control socket before any
// config) exits.
func TestSpareInitExitsWithoutDriver(t *testing.T) {
	runtimetest.RequireRoot(t)
	d := &Driver{cfg: Config{Exe: runtimetest.BuildBinary(t)}}
	p, err := d.startInit()
	if err != nil {
		t.Fatal(err)
	}
	p.endControl()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("init exited 0 without a config")
		}
	case <-time.After(30 * time.Second):
		p.kill()
		<-done
		t.Fatalf("init still runs 30 s after its control socket closed")
	}
	p.closeFDs()
}

// waitSpare waits until d has a spare init and returns it.
func waitSpare(t *testing.T, d *Driver) *initProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		if p := spareOf(d); p != nil {
			return p
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no spare init after 30 s")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// spareOf returns d's spare init, nil when there is none.
func spareOf(d *Driver) *initProc {
	d.spareMu.Lock()
	defer d.spareMu.Unlock()
	return d.spare
}

func procDir(pid int) string { return "/proc/" + strconv.Itoa(pid) }

// niceOf returns the nice value of thread tid of process pid.
func niceOf(t *testing.T, pid, tid int) string {
	t.Helper()
	b, err := os.ReadFile(procDir(pid) + "/task/" + strconv.Itoa(tid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command's closing parenthesis: state is the first
	// (field 3 of proc(5)), nice the 17th (field 19).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 17 {
		t.Fatalf("stat of %d/%d: %q", pid, tid, b)
	}
	return f[16]
}
