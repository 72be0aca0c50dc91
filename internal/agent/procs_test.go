package agent_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sdbx/sdbx/internal/agent"
	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// procOut is what one ProcessOutput delivered.
type procOut struct {
	stdout, stderr bytes.Buffer
	lost           int64
	offsets        []int64
	final          agentproto.ProcPayload
}

func readProc(t *testing.T, c *agentclient.Client, id string, offset int64, follow bool) *procOut {
	t.Helper()
	var o procOut
	final, err := c.ProcessOutput(context.Background(), id, offset, follow, func(pl agentproto.ProcPayload) {
		o.lost += pl.Lost
		o.offsets = append(o.offsets, pl.Offset)
		if pl.Stream == agentproto.StreamStderr {
			o.stderr.Write(pl.Data)
		} else {
			o.stdout.Write(pl.Data)
		}
	})
	if err != nil {
		t.Fatalf("ProcessOutput(%s, %d, %v): %v", id, offset, follow, err)
	}
	o.final = final
	o.lost += final.Lost
	return &o
}

func startProc(t *testing.T, c *agentclient.Client, script string) agentproto.ProcInfo {
	t.Helper()
	info, err := c.StartProcess(context.Background(), agentproto.ProcRequest{
		Args: []string{"sh", "-c", script}, Env: map[string]string{"PATH": testPath},
	})
	if err != nil {
		t.Fatalf("StartProcess(%q): %v", script, err)
	}
	if info.ID == "" || info.Pid <= 0 || !info.Running {
		t.Fatalf("StartProcess(%q) = %+v", script, info)
	}
	return info
}

func exitOf(t *testing.T, pl agentproto.ProcPayload) int {
	t.Helper()
	if pl.Info == nil || pl.Info.ExitCode == nil || pl.Info.Running {
		t.Fatalf("final payload %+v: no exit code", pl.Info)
	}
	return *pl.Info.ExitCode
}

