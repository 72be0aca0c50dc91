package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// ptyTerm reads a PTY's output in the background.
type ptyTerm struct {
	t  *testing.T
	p  *sdbx.PTY
	mu sync.Mutex
	b  bytes.Buffer
	// from is where the next waitFor starts looking.
	from    int
	changed chan struct{}
	done    chan struct{}
	err     error
}

func newPTYTerm(t *testing.T, p *sdbx.PTY) *ptyTerm {
	tm := &ptyTerm{t: t, p: p, changed: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(tm.done)
		buf := make([]byte, 4096)
		for {
			n, err := p.Read(buf)
			tm.mu.Lock()
			tm.b.Write(buf[:n])
			if err != nil {
				tm.err = err
			}
			tm.mu.Unlock()
			select {
			case tm.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return tm
}

// waitFor waits until the output after the last match matches re.
func (tm *ptyTerm) waitFor(re *regexp.Regexp) []string {
	tm.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		tm.mu.Lock()
		s := tm.b.String()
		ended := tm.err
		if loc := re.FindStringSubmatchIndex(s[tm.from:]); loc != nil {
			m := re.FindStringSubmatch(s[tm.from:])
			tm.from += loc[1]
			tm.mu.Unlock()
			return m
		}
		tm.mu.Unlock()
		if ended != nil {
			tm.t.Fatalf("output ended (%v) before matching %q: %q", ended, re, s)
		}
		select {
		case <-tm.changed:
		case <-deadline:
			tm.t.Fatalf("output never matched %q: %q", re, s)
		}
	}
}

func (tm *ptyTerm) write(s string) {
	tm.t.Helper()
	if _, err := tm.p.Write([]byte(s)); err != nil {
		tm.t.Fatalf("Write(%q): %v", s, err)
	}
}

// sandboxSleeps returns the live sleep processes of the sandbox.
func sandboxSleeps(t *testing.T, c *sdbx.Client, sbID string) string {
	t.Helper()
	script := `for f in /proc/[0-9]*/stat; do read -r l < "$f" 2>/dev/null || continue; case "$l" in *"(sleep) "[!Z]*) echo "${l%% *}";; esac; done`
	res, err := c.RunCommand(t.Context(), sbID, sdbx.Command{Command: script})
	if err != nil {
		t.Fatalf("list sleeps: %v", err)
	}
	// A failed listing prints nothing, which would read as "no sleeps".
	if res.ExitCode != 0 {
		t.Fatalf("list sleeps exited %d: %v", res.ExitCode, res.Stderr)
	}
	return strings.Join(res.Stdout, " ")
}

func TestPTYShell(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})

	p, err := c.OpenPTY(t.Context(), sb.ID, sdbx.PTYOptions{Cols: 100, Rows: 30})
	if err != nil {
		t.Fatalf("OpenPTY: %v", err)
	}
	if p.ID == "" || p.Process.Cols != 100 || p.Process.Rows != 30 || !p.Process.Running {
		t.Fatalf("PTY = %+v", p.Process)
	}
	tm := newPTYTerm(t, p)
	tm.write("echo $((6*7))\n")
	tm.waitFor(regexp.MustCompile(`[\r\n]42\r?\n`))
	tm.write("tty\n")
	tm.waitFor(regexp.MustCompile(`[\r\n]/dev/pts/\d+\r?\n`))
	if err := p.Resize(120, 40); err != nil {
		t.Fatal(err)
	}
	tm.write("stty size\n")
	tm.waitFor(regexp.MustCompile(`[\r\n]40 120\r?\n`))

	// Ctrl-C interrupts the foreground job; the shell lives on.
	tm.write("sleep 100\n")
	waitFor(t, func() bool { return sandboxSleeps(t, c, sb.ID) != "" }, func() string { return "sleep 100 never started" })
	tm.write("\x03")
	tm.write("echo alive=$((1+1))\n")
	tm.waitFor(regexp.MustCompile(`[\r\n]alive=2\r?\n`))
	if s := sandboxSleeps(t, c, sb.ID); s != "" {
		t.Fatalf("sleep %s survived Ctrl-C", s)
	}

	// Jobs in process groups of their own die with the session.
	tm.write("sleep 1000 & nohup sleep 1001 >/dev/null 2>&1 & echo started=$((2+3))\n")
	tm.waitFor(regexp.MustCompile(`started=5`))
	waitFor(t, func() bool { return len(strings.Fields(sandboxSleeps(t, c, sb.ID))) == 2 }, func() string {
		return fmt.Sprintf("sleeps before close: %q, want 2", sandboxSleeps(t, c, sb.ID))
	})
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if code, err := p.Wait(); err != nil || code != 137 {
		t.Errorf("Wait after Close = %d, %v; want 137 (SIGKILL)", code, err)
	}
	<-tm.done
	if s := sandboxSleeps(t, c, sb.ID); s != "" {
		t.Fatalf("processes of the closed session left in the sandbox: %s", s)
	}
}

