package agent_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/agent/procfs"
	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
)

// requireRoot skips tests that need root (new PID namespaces).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// buildSdbx builds the sdbx binary into a temporary directory.
func buildSdbx(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "sdbx")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/sdbx/sdbx/cmd/sdbx")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// lockedBuffer collects a child's stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startPID1Agent runs the built agent as PID 1 of a new PID namespace,
// serving on an inherited listener (fd 3) as the linux runtime starts it.
// It returns a client and the agent's pid as seen from the host.
func startPID1Agent(t *testing.T, bin, reap string) (*agentclient.Client, int) {
	t.Helper()
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	f, err := ul.File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()

	var logs lockedBuffer
	cmd := exec.Command(bin, "agent", "--listen-fd", "3", "--reap", reap, "--cwd", dir, "--log-level", "debug")
	cmd.Env = []string{}
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout = &logs
	cmd.Stderr = &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() {
		// As PID 1 the agent drops every catchable signal (code in the
		// sandbox could send them); the runtime stops it with SIGKILL.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Errorf("agent as PID 1 exited on SIGTERM: %v", err)
		case <-time.After(300 * time.Millisecond):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	return agentclient.New(unixDialer(sock)), cmd.Process.Pid
}

// childrenOf returns the pids and states of host processes whose parent
// is ppid.
func childrenOf(t *testing.T, ppid int) map[int]byte {
	t.Helper()
	procs := procfs.Read("/proc")
	if len(procs) == 0 {
		t.Fatal("cannot read the process table of /proc")
	}
	kids := map[int]byte{}
	for _, p := range procs {
		if p.PPID == ppid {
			kids[p.PID] = p.State
		}
	}
	return kids
}

// TestPID1Reaper runs the real agent binary as PID 1 of a PID namespace and
// checks that it runs commands and reaps orphaned grandchildren; with
// --reap=children (no reaper) the same orphan stays a zombie, which shows
// that the test can see a missing reaper.
func TestPID1Reaper(t *testing.T) {
	requireRoot(t)
	bin := buildSdbx(t)
	env := map[string]string{"PATH": testPath}

	for _, tc := range []struct {
		reap       string
		wantReaped bool
	}{
		{"auto", true},
		{"children", false},
	} {
		t.Run(tc.reap, func(t *testing.T) {
			c, agentPid := startPID1Agent(t, bin, tc.reap)
			ctx := t.Context()
			if _, err := c.Ping(ctx); err != nil {
				t.Fatalf("ping: %v", err)
			}
			exec := func(script string) result {
				t.Helper()
				r, err := run(ctx, c, agentproto.ExecRequest{Args: []string{"sh", "-c", script}, Env: env})
				if err != nil {
					t.Fatalf("exec %q: %v", script, err)
				}
				return r
			}

			// The agent is PID 1 of its namespace: its commands' parent.
			if r := exec("echo $PPID"); len(r.stdout) != 1 || r.stdout[0] != "1" {
				t.Fatalf("PPID of a command = %q, want 1", r.stdout)
			}
			// The inherited listener is not passed on to commands.
			if r := exec("if [ -e /proc/self/fd/3 ]; then echo leaked; else echo clean; fi"); len(r.stdout) != 1 || r.stdout[0] != "clean" {
				t.Errorf("fd 3 in a command: %q, want clean", r.stdout)
			}
			// Statuses reach their handlers, also when many commands exit
			// at once.
			var wg sync.WaitGroup
			for i := range 30 {
				wg.Go(func() {
					r, err := run(ctx, c, agentproto.ExecRequest{Args: []string{"sh", "-c", "exit $1", "sh", strconv.Itoa(i % 10)}, Env: env})
					if err != nil || r.exit.ExitCode != i%10 {
						t.Errorf("exec %d: exit %+v, err %v", i, r.exit, err)
					}
				})
			}
			wg.Wait()

			// An orphan: sh exits at once, its background child (in a
			// session of its own, so the end of the command doesn't kill
			// it) is reparented to the agent and exits later.
			exec("setsid sleep 0.3 & exit 0")
			orphans := childrenOf(t, agentPid)
			if len(orphans) == 0 {
				t.Fatalf("no orphan was reparented to the agent")
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				kids := childrenOf(t, agentPid)
				zombies := 0
				for _, state := range kids {
					if state == 'Z' {
						zombies++
					}
				}
				if tc.wantReaped && len(kids) == 0 {
					break // every orphan exited and was reaped
				}
				if !tc.wantReaped && zombies > 0 {
					break // the orphan exited and nobody reaped it
				}
				if time.Now().After(deadline) {
					t.Fatalf("children of the agent: %v (state by pid), want reaped=%v", kids, tc.wantReaped)
				}
				time.Sleep(20 * time.Millisecond)
			}

			// The agent still works after reaping orphans.
			if r := exec("echo still here; exit 4"); r.exit.ExitCode != 4 || len(r.stdout) != 1 {
				t.Errorf("after reaping: %+v %q", r.exit, r.stdout)
			}
			// A timeout as PID 1 kills the group and reports it.
			r, err := run(ctx, c, agentproto.ExecRequest{Args: []string{"sleep", "1000"}, Env: env, TimeoutMs: 100})
			if err != nil || !r.exit.TimedOut || r.exit.ExitCode != 137 {
				t.Errorf("timeout as PID 1: %+v, %v", r.exit, err)
			}
			// A cancelled call kills its command.
			cctx, cancel := context.WithCancel(ctx)
			_, err = c.Exec(cctx, agentproto.ExecRequest{Args: []string{"sh", "-c", "echo up; exec sleep 1000"}, Env: env}, func(ev agentproto.Event) {
				if ev.Type == agentproto.EventStdout {
					cancel()
				}
			})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled exec = %v", err)
			}
			deadline = time.Now().Add(20 * time.Second)
			for {
				alive := 0
				for _, state := range childrenOf(t, agentPid) {
					if state != 'Z' {
						alive++
					}
				}
				if alive == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the cancelled command is still running")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
