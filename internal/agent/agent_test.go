package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sdbx/sdbx/internal/agent"
	"github.com/sdbx/sdbx/internal/agent/procfs"
	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testPath is the PATH handed to commands in tests.
const testPath = "/usr/local/bin:/usr/bin:/bin"

// shortTempDir returns a temporary directory with a path short enough for
// a unix socket inside it (t.TempDir's can pass the 108-byte limit).
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdbx-agent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// unixDialer dials the unix socket at path.
func unixDialer(path string) agentclient.Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
}

// testAgent is an in-process agent served on a unix socket.
type testAgent struct {
	client *agentclient.Client
	sock   string
	cwd    string // its default working directory
	stop   func() error
}

// startAgent serves an in-process agent until the test ends.
func startAgent(t testing.TB, mode agent.ReapMode) *testAgent {
	t.Helper()
	dir := shortTempDir(t)
	cwd := filepath.Join(dir, "workspace")
	if err := os.Mkdir(cwd, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := agent.New(agent.Options{Version: "test-1", DefaultCwd: cwd, Reap: mode})
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			serveErr = <-done
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testAgent{client: agentclient.New(unixDialer(sock)), sock: sock, cwd: cwd, stop: stop}
}

// result is what one exec produced.
type result struct {
	exit    agentproto.Event
	started agentproto.Event
	stdout  []string
	stderr  []string
	order   []string // event types in arrival order
}

// run execs req and collects its events. Env defaults to PATH only.
func run(ctx context.Context, c *agentclient.Client, req agentproto.ExecRequest) (result, error) {
	if req.Env == nil {
		req.Env = map[string]string{"PATH": testPath}
	}
	var r result
	exit, err := c.Exec(ctx, req, func(ev agentproto.Event) {
		r.order = append(r.order, ev.Type)
		switch ev.Type {
		case agentproto.EventStarted:
			r.started = ev
		case agentproto.EventStdout:
			r.stdout = append(r.stdout, ev.Data)
		case agentproto.EventStderr:
			r.stderr = append(r.stderr, ev.Data)
		}
	})
	r.exit = exit
	return r, err
}

// sh runs a shell script through run and fails the test on error.
func sh(t *testing.T, c *agentclient.Client, script string) result {
	t.Helper()
	r, err := run(t.Context(), c, agentproto.ExecRequest{Args: []string{"sh", "-c", script}})
	if err != nil {
		t.Fatalf("exec %q: %v", script, err)
	}
	return r
}

// waitGone waits until pid has exited (gone, or a zombie waiting for its
// reaper), failing the test if it is still running after a generous
// bound.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		state, ok := procState(pid)
		if !ok || state == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive (state %c)", pid, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procState returns the state letter of pid from /proc, and false when
// there is no such process.
func procState(pid int) (byte, bool) {
	p, ok := procfs.Stat("/proc", pid)
	return p.State, ok
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// TestExec runs the behaviour suite against an in-process agent in both
// reaping modes (ReapAll in-process only reaps the test binary's own
// children, which are the agent's commands).
func TestExec(t *testing.T) {
	for _, mode := range []agent.ReapMode{agent.ReapChildren, agent.ReapAll} {
		t.Run(mode.String(), func(t *testing.T) {
			ta := startAgent(t, mode)
			c := ta.client
			t.Run("echo", func(t *testing.T) {
				t.Parallel()
				r := sh(t, c, "echo hello world")
				if r.exit.ExitCode != 0 || r.exit.TimedOut {
					t.Errorf("exit = %+v, want code 0", r.exit)
				}
				if !slices.Equal(r.stdout, []string{"hello world"}) || len(r.stderr) != 0 {
					t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
				}
				if len(r.order) == 0 || r.order[0] != agentproto.EventStarted || r.started.Pid <= 0 {
					t.Errorf("first event %v, started %+v: want started with a pid", r.order, r.started)
				}
			})
			t.Run("ping", func(t *testing.T) {
				t.Parallel()
				v, err := c.Ping(t.Context())
				if err != nil || v != "test-1" {
					t.Errorf("Ping = %q, %v", v, err)
				}
			})
			t.Run("env exactly as given", func(t *testing.T) {
				t.Parallel()
				env := map[string]string{"PATH": testPath, "FOO": "bar baz", "EMPTY": "", "UNI": "ü=1"}
				r, err := run(t.Context(), c, agentproto.ExecRequest{Args: []string{"env"}, Env: env})
				if err != nil {
					t.Fatal(err)
				}
				want := []string{"EMPTY=", "FOO=bar baz", "PATH=" + testPath, "UNI=ü=1"}
				got := slices.Sorted(slices.Values(r.stdout))
				if !slices.Equal(got, want) {
					t.Errorf("env = %q, want %q", got, want)
				}
			})
			t.Run("no env inherited", func(t *testing.T) {
				t.Parallel()
				r, err := run(t.Context(), c, agentproto.ExecRequest{Args: []string{"/usr/bin/env"}, Env: map[string]string{}})
				if err != nil {
					t.Fatal(err)
				}
				if len(r.stdout) != 0 {
					t.Errorf("env printed %q, want nothing", r.stdout)
				}
			})
			t.Run("cwd", func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				script := filepath.Join(dir, "hello.sh")
				if err := os.WriteFile(script, []byte("#!/bin/sh\necho script in $(pwd)\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				tests := []struct {
					name string
					req  agentproto.ExecRequest
					want string
				}{
					{"given", agentproto.ExecRequest{Args: []string{"pwd"}, Cwd: dir}, dir},
					{"default", agentproto.ExecRequest{Args: []string{"pwd"}}, ta.cwd},
					{"relative executable", agentproto.ExecRequest{Args: []string{"./hello.sh"}, Cwd: dir}, "script in " + dir},
				}
				for _, tt := range tests {
					r, err := run(t.Context(), c, tt.req)
					if err != nil {
						t.Fatalf("%s: %v", tt.name, err)
					}
					if !slices.Equal(r.stdout, []string{tt.want}) {
						t.Errorf("%s: stdout %q, want %q", tt.name, r.stdout, tt.want)
					}
				}
			})
			t.Run("stdout and stderr interleaved", func(t *testing.T) {
				t.Parallel()
				r := sh(t, c, `i=0; while [ $i -lt 1000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done`)
				if len(r.stdout) != 1000 || len(r.stderr) != 1000 {
					t.Fatalf("got %d stdout and %d stderr lines, want 1000 each", len(r.stdout), len(r.stderr))
				}
				for i := range 1000 {
					if r.stdout[i] != fmt.Sprintf("out%d", i) || r.stderr[i] != fmt.Sprintf("err%d", i) {
						t.Fatalf("line %d: stdout %q stderr %q", i, r.stdout[i], r.stderr[i])
					}
				}
				if r.order[len(r.order)-1] == agentproto.EventStarted {
					t.Error("started came last")
				}
			})
			t.Run("line arrives before the command ends", func(t *testing.T) {
				t.Parallel()
				fifo := filepath.Join(t.TempDir(), "release")
				if err := syscall.Mkfifo(fifo, 0o600); err != nil {
					t.Fatal(err)
				}
				lines := make(chan string, 10)
				type outcome struct {
					exit agentproto.Event
					err  error
				}
				done := make(chan outcome, 1)
				go func() {
					exit, err := c.Exec(t.Context(), agentproto.ExecRequest{
						Args: []string{"sh", "-c", `echo ready; read x < "$1"; echo got $x`, "sh", fifo},
						Env:  map[string]string{"PATH": testPath},
					}, func(ev agentproto.Event) {
						if ev.Type == agentproto.EventStdout {
							lines <- ev.Data
						}
					})
					done <- outcome{exit, err}
				}()
				// The command blocks until the test writes to the fifo, so
				// "ready" can only arrive now if it was streamed.
				select {
				case l := <-lines:
					if l != "ready" {
						t.Fatalf("first line %q, want ready", l)
					}
				case o := <-done:
					t.Fatalf("exec ended before the first line: %+v %v", o.exit, o.err)
				}
				f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintln(f, "go")
				f.Close()
				o := <-done
				if o.err != nil || o.exit.ExitCode != 0 {
					t.Fatalf("exec: %+v %v", o.exit, o.err)
				}
				if l := <-lines; l != "got go" {
					t.Errorf("second line %q, want %q", l, "got go")
				}
			})
			t.Run("long line split", func(t *testing.T) {
				t.Parallel()
				r := sh(t, c, `head -c 150000 /dev/zero | tr '\0' a; echo; echo next`)
				want := []int{agentproto.MaxLine, agentproto.MaxLine, 150000 - 2*agentproto.MaxLine}
				if len(r.stdout) != len(want)+1 {
					t.Fatalf("got %d lines, want %d", len(r.stdout), len(want)+1)
				}
				for i, n := range want {
					if len(r.stdout[i]) != n || strings.Trim(r.stdout[i], "a") != "" {
						t.Errorf("piece %d: %d bytes, want %d a's", i, len(r.stdout[i]), n)
					}
				}
				if r.stdout[3] != "next" {
					t.Errorf("last line %q, want next", r.stdout[3])
				}
			})
			t.Run("long line of characters JSON escapes", func(t *testing.T) {
				t.Parallel()
				// Each \x01 grows sixfold in JSON: the largest event line.
				r := sh(t, c, `head -c 70000 /dev/zero | tr '\0' '\001'`)
				if len(r.stdout) != 2 || len(r.stdout[0]) != agentproto.MaxLine || len(r.stdout[1]) != 70000-agentproto.MaxLine {
					t.Fatalf("got %d lines", len(r.stdout))
				}
				if strings.Trim(r.stdout[0]+r.stdout[1], "\x01") != "" {
					t.Error("content changed")
				}
			})
			t.Run("partial last line", func(t *testing.T) {
				t.Parallel()
				r := sh(t, c, `printf 'a\nb'; printf 'err-no-newline' >&2`)
				if !slices.Equal(r.stdout, []string{"a", "b"}) || !slices.Equal(r.stderr, []string{"err-no-newline"}) {
					t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
				}
			})
			t.Run("exit codes", func(t *testing.T) {
				t.Parallel()
				tests := []struct {
					script string
					want   int
				}{
					{"true", 0},
					{"exit 3", 3},
					{"exit 255", 255},
					{"kill -TERM $$", 128 + 15},
					{"kill -KILL $$", 128 + 9},
					{"kill -SEGV $$", 128 + 11},
				}
				for _, tt := range tests {
					r := sh(t, c, tt.script)
					if r.exit.ExitCode != tt.want || r.exit.TimedOut {
						t.Errorf("%q: exit %+v, want code %d", tt.script, r.exit, tt.want)
					}
				}
			})
			t.Run("timeout kills the process group", func(t *testing.T) {
				t.Parallel()
				pids := make(chan int, 2)
				exit, err := c.Exec(t.Context(), agentproto.ExecRequest{
					Args:      []string{"sh", "-c", "sleep 1000 & echo $!; wait"},
					Env:       map[string]string{"PATH": testPath},
					TimeoutMs: 300,
				}, func(ev agentproto.Event) {
					if ev.Type == agentproto.EventStdout {
						pids <- atoi(t, ev.Data)
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				if !exit.TimedOut || exit.ExitCode != 137 {
					t.Errorf("exit = %+v, want timedOut with code 137", exit)
				}
				waitGone(t, <-pids)
			})
			t.Run("client cancel kills the process group", func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var pids []int
				_, err := c.Exec(ctx, agentproto.ExecRequest{
					Args: []string{"sh", "-c", "sleep 1000 & echo $!; echo $$; wait"},
					Env:  map[string]string{"PATH": testPath},
				}, func(ev agentproto.Event) {
					if ev.Type == agentproto.EventStdout {
						pids = append(pids, atoi(t, ev.Data))
						if len(pids) == 2 {
							cancel()
						}
					}
				})
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Exec = %v, want context.Canceled", err)
				}
				for _, pid := range pids {
					waitGone(t, pid)
				}
			})
			t.Run("deadline is a timeout error", func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
				defer cancel()
				_, err := run(ctx, c, agentproto.ExecRequest{Args: []string{"sleep", "1000"}})
				if !errors.Is(err, errdefs.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Exec = %v, want ErrTimeout", err)
				}
			})
			t.Run("background child holding stdout does not hang", func(t *testing.T) {
				t.Parallel()
				r := sh(t, c, "sleep 1000 & echo $!; echo done")
				if len(r.stdout) != 2 || r.stdout[1] != "done" || r.exit.ExitCode != 0 {
					t.Fatalf("stdout %q exit %+v", r.stdout, r.exit)
				}
				// The background child outlives the command (it may be a
				// server the user started); end it here.
				pid := atoi(t, r.stdout[0])
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Errorf("background child %d: %v", pid, err)
				}
				waitGone(t, pid)
			})
			t.Run("slow client gets all output of an exited command", func(t *testing.T) {
				t.Parallel()
				// The client stalls past the drain time every 2000 lines,
				// so the command exits while much of its output still
				// waits in the pipe and the socket.
				const total = 16000
				var got []string
				exit, err := c.Exec(t.Context(), agentproto.ExecRequest{
					Args: []string{"seq", "-f", "line %05g of the output", strconv.Itoa(total)},
					Env:  map[string]string{"PATH": testPath},
				}, func(ev agentproto.Event) {
					if ev.Type != agentproto.EventStdout {
						return
					}
					got = append(got, ev.Data)
					if len(got)%2000 == 0 {
						time.Sleep(150 * time.Millisecond)
					}
				})
				if err != nil || exit.ExitCode != 0 {
					t.Fatalf("exec: %+v %v", exit, err)
				}
				if len(got) != total || got[total-1] != fmt.Sprintf("line %05d of the output", total) {
					t.Fatalf("got %d lines, want %d", len(got), total)
				}
			})
			t.Run("errors", func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				file := filepath.Join(dir, "file")
				if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				badInterp := filepath.Join(dir, "bad-interp")
				if err := os.WriteFile(badInterp, []byte("#!/no/such/interpreter\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				tests := []struct {
					name    string
					req     agentproto.ExecRequest
					want    error
					message string
				}{
					{"missing executable", agentproto.ExecRequest{Args: []string{"no-such-cmd-xyz"}}, errdefs.ErrNotFound, `executable "no-such-cmd-xyz" not found in PATH`},
					{"missing path", agentproto.ExecRequest{Args: []string{"/no/such/bin"}}, errdefs.ErrNotFound, `executable "/no/such/bin" not found`},
					{"not executable", agentproto.ExecRequest{Args: []string{file}}, errdefs.ErrPermissionDenied, "is not executable"},
					{"directory", agentproto.ExecRequest{Args: []string{dir}}, errdefs.ErrPermissionDenied, "is a directory"},
					{"missing interpreter", agentproto.ExecRequest{Args: []string{badInterp}}, errdefs.ErrNotFound, "missing interpreter"},
					{"missing cwd", agentproto.ExecRequest{Args: []string{"true"}, Cwd: "/no/such/dir"}, errdefs.ErrNotFound, `exec.cwd: directory "/no/such/dir" not found`},
					{"cwd is a file", agentproto.ExecRequest{Args: []string{"true"}, Cwd: file}, errdefs.ErrInvalidArgument, "is not a directory"},
					{"relative cwd", agentproto.ExecRequest{Args: []string{"true"}, Cwd: "rel"}, errdefs.ErrInvalidArgument, "exec.cwd"},
					{"empty args", agentproto.ExecRequest{Args: []string{}}, errdefs.ErrInvalidArgument, "exec.args"},
					{"empty argv0", agentproto.ExecRequest{Args: []string{""}}, errdefs.ErrInvalidArgument, "exec.args[0]"},
					{"NUL in arg", agentproto.ExecRequest{Args: []string{"echo", "a\x00b"}}, errdefs.ErrInvalidArgument, "exec.args[1]"},
					{"env name with =", agentproto.ExecRequest{Args: []string{"true"}, Env: map[string]string{"A=B": "x"}}, errdefs.ErrInvalidArgument, "exec.env"},
					{"env name with NUL", agentproto.ExecRequest{Args: []string{"true"}, Env: map[string]string{"A\x00": "x"}}, errdefs.ErrInvalidArgument, "exec.env"},
					{"empty env name", agentproto.ExecRequest{Args: []string{"true"}, Env: map[string]string{"": "x"}}, errdefs.ErrInvalidArgument, "exec.env"},
					{"NUL in env value", agentproto.ExecRequest{Args: []string{"true"}, Env: map[string]string{"A": "x\x00"}}, errdefs.ErrInvalidArgument, `exec.env["A"]`},
					{"negative timeout", agentproto.ExecRequest{Args: []string{"true"}, TimeoutMs: -1}, errdefs.ErrInvalidArgument, "exec.timeoutMs"},
				}
				for _, tt := range tests {
					_, err := run(t.Context(), c, tt.req)
					if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.message) {
						t.Errorf("%s: err = %v, want %v containing %q", tt.name, err, tt.want, tt.message)
					}
				}
			})
			t.Run("concurrent execs", func(t *testing.T) {
				t.Parallel()
				var wg sync.WaitGroup
				for i := range 20 {
					wg.Go(func() {
						r, err := run(t.Context(), c, agentproto.ExecRequest{
							Args: []string{"sh", "-c", `echo "$1"; echo "e$1" >&2; exit $(($1 % 7))`, "sh", strconv.Itoa(i)},
						})
						if err != nil {
							t.Errorf("exec %d: %v", i, err)
							return
						}
						if !slices.Equal(r.stdout, []string{strconv.Itoa(i)}) || !slices.Equal(r.stderr, []string{"e" + strconv.Itoa(i)}) || r.exit.ExitCode != i%7 {
							t.Errorf("exec %d: stdout %q stderr %q exit %+v", i, r.stdout, r.stderr, r.exit)
						}
					})
				}
				wg.Wait()
			})
		})
	}
}

// TestServeShutdownKillsCommands checks that cancelling Serve kills running
// commands, fails their calls as unavailable and returns nil.
func TestServeShutdownKillsCommands(t *testing.T) {
	ta := startAgent(t, agent.ReapChildren)
	pidc := make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		_, err := ta.client.Exec(t.Context(), agentproto.ExecRequest{
			Args: []string{"sh", "-c", "echo $$; exec sleep 1000"},
			Env:  map[string]string{"PATH": testPath},
		}, func(ev agentproto.Event) {
			if ev.Type == agentproto.EventStdout {
				n, _ := strconv.Atoi(ev.Data)
				pidc <- n
			}
		})
		errc <- err
	}()
	pid := <-pidc
	if err := ta.stop(); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	if err := <-errc; !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Exec = %v, want ErrUnavailable", err)
	}
	waitGone(t, pid)
	if _, err := ta.client.Ping(t.Context()); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Ping after shutdown = %v, want ErrUnavailable", err)
	}
}
