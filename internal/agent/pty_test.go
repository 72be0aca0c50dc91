package agent_test

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/agent"
	"github.com/sdbx/sdbx/internal/agent/procfs"
	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// ptyReader follows a terminal session's output.
type ptyReader struct {
	t   *testing.T
	c   *agentclient.Client
	id  string
	off int64
	buf bytes.Buffer
}

// waitFor reads until the output read so far matches re (or the session
// ended: then it fails).
func (r *ptyReader) waitFor(re *regexp.Regexp) []string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var m []string
	final, err := r.c.PTYOutput(ctx, r.id, r.off, true, func(pl agentproto.ProcPayload) {
		r.buf.Write(pl.Data)
		r.off = pl.Offset + int64(len(pl.Data))
		if m == nil {
			if m = re.FindStringSubmatch(r.buf.String()); m != nil {
				cancel()
			}
		}
	})
	if m != nil {
		return m
	}
	r.t.Fatalf("output never matched %q (err %v, final %+v); got %q", re, err, final.Info, r.buf.String())
	return nil
}

func (r *ptyReader) input(s string) {
	r.t.Helper()
	if _, err := r.c.PTYInput(context.Background(), r.id, []byte(s)); err != nil {
		r.t.Fatalf("PTYInput(%q): %v", s, err)
	}
}

func TestPTYShell(t *testing.T) {
	c := startAgent(t, agent.ReapAll).client
	ctx := context.Background()
	info, err := c.CreatePTY(ctx, agentproto.ProcRequest{Env: map[string]string{"PATH": testPath, "PS1": "$ ", "TERM": "xterm"}, Cols: 100, Rows: 30})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.ID, "pty_") || info.Cols != 100 || info.Rows != 30 || !info.Running {
		t.Fatalf("CreatePTY = %+v", info)
	}
	r := &ptyReader{t: t, c: c, id: info.ID}
	r.input("echo $((6*7))\n")
	r.waitFor(regexp.MustCompile(`[\r\n]42\r?\n`))
	r.input("tty\n")
	r.waitFor(regexp.MustCompile(`/dev/pts/\d+`))
	if _, err := c.ResizePTY(ctx, info.ID, 120, 40); err != nil {
		t.Fatal(err)
	}
	r.input("stty size\n")
	r.waitFor(regexp.MustCompile(`40 120`))

	// Ctrl-C interrupts the foreground job; the shell lives on.
	r.input("sleep 100; echo after=$?\n")
	time.Sleep(200 * time.Millisecond)
	r.input("\x03")
	r.input("echo alive\n")
	r.waitFor(regexp.MustCompile(`[\r\n]alive\r?\n`))

	// A job in a process group of its own; kill takes the whole session.
	r.input("sleep 1000 & echo bg=$!\n")
	m := r.waitFor(regexp.MustCompile(`bg=(\d+)`))
	bg, _ := strconv.Atoi(m[1])
	if err := syscall.Kill(bg, 0); err != nil {
		t.Fatalf("background job %d not running: %v", bg, err)
	}
	if _, err := c.KillPTY(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	final, err := c.PTYOutput(ctx, info.ID, r.off, true, nil)
	if err != nil || final.Info == nil || final.Info.ExitCode == nil {
		t.Fatalf("PTYOutput after kill: %+v, %v", final.Info, err)
	}
	if p, ok := procfs.Stat("/proc", bg); ok && p.Live() {
		t.Errorf("background job %d survived the kill of its session", bg)
	}
	// Input to an exited session is a conflict.
	if _, err := c.PTYInput(ctx, info.ID, []byte("x")); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("input after exit: %v, want conflict", err)
	}
}

func TestPTYExitCodeAndErrors(t *testing.T) {
	c := startAgent(t, agent.ReapAll).client
	ctx := context.Background()
	info, err := c.CreatePTY(ctx, agentproto.ProcRequest{Args: []string{"sh", "-c", "read x; exit $x"}, Env: map[string]string{"PATH": testPath}})
	if err != nil {
		t.Fatal(err)
	}
	if info.Cols != 80 || info.Rows != 24 {
		t.Errorf("default size %dx%d", info.Cols, info.Rows)
	}
	if _, err := c.PTYInput(ctx, info.ID, []byte("7\n")); err != nil {
		t.Fatal(err)
	}
	final, err := c.PTYOutput(ctx, info.ID, 0, true, nil)
	if err != nil || final.Info == nil || final.Info.ExitCode == nil || *final.Info.ExitCode != 7 {
		t.Fatalf("final = %+v, %v; want exit 7", final.Info, err)
	}
	for name, call := range map[string]func() error{
		"unknown id":  func() error { _, err := c.PTYInput(ctx, "pty_nope", []byte("x")); return err },
		"cols 0":      func() error { _, err := c.ResizePTY(ctx, info.ID, 0, 10); return err },
		"rows 1001":   func() error { _, err := c.ResizePTY(ctx, info.ID, 10, 1001); return err },
		"signal":      func() error { _, err := c.SignalPTY(ctx, info.ID, "SIGNOPE"); return err },
		"create size": func() error { _, err := c.CreatePTY(ctx, agentproto.ProcRequest{Cols: 2000, Rows: 10}); return err },
	} {
		err := call()
		want := errdefs.ErrInvalidArgument
		if name == "unknown id" {
			want = errdefs.ErrNotFound
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
}

func TestPTYLimit(t *testing.T) {
	c := startAgent(t, agent.ReapAll).client
	ctx := context.Background()
	req := agentproto.ProcRequest{Args: []string{"sleep", "100"}, Env: map[string]string{"PATH": testPath}}
	for i := 0; i < agentproto.MaxPTYs; i++ {
		if _, err := c.CreatePTY(ctx, req); err != nil {
			t.Fatalf("session %d: %v", i+1, err)
		}
	}
	_, err := c.CreatePTY(ctx, req)
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "too many terminal sessions") {
		t.Fatalf("session %d: %v, want conflict (too many terminal sessions)", agentproto.MaxPTYs+1, err)
	}
	// Once one is killed, another may start.
	list, err := c.ListPTYs(ctx)
	if err != nil || len(list) != agentproto.MaxPTYs {
		t.Fatalf("ListPTYs = %d sessions, %v", len(list), err)
	}
	if _, err := c.KillPTY(ctx, list[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PTYOutput(ctx, list[0].ID, 0, true, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreatePTY(ctx, req); err != nil {
		t.Fatalf("after a kill: %v", err)
	}
}
