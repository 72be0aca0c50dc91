package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs the built sdbx binary with args, SDBX_URL pointing at the test
// server and SDBX_API_KEY set to key.
func (e *testEnv) cliWithKey(t *testing.T, key string, args ...string) cliResult {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), e.bin, args...)
	cmd.Env = append(serverEnv(os.Environ()), "SDBX_URL="+e.srv.URL, "SDBX_API_KEY="+key)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run sdbx %q: %v", args, err)
	}
	return cliResult{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String()}
}

func (e *testEnv) cli(t *testing.T, args ...string) cliResult {
	t.Helper()
	return e.cliWithKey(t, e.srv.APIKey, args...)
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

func TestCLIRunAcceptance(t *testing.T) {
	t.Parallel()
	e := setup(t)
	name := "e2e-cli-run-" + RandomKey()[10:22]
	r := e.cli(t, "run", "--template", "python-3-11", "--name", name, "--", "python3", "-c", "print(1)")
	if r.code != 0 || r.stdout != "1\n" || r.stderr != "" {
		t.Fatalf("sdbx run: %v; want exit 0, stdout exactly \"1\\n\"", r)
	}
	// The line as written, without --name.
	r = e.cli(t, "run", "--template", "python-3-11", "--", "python3", "-c", "print(1)")
	if r.code != 0 || r.stdout != "1\n" {
		t.Fatalf("sdbx run: %v", r)
	}
	// run deleted its sandbox.
	list, err := e.client(t).ListSandboxes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range list {
		if sb.Name == name && sb.Status != sdbx.StatusTerminated {
			t.Fatalf("run left its sandbox %s behind (%s)", sb.ID, sb.Status)
		}
	}

	r = e.cli(t, "run", "--", "sh", "-c", "echo out; echo err >&2; exit 5")
	if r.code != 5 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Fatalf("sdbx run exit 5: %v", r)
	}
	r = e.cli(t, "run", "--template", "no-such-template", "--", "true")
	if r.code != 3 || !strings.HasPrefix(r.stderr, "sdbx: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("sdbx run with unknown template: %v; want exit 3 and one error line", r)
	}
}

var idLine = regexp.MustCompile(`^[A-Za-z0-9_-]+\n$`)

func TestCLISandboxLifecycle(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.cli(t, "sandbox", "create", "--name", "cli lifecycle", "--env", "A=from-sandbox", "--expiry", "1h")
	if r.code != 0 || !idLine.MatchString(r.stdout) || r.stderr != "" {
		t.Fatalf("sandbox create: %v; want only an id", r)
	}
	id := strings.TrimSpace(r.stdout)
	t.Cleanup(func() { _ = e.client(t).DeleteSandbox(t.Context(), id) })

	r = e.cli(t, "exec", id, "--", "sh", "-c", "exit 3")
	if r.code != 3 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("exec exit 3: %v", r)
	}
	r = e.cli(t, "exec", "--env", "B=from-exec", id, "--", "sh", "-c", `echo "$A $B"; echo warn >&2`)
	if r.code != 0 || r.stdout != "from-sandbox from-exec\n" || r.stderr != "warn\n" {
		t.Fatalf("exec env: %v", r)
	}
	r = e.cli(t, "exec", "--cwd", "/tmp", id, "--", "pwd")
	if r.code != 0 || r.stdout != "/tmp\n" {
		t.Fatalf("exec --cwd: %v", r)
	}
	r = e.cli(t, "exec", "--timeout", "1s", id, "--", "sleep", "30")
	if r.code != 124 || !strings.HasPrefix(r.stderr, "sdbx: ") {
		t.Fatalf("exec --timeout: %v; want exit 124", r)
	}

	r = e.cli(t, "sandbox", "ls")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || strings.Join(strings.Fields(lines[0]), " ") != "ID NAME TEMPLATE STATUS CREATED" {
		t.Fatalf("sandbox ls: %v", r)
	}
	if !slices.ContainsFunc(lines[1:], func(l string) bool {
		f := strings.Fields(l)
		return len(f) >= 6 && f[0] == id && f[1] == "cli" && f[2] == "lifecycle" && f[3] == "python-3-11" && f[4] == "ready"
	}) {
		t.Fatalf("sandbox ls does not show %s as ready: %v", id, r)
	}

	r = e.cli(t, "sandbox", "status", id)
	for _, want := range []string{"id: " + id + "\n", "name: cli lifecycle\n", "template: python-3-11\n", "status: ready\n", "env: A=from-sandbox\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("sandbox status: %v; missing %q", r, want)
		}
	}
	if r.code != 0 || strings.Contains(r.stdout, "expires: never") {
		t.Fatalf("sandbox status: %v", r)
	}

	r = e.cli(t, "sandbox", "rm", id)
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("sandbox rm: %v", r)
	}
	r = e.cli(t, "sandbox", "status", id)
	if !(r.code == 3 || (r.code == 0 && strings.Contains(r.stdout, "status: terminated\n"))) {
		t.Fatalf("sandbox status after rm: %v; want exit 3 or terminated", r)
	}
	r = e.cli(t, "exec", id, "--", "true")
	if r.code != 3 && r.code != 1 {
		t.Fatalf("exec in a removed sandbox: %v; want not found (3) or conflict (1)", r)
	}
}