func TestProcOutputFollowAndReattach(t *testing.T) {
	for _, mode := range []agent.ReapMode{agent.ReapChildren, agent.ReapAll} {
		t.Run(mode.String(), func(t *testing.T) {
			c := startAgent(t, mode).client
			info := startProc(t, c, "echo a; echo err >&2; sleep 0.2; echo b; exit 3")
			o := readProc(t, c, info.ID, 0, true)
			if got := o.stdout.String(); got != "a\nb\n" {
				t.Errorf("stdout = %q, want a, b", got)
			}
			if got := o.stderr.String(); got != "err\n" {
				t.Errorf("stderr = %q", got)
			}
			if code := exitOf(t, o.final); code != 3 {
				t.Errorf("exit code = %d, want 3", code)
			}
			if o.lost != 0 || o.final.End != 8 {
				t.Errorf("lost = %d, end = %d; want 0, 8", o.lost, o.final.End)
			}
			// Re-attach from offset 6 (after "a\n" and "err\n", written
			// in either order before the sleep): only the rest.
			o2 := readProc(t, c, info.ID, 6, false)
			if got := o2.stdout.String() + "|" + o2.stderr.String(); got != "b\n|" {
				t.Errorf("from offset 6: %q", got)
			}
			if len(o2.offsets) == 0 || o2.offsets[0] != 6 {
				t.Errorf("offsets = %v, want first 2", o2.offsets)
			}
			// At the end: nothing, and the same end.
			o3 := readProc(t, c, info.ID, o.final.End, true)
			if o3.stdout.Len()+o3.stderr.Len() != 0 || o3.final.End != 8 {
				t.Errorf("from end: %q %q end %d", o3.stdout.String(), o3.stderr.String(), o3.final.End)
			}
			list, err := c.ListProcesses(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 1 || list[0].ID != info.ID || list[0].Running || list[0].ExitCode == nil || *list[0].ExitCode != 3 || list[0].Args[0] != "sh" {
				t.Errorf("list = %+v", list)
			}
		})
	}
}

func TestProcRingOverflowReportsLost(t *testing.T) {
	c := startAgent(t, agent.ReapAll).client
	const total = 1500000
	info := startProc(t, c, "head -c 1500000 /dev/zero")
	o := readProc(t, c, info.ID, 0, true)
	exitOf(t, o.final)
	// Wait for the exit, then read from 0 again: the start is gone.
	o = readProc(t, c, info.ID, 0, false)
	got := int64(o.stdout.Len())
	if o.lost == 0 || o.lost+got != total || o.final.End != total {
		t.Errorf("lost %d + read %d, end %d; want a loss and a sum of %d", o.lost, got, o.final.End, total)
	}
	if o.offsets[0] != o.lost {
		t.Errorf("first offset %d, want %d", o.offsets[0], o.lost)
	}
}

func TestProcStdinSignalKill(t *testing.T) {
	ctx := context.Background()
	c := startAgent(t, agent.ReapAll).client

	cat := startProc(t, c, "cat")
	if _, err := c.WriteStdin(ctx, cat.ID, []byte("hello\n"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteStdin(ctx, cat.ID, []byte("world\n"), true); err != nil {
		t.Fatal(err)
	}
	o := readProc(t, c, cat.ID, 0, true)
	if o.stdout.String() != "hello\nworld\n" || exitOf(t, o.final) != 0 {
		t.Errorf("cat: %q, final %+v", o.stdout.String(), o.final.Info)
	}
	if _, err := c.WriteStdin(ctx, cat.ID, []byte("x"), false); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("stdin after exit: %v, want conflict", err)
	}

	for _, sig := range []string{"SIGTERM", "term", "15"} {
		p := startProc(t, c, "echo ready; exec sleep 60")
		if _, err := c.SignalProcess(ctx, p.ID, sig); err != nil {
			t.Fatalf("signal %s: %v", sig, err)
		}
		o := readProc(t, c, p.ID, 0, true)
		if code := exitOf(t, o.final); code != 128+int(syscall.SIGTERM) {
			t.Errorf("signal %s: exit code %d", sig, code)
		}
		if _, err := c.SignalProcess(ctx, p.ID, "TERM"); !errors.Is(err, errdefs.ErrConflict) {
			t.Errorf("signal after exit: %v, want conflict", err)
		}
	}

	p := startProc(t, c, "sleep 60")
	_, err := c.SignalProcess(ctx, p.ID, "SIGBOGUS")
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "SIGBOGUS") {
		t.Errorf("unknown signal: %v", err)
	}
	if _, err := c.KillProcess(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	o = readProc(t, c, p.ID, 0, true)
	if code := exitOf(t, o.final); code != 128+int(syscall.SIGKILL) {
		t.Errorf("kill: exit code %d", code)
	}
	for _, call := range []func() error{
		func() error { _, err := c.KillProcess(ctx, "proc_nope"); return err },
		func() error { _, err := c.ProcessOutput(ctx, "proc_nope", 0, false, nil); return err },
	} {
		if err := call(); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("unknown id: %v, want not found", err)
		}
	}
}

func TestProcSurvivesClientAndDiesWithAgent(t *testing.T) {
	ta := startAgent(t, agent.ReapAll)
	c := ta.client
	p := startProc(t, c, "while :; do echo tick; sleep 0.05; done")
	// A follower that goes away does not touch the process.
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		_, err := c.ProcessOutput(ctx, p.ID, 0, true, func(agentproto.ProcPayload) {
			select {
			case got <- struct{}{}:
			default:
			}
		})
		done <- err
	}()
	<-got
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled follow: %v", err)
	}
	// The client's connection is closed now. For a second after, the
	// process keeps running and keeps writing: a kill that came late
	// (once the agent noticed the client leaving) would show here.
	var firstEnd int64
	for i := range 20 {
		if state, ok := procState(p.Pid); !ok || state == 'Z' {
			t.Fatalf("%d ms after the client left: process %d is gone (state %c)", i*50, p.Pid, state)
		}
		list, err := c.ListProcesses(context.Background())
		if err != nil || len(list) != 1 || !list[0].Running {
			t.Fatalf("%d ms after the client left: %+v, %v", i*50, list, err)
		}
		if i == 0 {
			firstEnd = list[0].End
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Output written after the second: still ticking.
	o := readProc(t, c, p.ID, firstEnd, false)
	if !o.final.Info.Running || o.final.End <= firstEnd || !strings.HasPrefix(o.stdout.String(), "tick\n") {
		t.Fatalf("a second after the client left: running %v, output %q up to %d (was %d)", o.final.Info.Running, o.stdout.String(), o.final.End, firstEnd)
	}
	if err := ta.stop(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, p.Pid)
}

func TestProcBadRequests(t *testing.T) {
	c := startAgent(t, agent.ReapChildren).client
	ctx := context.Background()
	if _, err := c.StartProcess(ctx, agentproto.ProcRequest{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("empty args: %v", err)
	}
	if _, err := c.StartProcess(ctx, agentproto.ProcRequest{Args: []string{"no-such-cmd-xyz"}}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing command: %v", err)
	}
	if _, err := c.ProcessOutput(ctx, "x", -1, false, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("negative offset: %v", err)
	}
	if _, err := c.SignalProcess(ctx, "", "TERM"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("missing id: %v", err)
	}
}

func TestProcChunksKeepUTF8Whole(t *testing.T) {
	needInterpreter(t, "python3")
	c := startAgent(t, agent.ReapAll).client
	info, err := c.StartProcess(context.Background(), agentproto.ProcRequest{
		Args: []string{"python3", "-c", "import sys; sys.stdout.write('x' + 'é€😀' * 30000)"},
		Env:  map[string]string{"PATH": testPath, "PYTHONIOENCODING": "utf-8"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var chunks int
	final, err := c.ProcessOutput(context.Background(), info.ID, 0, true, func(pl agentproto.ProcPayload) {
		chunks++
		if !utf8.Valid(pl.Data) {
			t.Errorf("chunk at %d (%d bytes) splits a character", pl.Offset, len(pl.Data))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(1 + 9*30000); final.End != want || chunks < 2 {
		t.Errorf("end %d in %d chunks; want %d in several", final.End, chunks, want)
	}
}

func TestProcExitedAreForgottenOldestFirst(t *testing.T) {
	c := startAgent(t, agent.ReapAll).client
	var ids []string
	for range 103 {
		p, err := c.StartProcess(context.Background(), agentproto.ProcRequest{Args: []string{"true"}, Env: map[string]string{"PATH": testPath}})
		if err != nil {
			t.Fatal(err)
		}
		readProc(t, c, p.ID, 0, true) // waits for the exit
		ids = append(ids, p.ID)
	}
	list, err := c.ListProcesses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 100 || list[0].ID != ids[3] || list[99].ID != ids[102] {
		t.Fatalf("kept %d processes, first %s; want 100 from %s", len(list), list[0].ID, ids[3])
	}
	if _, err := c.ProcessOutput(context.Background(), ids[0], 0, false, nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("forgotten process: %v, want not found", err)
	}
}
