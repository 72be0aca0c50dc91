package socketio

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/api"
	"github.com/sdbx/sdbx/internal/api/apitest"
	"github.com/sdbx/sdbx/internal/auth"
)

// TestOfficialClientAgainstFake runs client.test.mjs against the transports
// backed by the fake service.
func TestOfficialClientAgainstFake(t *testing.T) {
	svc := apitest.NewService(t.TempDir())
	const key = "e2e-test-key"
	authn := apitest.Authenticator{key: auth.Principal{KeyID: "key-1", Tenant: "tenant-1"}}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h, err := api.NewHandler(svc, authn, logger, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h) // listens on 127.0.0.1
	t.Cleanup(func() {
		_ = h.Close()
		srv.Close()
	})

	RunNodeClient(t, srv.URL, key)

	if n := svc.Sandboxes(); n != 0 {
		t.Errorf("the script left %d sandboxes behind", n)
	}
}

// RunNodeClient runs client.test.mjs against the server at url, installing
// its npm dependencies first when node_modules is missing. It skips the
// test when node or npm is not installed.
func RunNodeClient(t *testing.T, url, apiKey string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found: install Node.js 18+ and npm to run the socket.io-client interop test")
	}
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	ensureNodeModules(t, dir)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	// --test-force-exit: a socket the client library leaves open after the
	// last test must not keep the run alive (seen once in CI-like runs);
	// WaitDelay: never wait on pipes a killed child still holds.
	cmd := exec.CommandContext(ctx, node, "--test", "--test-force-exit", "--test-reporter=spec", "client.test.mjs")
	cmd.WaitDelay = 10 * time.Second
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SDBX_URL="+url, "SDBX_API_KEY="+apiKey, "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test client.test.mjs: %v\n%s", err, out)
	}
	t.Logf("node --test client.test.mjs:\n%s", out)
}

// ensureNodeModules runs npm ci when socket.io-client is not installed.
func ensureNodeModules(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io-client", "package.json")); err == nil {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not found: install Node.js 18+ and npm to run the socket.io-client interop test")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}
