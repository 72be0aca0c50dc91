package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// zeros is n bytes of zeros.
func zeros(n int64) io.Reader { return io.LimitReader(zeroReader{}, n) }

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestDiskQuota fills a sandbox's disk past its diskMb: the writes fail
// with "Disk quota exceeded" (through the files API: resource_exhausted,
// HTTP 507, a *SandboxError and never a rate limit), the sandbox still
// answers, another sandbox still writes, and deleting the file frees the
// quota. A full tmpfs is resource_exhausted too.
func TestDiskQuota(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{Resources: sdbx.Resources{DiskMB: 64}})
	other := e.sandbox(t, sdbx.CreateSandboxOptions{})
	if sb.Resources.DiskMB != 64 || other.Resources.DiskMB != 2048 {
		t.Fatalf("diskMb = %d and %d, want 64 and the default 2048", sb.Resources.DiskMB, other.Resources.DiskMB)
	}
	if got, err := c.GetSandbox(t.Context(), sb.ID); err != nil || got.Resources.DiskMB != 64 {
		t.Fatalf("GetSandbox: %+v, %v", got, err)
	}

	res, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{Command: "dd if=/dev/zero of=/workspace/big bs=1M count=200"})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode == 0 || !strings.Contains(strings.Join(res.Stderr, "\n"), "Disk quota exceeded") {
		t.Fatalf("dd of 200 MiB with diskMb 64: exit %d, stderr %q", res.ExitCode, res.Stderr)
	}
	if out := runCode(t, c, sb.ID, "print('still here')"); strings.Join(out.Execution.Logs.Stdout, "") != "still here" {
		t.Fatalf("after the disk fill: %q", out.Execution.Logs.Stdout)
	}
	runShell(t, c, other.ID, "dd if=/dev/zero of=/workspace/f bs=1M count=100 && rm /workspace/f")

	// The files API gets the same wall, with an error naming it and the
	// fix; it is not a rate limit (waiting does not free the disk).
	_, err = c.WriteFile(t.Context(), sb.ID, "/workspace/upload", zeros(32<<20))
	wantDiskFull(t, "WriteFile past the quota", err, sb.ID, "disk quota exceeded", "diskMb", "delete files")
	resp := e.do(t, "PUT", "/v1/sandboxes/"+sb.ID+"/files?path=/workspace/raw", "bearer", strings.Repeat("x", 8<<20),
		map[string]string{"Content-Type": "application/octet-stream"})
	if code, msg := errorBody(t, resp); resp.status != http.StatusInsufficientStorage || code != "resource_exhausted" ||
		resp.header.Get("Retry-After") != "" || !strings.Contains(msg, "disk quota exceeded") {
		t.Fatalf("PUT past the quota: %d %q (Retry-After %q), want 507 resource_exhausted", resp.status, resp.body, resp.header.Get("Retry-After"))
	}
	// A full tmpfs (/run is 16 MiB) is the same kind, naming the device.
	_, err = c.WriteFile(t.Context(), other.ID, "/run/fill", zeros(32<<20))
	wantDiskFull(t, "WriteFile into a full /run", err, other.ID, "no space left on device", "delete files")
	// Deleting the big file frees its share of the quota.
	runShell(t, c, sb.ID, "rm /workspace/big && dd if=/dev/zero of=/workspace/f bs=1M count=40")
	if _, err := c.WriteFile(t.Context(), sb.ID, "/workspace/upload", zeros(8<<20)); err != nil {
		t.Fatalf("WriteFile after freeing space: %v", err)
	}

	for _, body := range []string{`{"diskMb":1}`, `{"diskMb":99999999}`} {
		resp := e.do(t, "POST", "/v1/sandboxes", "bearer", `{"templateId":"python-3-11","resources":`+body+`}`, nil)
		if resp.status != 400 || !strings.Contains(string(resp.body), "resources.diskMb") {
			t.Errorf("resources %s: %d %s", body, resp.status, resp.body)
		}
	}
}

