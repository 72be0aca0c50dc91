package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/term"
	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// TestCLIShellTerminal drives `sdbx shell` from a pseudo-terminal, as a
// user at a terminal would: raw mode, the window's size, the remote
// shell's exit code.
func TestCLIShellTerminal(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	master, slave, err := term.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	if err := term.SetSize(master, 91, 17); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), e.bin, "shell", sb.ID)
	cmd.Env = append(serverEnv(os.Environ()), "SDBX_URL="+e.srv.URL, "SDBX_API_KEY="+e.srv.APIKey)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	type result struct {
		out string
		err error
	}
	read := make(chan result, 1)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			b.Write(buf[:n])
			if err != nil { // EIO once sdbx has exited
				read <- result{b.String(), err}
				return
			}
		}
	}()
	// Typed before the remote shell is up: the bytes wait in the
	// sandbox's terminal.
	if _, err := master.WriteString("stty size; echo $((6*7)); exit 5\n"); err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.ExitCode() != 5 {
		t.Errorf("sdbx shell exited with %v, want code 5", werr)
	}
	var r result
	select {
	case r = <-read:
	case <-time.After(30 * time.Second):
		t.Fatal("no EOF on the terminal after sdbx exited")
	}
	if !regexp.MustCompile(`[\r\n]42\r?\n`).MatchString(r.out) || !strings.Contains(r.out, "17 91") {
		t.Errorf("terminal output %q: want 42 and the size 17 91", r.out)
	}
}

func TestCLIShellPipe(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	if r := e.cliStdin(t, "hello\n", "shell", sb.ID, "--", "sh", "-c", "read x; echo got=$x; exit 3"); r.code != 3 || !strings.Contains(r.stdout+r.stderr, "got=hello") {
		t.Fatalf("sdbx shell -- sh -c ...: %v; want exit 3 and got=hello", r)
	}
	if r := e.cli(t, "shell"); r.code != 2 || !strings.Contains(r.stderr, "missing sandbox ID") {
		t.Errorf("sdbx shell without ID: %v", r)
	}
	if r := e.cli(t, "shell", "sb-nope"); r.code != 3 {
		t.Errorf("sdbx shell sb-nope: %v, want exit 3", r)
	}
}
