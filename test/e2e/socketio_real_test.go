package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestSocketIOClientAgainstRealServer runs the official socket.io-client
// interop script of test/e2e/socketio (client.test.mjs) against the real
// server of this package, with real sandboxes. The socketio package runs
// the same script against the transports over a fake service.
func TestSocketIOClientAgainstRealServer(t *testing.T) {
	t.Parallel()
	e := setup(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found: install Node.js 18+ and npm to run the socket.io-client interop test")
	}
	dir := nodeClientDir(t)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", "client.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(serverEnv(os.Environ()), "SDBX_URL="+e.srv.URL, "SDBX_API_KEY="+e.srv.APIKey, "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test client.test.mjs against the real server: %v\n%s", err, out)
	}
	t.Logf("node --test client.test.mjs:\n%s", out)

	// The script deletes what it creates.
	list, err := e.client(t).ListSandboxes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range list {
		if sb.Name == "e2e websocket" || sb.Name == "e2e default" || sb.Name == "e2e polling" {
			t.Errorf("the script left sandbox %s (%q) behind", sb.ID, sb.Name)
		}
	}
}

// nodeClientDir returns a directory holding client.test.mjs with
// socket.io-client installed: test/e2e/socketio itself when its
// node_modules is there, else a private copy where `npm ci` ran (so that
// this package never races the socketio package's own install).
func nodeClientDir(t *testing.T) string {
	t.Helper()
	src, err := filepath.Abs("socketio")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, "node_modules", "socket.io-client", "package.json")); err == nil {
		return src
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not found: install Node.js 18+ and npm to run the socket.io-client interop test")
	}
	dir := t.TempDir()
	for _, name := range []string{"package.json", "package-lock.json", "client.test.mjs"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	return dir
}