// wantDiskFull fails unless err is a full disk's refusal: a *SandboxError
// matching ErrResourceExhausted (507) and no rate limit, naming subs.
func wantDiskFull(t *testing.T, what string, err error, id string, subs ...string) {
	t.Helper()
	var se *sdbx.SandboxError
	var rl *sdbx.RateLimitError
	if !errors.As(err, &se) || !errors.Is(err, sdbx.ErrResourceExhausted) || errors.Is(err, sdbx.ErrRateLimited) || errors.As(err, &rl) ||
		se.Code != sdbx.CodeResourceExhausted || se.StatusCode != http.StatusInsufficientStorage || se.SandboxID != id {
		t.Fatalf("%s = %v (%T), want a *SandboxError resource_exhausted (507)", what, err, err)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: %q does not name %q", what, err, s)
		}
	}
}

// capServer starts a server with per-key caps and returns it with a
// client of a (non-admin) key it made.
func capServer(t *testing.T, dir string, args ...string) (*Server, *sdbx.Client, string) {
	t.Helper()
	e := setup(t)
	srv, err := StartServer(t.Context(), ServerOptions{
		Bin: e.bin, DataDir: dir, APIKey: RandomKey(), Args: append([]string{"--pool", "none"}, args...),
	})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sdbx.New(sdbx.Config{ServerURL: srv.URL, APIKey: srv.APIKey})
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := admin.CreateKey(t.Context(), "capped-"+RandomKey()[:8])
	if err != nil {
		t.Fatal(err)
	}
	c, err := sdbx.New(sdbx.Config{ServerURL: srv.URL, APIKey: secret, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c, secret
}

// wantCapped fails unless err is a cap's refusal: rate_limited, HTTP 429,
// with a retry hint.
func wantCapped(t *testing.T, what string, err error) {
	t.Helper()
	var rl *sdbx.RateLimitError
	if !errors.As(err, &rl) || rl.StatusCode != http.StatusTooManyRequests || rl.RetryAfter <= 0 || !strings.Contains(rl.Message, "per-key") {
		t.Fatalf("%s = %v (%T), want a RateLimitError (429, RetryAfter, naming the cap)", what, err, err)
	}
}

func deleteAll(t *testing.T, c *sdbx.Client, ids ...string) {
	t.Helper()
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := c.DeleteSandbox(ctx, id); err != nil && !isGone(err) {
			t.Errorf("DeleteSandbox(%s): %v", id, err)
		}
		cancel()
	}
}

// TestSandboxesPerKey: with --max-sandboxes-per-key 2, a key's third
// sandbox is refused until one is deleted, also across a server restart;
// the admin key is exempt.
func TestSandboxesPerKey(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	args := []string{"--max-sandboxes-per-key", "2"}
	srv, c, secret := capServer(t, dir, args...)
	var ids, adminIDs []string
	var admin *sdbx.Client
	defer func() {
		deleteAll(t, c, ids...)
		if admin != nil {
			deleteAll(t, admin, adminIDs...)
		}
		srv.Stop(30 * time.Second)
	}()
	create := func() (*sdbx.Sandbox, error) {
		return c.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: "python-3-11", Resources: sdbx.Resources{DiskMB: 32}})
	}
	for i := 0; i < 2; i++ {
		sb, err := create()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sb.ID)
	}
	_, err := create()
	wantCapped(t, "the third CreateSandbox", err)

	// A restarted server counts the sandboxes it adopted.
	if err := srv.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	srv, err = StartServer(t.Context(), ServerOptions{Bin: setup(t).bin, DataDir: dir, APIKey: srv.APIKey, Args: append([]string{"--pool", "none"}, args...)})
	if err != nil {
		t.Fatal(err)
	}
	if c, err = sdbx.New(sdbx.Config{ServerURL: srv.URL, APIKey: secret, MaxRetries: -1}); err != nil {
		t.Fatal(err)
	}
	_, err = create()
	wantCapped(t, "CreateSandbox after a restart", err)
	// The adopted sandboxes keep their disk quota.
	res, err := c.RunCommand(t.Context(), ids[1], sdbx.Command{Command: "dd if=/dev/zero of=/workspace/big bs=1M count=64"})
	if err != nil || res.ExitCode == 0 || !strings.Contains(strings.Join(res.Stderr, "\n"), "Disk quota exceeded") {
		t.Fatalf("dd past diskMb 32 after a restart: %+v, %v", res, err)
	}

	deleteAll(t, c, ids[0])
	ids = ids[1:]
	sb, err := create()
	if err != nil {
		t.Fatalf("CreateSandbox after a delete: %v", err)
	}
	ids = append(ids, sb.ID)

	// The admin key has no cap.
	if admin, err = sdbx.New(sdbx.Config{ServerURL: srv.URL, APIKey: srv.APIKey}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		sb, err := admin.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
		if err != nil {
			t.Fatalf("admin CreateSandbox %d: %v", i, err)
		}
		adminIDs = append(adminIDs, sb.ID)
	}
}

