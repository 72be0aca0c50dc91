package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// testEnv is the server every test of the package talks to. TestMain sets
// it once, before any test runs; it is nil when the package is skipped.
type testEnv struct {
	srv *Server
	// bin is the built sdbx binary (also the CLI).
	bin string
	// dir is a scratch directory of the whole run.
	dir string
}

var (
	env        *testEnv
	skipReason string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	switch {
	case os.Geteuid() != 0:
		skipReason = "end-to-end tests need root (sandboxes use namespaces, cgroups and mounts)"
		return m.Run()
	case testing.Short():
		skipReason = "end-to-end tests are skipped in -short mode"
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	dir, err := os.MkdirTemp("", "sdbx-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	root, err := ModuleRoot(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	bin, err := BuildBinary(ctx, root, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dataDir := filepath.Join(dir, "data")
	srv, err := StartServer(ctx, ServerOptions{Bin: bin, DataDir: dataDir, APIKey: RandomKey()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	env = &testEnv{srv: srv, bin: bin, dir: dir}

	code := m.Run()

	if err := srv.Stop(30 * time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\nserver output (tail):\n%s\n", err, tail(srv.Logs(), 60))
		code = 1
	}
	// Nothing may stay mounted in the data directory once the server has
	// exited; never remove a tree that still has mounts in it.
	mounts, err := MountsUnder(dir)
	// Sandboxes outlive a stopped server; every test must delete what it
	// created. One still running here is a leak: report and kill it.
	if leaked := KillSandboxesUnder(dir); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: %d sandboxes were never deleted (killed now): %v\n", len(leaked), leaked)
		code = 1
	}
	// A server that stopped with no sandbox left removes its parent
	// cgroups: one per data dir would pile up on the host.
	if left := CgroupParentsOf(dataDir); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: the server left its parent cgroups behind (removing them now): %v\n", left)
		for _, d := range left {
			os.Remove(d)
		}
		code = 1
	}
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "e2e: read mounts:", err)
		code = 1
	case len(mounts) > 0:
		fmt.Fprintf(os.Stderr, "e2e: the server left %d mounts behind (not removing %s):\n  %s\n",
			len(mounts), dir, strings.Join(mounts, "\n  "))
		code = 1
	default:
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: remove scratch dir:", err)
		}
	}
	return code
}

// setup skips t when the package runs without a server, and otherwise
// prints the server's recent output if t fails.
func setup(t *testing.T) *testEnv {
	t.Helper()
	if env == nil {
		t.Skip(skipReason)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server output (tail):\n%s", tail(env.srv.Logs(), 40))
		}
	})
	return env
}

// client returns an SDK client with the test key.
func (e *testEnv) client(t *testing.T) *sdbx.Client {
	t.Helper()
	return e.clientWithKey(t, e.srv.APIKey)
}

func (e *testEnv) clientWithKey(t *testing.T, key string) *sdbx.Client {
	t.Helper()
	c, err := sdbx.New(sdbx.Config{ServerURL: e.srv.URL, APIKey: key, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatalf("sdbx.New: %v", err)
	}
	return c
}

// sandbox creates a sandbox of opts (python-3-11 when TemplateID is empty)
// and deletes it when the test ends.
func (e *testEnv) sandbox(t *testing.T, opts sdbx.CreateSandboxOptions) *sdbx.Sandbox {
	t.Helper()
	if opts.TemplateID == "" {
		opts.TemplateID = "python-3-11"
	}
	c := e.client(t)
	sb, err := c.CreateSandbox(t.Context(), opts)
	if err != nil {
		t.Fatalf("CreateSandbox(%+v): %v", opts, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := c.DeleteSandbox(ctx, sb.ID)
		if err != nil && !isGone(err) {
			t.Errorf("DeleteSandbox(%s): %v", sb.ID, err)
		}
	})
	return sb
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
