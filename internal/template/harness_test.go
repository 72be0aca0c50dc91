package template_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/sdbx/sdbx/internal/runtime/linux"
	"github.com/sdbx/sdbx/internal/runtime/runtimetest"
	"github.com/sdbx/sdbx/internal/sandbox"
	"github.com/sdbx/sdbx/internal/store/sqlite"
	"github.com/sdbx/sdbx/internal/template"
)

// env is a real server minus the transports: SQLite store, linux driver,
// template catalog and sandbox service, over one data directory.
type env struct {
	t       *testing.T
	data    string
	store   *sqlite.Store
	driver  *linux.Driver
	catalog *template.Catalog
	svc     *sandbox.Service
	cgroup  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	runtimetest.RequireRoot(t)
	e := &env{t: t, data: t.TempDir(), cgroup: runtimetest.NewID(t, "sdbx-tpl")}
	st, err := sqlite.Open(t.Context(), filepath.Join(e.data, "sdbx.db"))
	if err != nil {
		t.Fatal(err)
	}
	e.store = st
	e.driver, err = linux.New(linux.Config{
		StateDir: filepath.Join(e.data, "sandboxes"), Exe: runtimetest.BuildBinary(t), CgroupParent: e.cgroup,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.open()
	t.Cleanup(e.close)
	return e
}

// open (re)starts the catalog and the service over the data directory.
func (e *env) open() {
	e.t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := template.NewCatalog(e.t.Context(), template.Config{
		DataDir: e.data, Log: log, Store: e.store, Driver: e.driver, BuildTimeout: 5 * time.Minute,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.catalog = c
	e.svc = sandbox.New(sandbox.Config{ExpiryInterval: time.Hour}, e.store, e.driver, c, log)
}

func (e *env) close() {
	ctx := context.Background()
	e.catalog.Close()
	ids, _ := e.driver.List(ctx)
	for _, id := range ids {
		if err := e.driver.Delete(ctx, id); err != nil {
			e.t.Errorf("cleanup: delete %s: %v", id, err)
		}
	}
	// With no sandbox left, Close removes the parent cgroups.
	if err := e.driver.Close(); err != nil {
		e.t.Errorf("cleanup: close the driver: %v", err)
	}
	for _, d := range runtimetest.CgroupDirs(e.cgroup) {
		e.t.Errorf("cleanup: parent cgroup %s left after Close", d)
		os.Remove(d)
	}
	e.store.Close()
}

// build creates a template and waits for its build to end.
func (e *env) build(tenant string, cfg sandbox.TemplateConfig) template.Template {
	e.t.Helper()
	tmpl, err := e.svc.CreateTemplate(e.t.Context(), tenant, cfg)
	if err != nil {
		e.t.Fatalf("CreateTemplate: %v", err)
	}
	if tmpl.Status != template.StatusBuilding || !strings.HasPrefix(tmpl.ID, "tpl-") {
		e.t.Fatalf("CreateTemplate returned %s %s, want a tpl- id in status building", tmpl.ID, tmpl.Status)
	}
	return e.wait(tenant, tmpl.ID)
}

// wait polls a template until its build ends.
func (e *env) wait(tenant, id string) template.Template {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 5*time.Minute)
	defer cancel()
	for {
		tmpl, err := e.svc.Template(ctx, tenant, id)
		if err != nil {
			e.t.Fatalf("Template(%s): %v", id, err)
		}
		if tmpl.Status != template.StatusBuilding {
			return tmpl
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("template %s still building", id)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sandbox creates a sandbox of the template for tenant.
func (e *env) sandbox(tenant, templateID string) string {
	e.t.Helper()
	sb, err := e.svc.Create(e.t.Context(), tenant, sandbox.CreateOptions{TemplateID: templateID})
	if err != nil {
		e.t.Fatalf("Create(%s): %v", templateID, err)
	}
	return sb.ID
}

// run runs a command and returns its stdout; a non-zero exit fails the
// test.
func (e *env) run(tenant, id string, args ...string) string {
	e.t.Helper()
	res, err := e.svc.RunCommand(e.t.Context(), tenant, id, sandbox.CommandRequest{Args: args}, nil)
	if err != nil {
		e.t.Fatalf("run %q: %v", args, err)
	}
	if res.ExitCode != 0 {
		e.t.Fatalf("run %q: exit %d\nstdout: %s\nstderr: %s", args, res.ExitCode, res.Stdout, res.Stderr)
	}
	return strings.Join(res.Stdout, "\n")
}

// exists reports whether path exists in the sandbox.
func (e *env) exists(tenant, id, path string) bool {
	e.t.Helper()
	ok, err := e.svc.FileExists(e.t.Context(), tenant, id, path)
	if err != nil {
		e.t.Fatalf("FileExists(%s): %v", path, err)
	}
	return ok
}

// layers returns the layer directories on disk.
func (e *env) layers() map[string]bool {
	ents, err := os.ReadDir(filepath.Join(e.data, "layers"))
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string]bool{}
	for _, ent := range ents {
		if !strings.HasPrefix(ent.Name(), ".") {
			m[ent.Name()] = true
		}
	}
	return m
}

// startRegistry serves an in-process OCI registry on 127.0.0.1 and
// returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// helloBinary builds a small static program (CGO off) that prints a
// greeting with $GREETING, for images that have nothing else.
func helloBinary(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	src := `package main

import (
	"fmt"
	"os"
)

func main() { fmt.Println("hello from the image,", os.Getenv("GREETING")) }
`
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.21\n"), 0o644)
	cmd := exec.Command("go", "build", "-o", "hello", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hello: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// file is one entry of a test image layer.
type file struct {
	name, body string
	mode       int64
	dir        bool
}

func layer(t *testing.T, files ...file) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}
		if f.dir {
			hdr.Typeflag, hdr.Size = tar.TypeDir, 0
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if f.dir {
				hdr.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if !f.dir {
			tw.Write([]byte(f.body))
		}
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// push writes an image of the layers (bottom first) with env to ref.
func push(t *testing.T, ref string, env []string, layers ...v1.Layer) {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goruntime.GOARCH
	cf.Config.Env = env
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func isKind(err, kind error) bool { return errors.Is(err, kind) }