func TestCLIErrors(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tests := []struct {
		name string
		key  string
		args []string
		code int
		msg  string
	}{
		{"wrong key", "wrong", []string{"sandbox", "ls"}, 4, "sdbx: "},
		{"unknown sandbox", "", []string{"sandbox", "status", "sb-doesnotexist"}, 3, "sdbx: "},
		{"server refuses input", "", []string{"sandbox", "create", "--env", "1A=x"}, 2, "sdbx: "},
		{"usage", "", []string{"exec", "--env", "FOO", "sb-x", "--", "true"}, 2, `sdbx: --env "FOO": want KEY=VALUE` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key
			if key == "" {
				key = e.srv.APIKey
			}
			r := e.cliWithKey(t, key, tt.args...)
			if r.code != tt.code || !strings.HasPrefix(r.stderr, tt.msg) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
				t.Fatalf("%v; want exit %d and one stderr line starting %q", r, tt.code, tt.msg)
			}
		})
	}
}

// startCLI starts the sdbx binary with args and waits until its stdout has
// printed the line "ready". It returns the running command and a channel
// that yields its exit code.
func (e *testEnv) startCLI(t *testing.T, args ...string) (*exec.Cmd, <-chan int) {
	t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env = append(serverEnv(os.Environ()), "SDBX_URL="+e.srv.URL, "SDBX_API_KEY="+e.srv.APIKey)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := sc.Scan() && sc.Text() == "ready"
		ready <- ok
		io.Copy(io.Discard, stdout)
	}()
	code := make(chan int, 1)
	select {
	case ok := <-ready:
		if !ok {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("sdbx %q did not print ready; stderr %q", args, errOut.String())
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("sdbx %q: no output within a minute; stderr %q", args, errOut.String())
	}
	go func() {
		cmd.Wait()
		code <- cmd.ProcessState.ExitCode()
	}()
	return cmd, code
}

func waitExit(t *testing.T, code <-chan int) int {
	t.Helper()
	select {
	case c := <-code:
		return c
	case <-time.After(time.Minute):
		t.Fatal("sdbx did not exit within a minute of SIGINT")
		return -1
	}
}

func TestCLIInterrupt(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)

	t.Run("run deletes its sandbox", func(t *testing.T) {
		name := "e2e-cli-interrupt-" + RandomKey()[10:22]
		cmd, code := e.startCLI(t, "run", "--name", name, "--", "sh", "-c", "echo ready; sleep 60")
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if got := waitExit(t, code); got != 130 {
			t.Fatalf("exit code after SIGINT = %d, want 130", got)
		}
		list, err := c.ListSandboxes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, sb := range list {
			if sb.Name == name && sb.Status != sdbx.StatusTerminated {
				t.Fatalf("interrupted run left sandbox %s (%s)", sb.ID, sb.Status)
			}
		}
	})

	t.Run("exec kills the command", func(t *testing.T) {
		sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
		cmd, code := e.startCLI(t, "exec", sb.ID, "--", "sh", "-c", "echo ready; exec sleep 60")
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if got := waitExit(t, code); got != 130 {
			t.Fatalf("exit code after SIGINT = %d, want 130", got)
		}
		// The server cancels the command when the connection closes; give
		// it a bounded while to do so.
		deadline := time.Now().Add(30 * time.Second)
		for {
			res, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{Command: `for f in /proc/[0-9]*/comm; do ` +
				`[ "$(cat "$f" 2>/dev/null)" = sleep ] && echo "sleeping: $f"; done; echo checked`})
			if err != nil {
				t.Fatalf("RunCommand: %v", err)
			}
			if slices.Equal(res.Stdout, []string{"checked"}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the interrupted command still runs: %q", res.Stdout)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}
