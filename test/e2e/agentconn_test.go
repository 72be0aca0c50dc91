package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// unixSocketFds counts the unix sockets process pid holds open: the
// server's connections to sandbox agents (its HTTP connections are TCP).
func unixSocketFds(t *testing.T, pid int) int {
	t.Helper()
	table, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/unix", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(table), "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 7 {
			inodes[f[6]] = true
		}
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(fdDir + "/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		if inode, ok := strings.CutPrefix(target, "socket:["); ok && inodes[strings.TrimSuffix(inode, "]")] {
			n++
		}
	}
	return n
}

// TestAgentConnections checks the server's kept-alive agent connections
// end to end: sequential runs reuse a connection (the agent's descriptor
// count stays put), concurrent runs are answered, and deleting the
// sandbox closes every connection the server kept to its agent. It does
// not run in parallel: it counts the server's sockets.
func TestAgentConnections(t *testing.T) {
	e := setup(t)
	c := e.client(t)
	pid := e.srv.cmd.Process.Pid
	before := unixSocketFds(t, pid)

	sb, err := c.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
	if err != nil {
		t.Fatal(err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			_ = c.DeleteSandbox(t.Context(), sb.ID)
		}
	})
	// The agent is PID 1 of the sandbox.
	agentFds := func() int {
		t.Helper()
		res := runCode(t, c, sb.ID, "import os\nprint(len(os.listdir('/proc/1/fd')))")
		if len(res.Execution.Logs.Stdout) != 1 {
			t.Fatalf("fd count run: %+v", res.Execution)
		}
		n, err := strconv.Atoi(res.Execution.Logs.Stdout[0])
		if err != nil {
			t.Fatalf("fd count run printed %q", res.Execution.Logs.Stdout)
		}
		return n
	}
	first := agentFds()
	for i := range 40 {
		res := runCode(t, c, sb.ID, fmt.Sprintf("print(%d)", i))
		if len(res.Execution.Logs.Stdout) != 1 || res.Execution.Logs.Stdout[0] != strconv.Itoa(i) {
			t.Fatalf("run %d: stdout %q", i, res.Execution.Logs.Stdout)
		}
	}
	if after := agentFds(); after != first {
		t.Errorf("the agent has %d descriptors open after 40 sequential runs, %d before: connections leak", after, first)
	}
	if n := unixSocketFds(t, pid) - before; n < 1 || n > 2 {
		t.Errorf("the server holds %d more unix sockets after sequential runs, want 1 kept-alive connection (2 at most)", n)
	}

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			res, err := c.RunCode(t.Context(), sb.ID, fmt.Sprintf("import time\ntime.sleep(0.05)\nprint(%d)", i))
			if err != nil || len(res.Execution.Logs.Stdout) != 1 || res.Execution.Logs.Stdout[0] != strconv.Itoa(i) {
				t.Errorf("concurrent run %d: %+v, %v", i, res, err)
			}
		})
	}
	wg.Wait()

	if err := c.DeleteSandbox(t.Context(), sb.ID); err != nil {
		t.Fatal(err)
	}
	deleted = true
	deadline := time.Now().Add(10 * time.Second)
	for unixSocketFds(t, pid) != before {
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d unix sockets after the sandbox was deleted, %d before it was created", unixSocketFds(t, pid), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
