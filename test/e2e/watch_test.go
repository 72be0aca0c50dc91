package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// runShell runs a shell command in the sandbox and fails the test unless it
// exits 0.
func runShell(t *testing.T, c *sdbx.Client, sandboxID, command string) {
	t.Helper()
	res, err := c.RunCommand(t.Context(), sandboxID, sdbx.Command{Command: command})
	if err != nil {
		t.Fatalf("RunCommand(%q): %v", command, err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("RunCommand(%q) exited %d: %v", command, res.ExitCode, res.Stderr)
	}
}

// nextEvents reads n events of w (or fails after a generous deadline).
func nextEvents(t *testing.T, w *sdbx.DirWatch, n int) []string {
	t.Helper()
	var got []string
	deadline := time.After(30 * time.Second)
	for len(got) < n {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				t.Fatalf("watch ended after %q: %v", got, w.Err())
			}
			s := ev.Type + " " + ev.Path
			if ev.OldPath != "" {
				s += " from " + ev.OldPath
			}
			if ev.IsDir {
				s += "/"
			}
			if ev.Timestamp.IsZero() {
				t.Fatalf("event %q without timestamp", s)
			}
			got = append(got, s)
		case <-deadline:
			t.Fatalf("only %d of %d events: %q", len(got), n, got)
		}
	}
	return got
}

func TestWatchDir(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	runShell(t, c, sb.ID, "mkdir -p /workspace/w/sub")

	w, err := c.WatchDir(t.Context(), sb.ID, "/workspace/w", sdbx.WatchOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	runShell(t, c, sb.ID, "cd /workspace/w && touch a && echo x >> a && mv a b && rm b")
	// touch may report "modified" (its timestamps) apart from the
	// append's: runs of "modified" are coalesced only while queued.
	want := []string{"created /workspace/w/a", "modified /workspace/w/a", "renamed /workspace/w/b from /workspace/w/a", "deleted /workspace/w/b"}
	var got []string
	for len(got) == 0 || got[len(got)-1] != "deleted /workspace/w/b" {
		s := nextEvents(t, w, 1)[0]
		if len(got) > 0 && got[len(got)-1] == s && strings.HasPrefix(s, "modified") {
			continue
		}
		got = append(got, s)
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}

	// Recursive: an existing subdirectory, and files in a new one.
	runShell(t, c, sb.ID, "echo 1 > /workspace/w/sub/old && mkdir -p /workspace/w/new/deep && echo 2 > /workspace/w/new/deep/f")
	seen := map[string]bool{}
	for !seen["created /workspace/w/new/deep/f"] || !seen["created /workspace/w/sub/old"] {
		for _, s := range nextEvents(t, w, 1) {
			seen[s] = true
		}
	}
	// A file written through the API is one change of its path.
	if _, err := c.WriteFile(t.Context(), sb.ID, "/workspace/w/api.txt", strings.NewReader("hi")); err != nil {
		t.Fatal(err)
	}
	for {
		s := nextEvents(t, w, 1)[0]
		if strings.Contains(s, ".sdbx-") {
			t.Fatalf("temporary file reported: %q", s)
		}
		if s == "created /workspace/w/api.txt" {
			break
		}
	}

	// Errors.
	_, err = c.WatchDir(t.Context(), sb.ID, "/workspace/missing", sdbx.WatchOptions{})
	if !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("missing dir: %v, want not_found", err)
	}
	_, err = c.WatchDir(t.Context(), sb.ID, "/workspace/w/sub/old", sdbx.WatchOptions{})
	if !errors.Is(err, sdbx.ErrConflict) || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("file: %v, want conflict not a directory", err)
	}
	// An escape through a symbolic link stays inside the sandbox: the
	// link's target is resolved in the sandbox's root.
	runShell(t, c, sb.ID, "ln -s /../../../../etc /workspace/esc")
	w2, err := c.WatchDir(t.Context(), sb.ID, "/workspace/esc", sdbx.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	runShell(t, c, sb.ID, "touch /etc/sdbx-watch-marker")
	if got := nextEvents(t, w2, 1); got[0] != "created /workspace/esc/sdbx-watch-marker" {
		t.Fatalf("escape watch: %q", got)
	}
	w2.Close()
}

