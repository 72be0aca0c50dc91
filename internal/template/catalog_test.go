package template

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func TestCatalogBaseEtcIsAnAllowList(t *testing.T) {
	dir := t.TempDir()
	c, err := NewCatalog(t.Context(), dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
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
	if _, err := NewCatalog(t.Context(), dir, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if old, _ := filepath.Glob(etc + ".old-*"); len(old) != 0 {
		t.Errorf("an unchanged base etc was moved aside on restart: %v", old)
	}
	for _, tmpl := range c.List() {
		if len(tmpl.Overlays) == 0 || tmpl.DefaultCwd != "/workspace" {
			t.Errorf("template %s: overlays %v cwd %q", tmpl.ID, tmpl.Overlays, tmpl.DefaultCwd)
		}
	}
}

func TestCatalogReportsRealVersions(t *testing.T) {
	c, err := NewCatalog(t.Context(), t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	py, err := c.Get("python-3-11")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil && (py.Version == "" || py.Version[:4] != "3.11") {
		t.Errorf("python-3-11 version %q, want the host's 3.11.x", py.Version)
	}
	if _, err := c.Get("nope"); err == nil {
		t.Error("unknown template found")
	}
}