func TestPTYExitCodeAndReattach(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})

	// The exit code of the session's shell; the context of OpenPTY bounds
	// only the handshake.
	hctx, cancel := context.WithCancel(t.Context())
	p, err := c.OpenPTY(hctx, sb.ID, sdbx.PTYOptions{})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	tm := newPTYTerm(t, p)
	tm.write("echo ok=$((1+2))\n")
	tm.waitFor(regexp.MustCompile(`ok=3`))
	tm.write("exit 3\n")
	<-tm.done
	if !errors.Is(tm.err, io.EOF) {
		t.Errorf("Read ended with %v, want EOF", tm.err)
	}
	if code, err := p.Wait(); err != nil || code != 3 {
		t.Fatalf("Wait = %d, %v; want 3", code, err)
	}

	// Output written while no client is attached is kept for the next.
	p, err = c.OpenPTY(t.Context(), sb.ID, sdbx.PTYOptions{Command: "read x; echo got-$x; sleep 0.3; echo later-$((2*3)); read y; exit $y"})
	if err != nil {
		t.Fatal(err)
	}
	tm = newPTYTerm(t, p)
	tm.write("one\n")
	tm.waitFor(regexp.MustCompile(`got-one`))
	off := p.Offset()
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	<-tm.done
	time.Sleep(500 * time.Millisecond) // "later" is written meanwhile (or soon after: it is waited for)
	p2, err := c.OpenPTY(t.Context(), sb.ID, sdbx.PTYOptions{PTYID: p.ID, Offset: off})
	if err != nil {
		t.Fatalf("re-attach: %v", err)
	}
	tm2 := newPTYTerm(t, p2)
	tm2.waitFor(regexp.MustCompile(`later-6`))
	tm2.mu.Lock()
	if strings.Contains(tm2.b.String(), "got-one") {
		t.Errorf("re-attach from %d repeated earlier output: %q", off, tm2.b.String())
	}
	tm2.mu.Unlock()
	// From offset 0, everything buffered.
	p3, err := c.OpenPTY(t.Context(), sb.ID, sdbx.PTYOptions{PTYID: p.ID})
	if err != nil {
		t.Fatal(err)
	}
	tm3 := newPTYTerm(t, p3)
	tm3.waitFor(regexp.MustCompile(`got-one[\s\S]*later-6`))
	tm2.write("9\n")
	if code, err := p2.Wait(); err != nil || code != 9 {
		t.Fatalf("Wait = %d, %v; want 9", code, err)
	}
	if code, err := p3.Wait(); err != nil || code != 9 {
		t.Fatalf("second client's Wait = %d, %v; want 9", code, err)
	}
	<-tm2.done
	<-tm3.done
}

func TestPTYAuthAndBadInput(t *testing.T) {
	t.Parallel()
	e := setup(t)
	admin := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	name := "e2e-pty-" + RandomKey()[10:22]
	_, secret, err := admin.CreateKey(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.RevokeKey(context.Background(), name) })

	if _, err := e.clientWithKey(t, "").OpenPTY(t.Context(), sb.ID, sdbx.PTYOptions{}); !errors.Is(err, sdbx.ErrUnauthenticated) {
		t.Errorf("OpenPTY without a key: %v, want unauthenticated", err)
	}
	if _, err := e.clientWithKey(t, secret).OpenPTY(t.Context(), sb.ID, sdbx.PTYOptions{}); !errors.Is(err, sdbx.ErrNotFound) {
		t.Errorf("OpenPTY in another tenant's sandbox: %v, want not found", err)
	}
	if _, err := admin.OpenPTY(t.Context(), sb.ID, sdbx.PTYOptions{PTYID: "pty_nope"}); !errors.Is(err, sdbx.ErrNotFound) {
		t.Errorf("OpenPTY of an unknown session: %v, want not found", err)
	}

	// Raw: status codes, and the key in the query.
	get := func(query string, hdr map[string]string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+"/v1/sandboxes/"+sb.ID+"/pty"+query, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	auth := map[string]string{"Authorization": "Bearer " + e.srv.APIKey}
	for _, tc := range []struct {
		query string
		hdr   map[string]string
		want  int
	}{
		{"", nil, http.StatusUnauthorized},
		{"?key=wrong", nil, http.StatusUnauthorized},
		{"?key=" + secret, nil, http.StatusNotFound},
		{"?cols=0&rows=10", auth, http.StatusBadRequest},
		{"?cols=1001&rows=10", auth, http.StatusBadRequest},
		{"?cols=80", auth, http.StatusBadRequest},
		{"?ptyId=pty_nope", auth, http.StatusNotFound},
		{"?key=" + e.srv.APIKey + "&command=exit+0", nil, http.StatusSwitchingProtocols},
	} {
		if got := get(tc.query, tc.hdr); got != tc.want {
			t.Errorf("GET pty%s: %d, want %d", tc.query, got, tc.want)
		}
	}
}

func TestPTYSandboxDeleted(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	p, err := c.OpenPTY(t.Context(), sb.ID, sdbx.PTYOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tm := newPTYTerm(t, p)
	tm.write("echo up=$((3*3))\n")
	tm.waitFor(regexp.MustCompile(`up=9`))
	if err := c.DeleteSandbox(t.Context(), sb.ID); err != nil {
		t.Fatal(err)
	}
	// The connection ends (with the exit of the killed shell, or an
	// error): nothing hangs.
	<-tm.done
	code, err := p.Wait()
	t.Logf("after delete: Wait = %d, %v; Read ended with %v", code, err, tm.err)
	if err == nil && code == 0 {
		t.Errorf("Wait = 0, nil after the sandbox was deleted")
	}
	if _, err := c.OpenPTY(t.Context(), sb.ID, sdbx.PTYOptions{PTYID: p.ID}); !errors.Is(err, sdbx.ErrConflict) && !errors.Is(err, sdbx.ErrNotFound) {
		t.Errorf("re-attach in a deleted sandbox: %v", err)
	}
}