func TestWatchOverflowAndSandboxDelete(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	runShell(t, c, sb.ID, "mkdir -p /workspace/flood")

	// A raw stream that is not read while the sandbox floods the
	// directory: the agent's queue fills and an overflow event follows.
	q := url.Values{"path": {"/workspace/flood"}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+"/v1/sandboxes/"+sb.ID+"/files/watch?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.srv.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	long := strings.Repeat("x", 200)
	runShell(t, c, sb.ID, fmt.Sprintf(`python3 -c '
import os
for i in range(40000):
    open("/workspace/flood/%%05d-%s" %% i, "w").close()
'`, long))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	lines, overflow := 0, false
	for !overflow && sc.Scan() {
		lines++
		overflow = strings.Contains(sc.Text(), `"type":"overflow"`)
	}
	if !overflow {
		t.Fatalf("no overflow event in %d lines (%v)", lines, sc.Err())
	}
	if lines > 40000 {
		t.Fatalf("%d lines before the overflow: nothing was dropped?", lines)
	}

	// Deleting the sandbox ends its watches with a conflict.
	w, err := c.WatchDir(t.Context(), sb.ID, "/workspace", sdbx.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// At most 32 watches per sandbox: the raw stream and w are two.
	var more []*sdbx.DirWatch
	for range 30 {
		m, err := c.WatchDir(t.Context(), sb.ID, "/workspace", sdbx.WatchOptions{})
		if err != nil {
			t.Fatalf("watch %d: %v", len(more)+3, err)
		}
		more = append(more, m)
	}
	if _, err := c.WatchDir(t.Context(), sb.ID, "/workspace", sdbx.WatchOptions{}); !errors.Is(err, sdbx.ErrRateLimited) || !strings.Contains(err.Error(), "32") {
		t.Fatalf("watch 33: %v, want rate_limited", err)
	}
	// Closing one frees its place (once the server has seen it go).
	more[0].Close()
	for i := 0; ; i++ {
		m, err := c.WatchDir(t.Context(), sb.ID, "/workspace", sdbx.WatchOptions{})
		if err == nil {
			more[0] = m
			break
		}
		if !errors.Is(err, sdbx.ErrRateLimited) || i == 100 {
			t.Fatalf("watch after one closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := c.DeleteSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	for range w.Events {
	}
	if err := w.Err(); !errors.Is(err, sdbx.ErrConflict) || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("watch after delete: %v, want conflict (deleted)", err)
	}
	// The raw stream and the other watches end too.
	for sc.Scan() {
	}
	for _, m := range more {
		for range m.Events {
		}
	}
}

func TestCLIFilesWatch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	runShell(t, c, sb.ID, "mkdir -p /workspace/cw")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, "files", "watch", "--json", sb.ID, "/workspace/cw")
	cmd.Env = append(serverEnv(os.Environ()), "SDBX_URL="+e.srv.URL, "SDBX_API_KEY="+e.srv.APIKey)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Stop the CLI before waiting for it: a failing test would otherwise
	// wait for it forever (deferred calls run last-in first-out).
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// The CLI prints nothing when its watch is in place: touch until a
	// change shows up.
	deadline := time.After(30 * time.Second)
	for i := 0; ; i++ {
		runShell(t, c, sb.ID, fmt.Sprintf("touch /workspace/cw/f%d", i))
		select {
		case l := <-lines:
			if !strings.Contains(l, `"type":"created"`) || !strings.Contains(l, `"path":"/workspace/cw/f`) || !strings.Contains(l, `"timestamp":`) {
				t.Fatalf("line %q", l)
			}
			cancel()
			for range lines {
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("no change printed")
		}
	}
}
