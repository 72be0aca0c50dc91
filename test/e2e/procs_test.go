package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// followUntil follows the output of proc from offset until it has seen
// want complete lines, then goes away (cancelling the stream, like a
// client that disconnects). It returns the text read and the offset after
// it.
func followUntil(t *testing.T, c *sdbx.Client, sbID, procID string, offset int64, want int) (string, int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var b strings.Builder
	next := offset
	_, err := c.ProcessOutput(ctx, sbID, procID, offset, true, func(ch sdbx.ProcessChunk) {
		if ch.Lost != 0 || ch.Offset != next {
			t.Errorf("chunk at %d (lost %d), want %d and no loss", ch.Offset, ch.Lost, next)
		}
		b.WriteString(ch.Data)
		next = ch.Offset + int64(len(ch.Data))
		if strings.Count(b.String(), "\n") >= want {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ProcessOutput(follow) = %v, want it cancelled", err)
	}
	return b.String(), next
}

func TestSDKBackgroundProcess(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})

	loop := "import itertools, sys, time\nfor i in itertools.count():\n    print(i, flush=True)\n    time.sleep(0.02)\n"
	p, err := c.StartProcess(t.Context(), sb.ID, sdbx.Command{Args: []string{"python3", "-c", loop}})
	if err != nil {
		t.Fatalf("StartProcess: %v", err)
	}
	if p.ID == "" || p.Pid <= 0 || !p.Running {
		t.Fatalf("process = %+v", p)
	}

	first, off := followUntil(t, c, sb.ID, p.ID, 0, 3)
	if !strings.HasPrefix(first, "0\n1\n2\n") {
		t.Fatalf("first read = %q", first)
	}

	// Another client, as after a reconnect: the process still runs, and
	// reading resumes exactly where the first client stopped.
	c2 := e.client(t)
	list, err := c2.ListProcesses(t.Context(), sb.ID)
	if err != nil || len(list) != 1 || list[0].ID != p.ID || !list[0].Running {
		t.Fatalf("ListProcesses = %+v, %v", list, err)
	}
	second, _ := followUntil(t, c2, sb.ID, p.ID, off, 3)
	lines := strings.Split(first+second, "\n")
	for i, l := range lines[:len(lines)-1] {
		if l != fmt.Sprint(i) {
			t.Fatalf("line %d = %q; output %q + %q is not contiguous", i, l, first, second)
		}
	}

	// A non-following read returns what is buffered at once.
	end, err := c2.ProcessOutput(t.Context(), sb.ID, p.ID, 0, false, nil)
	if err != nil || end.Exited || end.End < off || end.Lost != 0 {
		t.Fatalf("ProcessOutput(no follow) = %+v, %v", end, err)
	}

	if _, err := c2.SignalProcess(t.Context(), sb.ID, p.ID, "SIGNOPE"); !errors.Is(err, sdbx.ErrInvalidArgument) {
		t.Errorf("unknown signal: %v", err)
	}
	if _, err := c2.KillProcess(t.Context(), sb.ID, p.ID); err != nil {
		t.Fatalf("KillProcess: %v", err)
	}
	end, err = c2.ProcessOutput(t.Context(), sb.ID, p.ID, end.End, true, nil)
	if err != nil || !end.Exited || end.ExitCode != 137 {
		t.Fatalf("after kill: %+v, %v; want exit 137", end, err)
	}
}

func TestCLIExecDetach(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	r := e.cli(t, "exec", "--detach", sb.ID, "--", "sh", "-c", "echo detached; exec sleep 60")
	if r.code != 0 || !idLine.MatchString(r.stdout) || r.stderr != "" {
		t.Fatalf("exec --detach: %v; want only a process id", r)
	}
	procID := strings.TrimSpace(r.stdout)
	c := e.client(t)
	list, err := c.ListProcesses(t.Context(), sb.ID)
	if err != nil || len(list) != 1 || list[0].ID != procID || !list[0].Running {
		t.Fatalf("ListProcesses = %+v, %v", list, err)
	}
	// Wait for its first line (follow, cancelled once it arrived), so the
	// signal can't beat the echo.
	var out strings.Builder
	firstLine, cancel := context.WithCancel(t.Context())
	c.ProcessOutput(firstLine, sb.ID, procID, 0, true, func(ch sdbx.ProcessChunk) {
		out.WriteString(ch.Data)
		cancel()
	})
	cancel()
	if out.String() != "detached\n" {
		t.Fatalf("first output %q, want the echo", out.String())
	}
	if _, err := c.SignalProcess(t.Context(), sb.ID, procID, "TERM"); err != nil {
		t.Fatalf("SignalProcess: %v", err)
	}
	out.Reset()
	end, err := c.ProcessOutput(t.Context(), sb.ID, procID, 0, true, func(ch sdbx.ProcessChunk) { out.WriteString(ch.Data) })
	if err != nil || out.String() != "detached\n" || !end.Exited || end.ExitCode != 143 {
		t.Fatalf("output %q, end %+v, %v; want detached and exit 143", out.String(), end, err)
	}
	if r := e.cli(t, "exec", "--detach", "--timeout", "5s", sb.ID, "--", "true"); r.code != 2 {
		t.Errorf("--detach --timeout: %v; want exit 2", r)
	}
}
