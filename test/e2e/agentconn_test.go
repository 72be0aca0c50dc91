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

// agentConns counts the open connections to sandbox id's agent: the
// agent's accepted sockets, which carry the path of its listening socket
// (state 03, connected, in /proc/net/unix).
func agentConns(t *testing.T, id string) int {
	t.Helper()
	table, err := os.ReadFile("/proc/self/net/unix")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(table), "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 8 && f[5] == "03" && strings.HasSuffix(f[7], "/"+id+"/agent.sock") {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds, and fails t with msg after 10 s.
func waitFor(t *testing.T, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAgentConnections checks the server's kept-alive agent connections
// end to end: sequential runs reuse one connection (and the agent's
// descriptor count stays put), concurrent runs leave at most the pool's
// bound open, and deleting the sandbox closes every connection the server
// kept to its agent. It does not run in parallel: it counts the server's
// sockets.
func TestAgentConnections(t *testing.T) {
	e := setup(t)
	c := e.client(t)
	pid := e.srv.cmd.Process.Pid

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
	if n := agentConns(t, sb.ID); n != 1 {
		t.Errorf("%d connections to the agent after sequential runs, want the 1 kept alive", n)
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
	// Connections beyond the pool's bound (4) are closed; the agent
	// closes its end when it reads EOF.
	waitFor(t, func() bool { return agentConns(t, sb.ID) <= 4 }, func() string {
		return fmt.Sprintf("%d connections to the agent stay open after concurrent runs, want at most 4", agentConns(t, sb.ID))
	})

	kept := agentConns(t, sb.ID)
	before := unixSocketFds(t, pid)
	if err := c.DeleteSandbox(t.Context(), sb.ID); err != nil {
		t.Fatal(err)
	}
	deleted = true
	waitFor(t, func() bool { return unixSocketFds(t, pid) <= before-kept }, func() string {
		return fmt.Sprintf("the server holds %d unix sockets after the sandbox was deleted, %d before with %d kept to its agent",
			unixSocketFds(t, pid), before, kept)
	})
}