// TestExecutionsPerKey: with --max-executions-per-key 1, a second run is
// refused while the first runs, and the slot comes back when the first
// ends, times out, or its client goes away.
func TestExecutionsPerKey(t *testing.T) {
	t.Parallel()
	srv, c, _ := capServer(t, filepath.Join(t.TempDir(), "data"), "--max-executions-per-key", "1")
	defer srv.Stop(30 * time.Second)
	sb, err := c.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
	if err != nil {
		t.Fatal(err)
	}
	defer deleteAll(t, c, sb.ID)

	// While a run waits for a gate file, every other kind of run is refused.
	gate := "/tmp/gate"
	var during []error
	res, err := c.RunCode(t.Context(), sb.ID,
		"import os, time\nprint('waiting', flush=True)\nwhile not os.path.exists('"+gate+"'):\n    time.sleep(0.02)\nprint('done')",
		sdbx.Timeout(time.Minute),
		sdbx.OnStdout(func(l sdbx.OutputLine) {
			if l.Line != "waiting" {
				return
			}
			_, err := c.RunCode(t.Context(), sb.ID, "1")
			during = append(during, err)
			_, err = c.RunCommand(t.Context(), sb.ID, sdbx.Command{Command: "true"})
			during = append(during, err)
			_, err = c.RunBatch(t.Context(), sb.ID, []sdbx.BatchJob{{ID: "a", Code: "1"}})
			during = append(during, err)
			// Files are not executions.
			_, err = c.WriteFile(t.Context(), sb.ID, gate, strings.NewReader("go"))
			during = append(during, err)
		}))
	if err != nil || strings.Join(res.Execution.Logs.Stdout, ",") != "waiting,done" {
		t.Fatalf("the first run: %+v, %v", res, err)
	}
	if len(during) != 4 {
		t.Fatalf("the first run never printed 'waiting'")
	}
	for i, what := range []string{"RunCode", "RunCommand", "RunBatch"} {
		wantCapped(t, what+" during another run", during[i])
	}
	if during[3] != nil {
		t.Fatalf("WriteFile during a run: %v", during[3])
	}
	// The slot is back once the run has ended...
	runCode(t, c, sb.ID, "1")
	// ...also after a timeout...
	if _, err := c.RunCode(t.Context(), sb.ID, "import time\ntime.sleep(30)", sdbx.Timeout(500*time.Millisecond)); !errors.Is(err, sdbx.ErrTimeout) {
		t.Fatalf("RunCode past its timeout = %v", err)
	}
	runShell(t, c, sb.ID, "true")
	// ...and after the client went away mid-run.
	ctx, cancel := context.WithCancel(t.Context())
	_, err = c.RunCode(ctx, sb.ID, "import time\nprint('started', flush=True)\ntime.sleep(60)",
		sdbx.OnStdout(func(sdbx.OutputLine) { cancel() }))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled RunCode = %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := c.RunCode(t.Context(), sb.ID, "1")
		if err == nil {
			break
		}
		var rl *sdbx.RateLimitError
		if !errors.As(err, &rl) || time.Now().After(deadline) {
			t.Fatalf("RunCode after the client of a run went away: %v", err)
		}
		time.Sleep(rl.RetryAfter / 10)
	}
	// A batch runs with the slots it got (here 1 of its 4).
	results, err := c.RunBatch(t.Context(), sb.ID, []sdbx.BatchJob{{ID: "a", Code: "print(1)"}, {ID: "b", Code: "print(2)"}})
	if err != nil || len(results) != 2 || !results[0].Success || !results[1].Success {
		t.Fatalf("RunBatch with one slot: %+v, %v", results, err)
	}
}
