package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/agent"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/sandbox"
	"github.com/sdbx/sdbx/internal/store/sqlite"
)

// agentDriver is the fake driver with a real agent behind Dial: every
// sandbox reaches one in-process agent whose file root is a temporary
// directory.
type agentDriver struct {
	*fakeDriver
	sock string
}

func (d *agentDriver) Dial(ctx context.Context, id string) (net.Conn, error) {
	if s, err := d.Status(ctx, id); err != nil || s != runtime.StateRunning {
		return nil, errors.Join(errdefs.ErrUnavailable, err)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "unix", d.sock)
}

// fileHarness is a service whose sandboxes share one real agent; root is
// the host path of the sandboxes' "/".
type fileHarness struct {
	svc    *sandbox.Service
	driver *agentDriver
	root   string
}

func newFileHarness(t *testing.T) fileHarness {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdbx-svc-files-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "workspace"), 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := agent.New(agent.Options{FileRoot: root, Reap: agent.ReapChildren})
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent Serve: %v", err)
		}
	})

	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sdbx.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := &agentDriver{fakeDriver: newFakeDriver(), sock: sock}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := sandbox.New(sandbox.Config{ExpiryInterval: time.Hour}, st, d, catalog, log)
	return fileHarness{svc: svc, driver: d, root: root}
}

func TestFilesThroughTheAgent(t *testing.T) {
	h := newFileHarness(t)
	ctx := t.Context()
	sb, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py"})
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("print('hello')\n\x00binary")
	e, err := h.svc.WriteFile(ctx, "t1", sb.ID, "/workspace/src/hello.py", bytes.NewReader(content), sandbox.WriteFileOptions{CreateParents: true})
	if err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	if e.Name != "hello.py" || e.Path != "/workspace/src/hello.py" || e.Type != sandbox.FileTypeFile || e.Size != int64(len(content)) || e.Mode != "0644" || e.ModifiedAt.Location() != time.UTC {
		t.Errorf("entry = %+v", e)
	}
	if b, _ := os.ReadFile(filepath.Join(h.root, "workspace/src/hello.py")); !bytes.Equal(b, content) {
		t.Errorf("file in the sandbox = %q", b)
	}

	re, r, err := h.svc.OpenFile(ctx, "t1", sb.ID, "/workspace/src/hello.py")
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, content) || re != e {
		t.Errorf("OpenFile read %q (%v), entry %+v", got, err, re)
	}

	// ListFiles defaults to the template's working directory.
	list, err := h.svc.ListFiles(ctx, "t1", sb.ID, "")
	if err != nil {
		t.Fatalf("ListFiles: %v", err)
	}
	if list.Path != "/workspace" || len(list.Entries) != 1 || list.Entries[0].Name != "src" || list.Entries[0].Type != sandbox.FileTypeDir {
		t.Errorf("ListFiles = %+v", list)
	}

	if _, err := h.svc.MakeDir(ctx, "t1", sb.ID, "/workspace/out/a", true); err != nil {
		t.Errorf("MakeDir: %v", err)
	}
	moved, err := h.svc.MoveFile(ctx, "t1", sb.ID, "/workspace/src/hello.py", "/workspace/out/a/hello.py", false)
	if err != nil || moved.Path != "/workspace/out/a/hello.py" {
		t.Errorf("MoveFile = %+v, %v", moved, err)
	}
	st, err := h.svc.StatFile(ctx, "t1", sb.ID, "/workspace/out/a/hello.py")
	if err != nil || st.Size != int64(len(content)) {
		t.Errorf("StatFile = %+v, %v", st, err)
	}
	for p, want := range map[string]bool{"/workspace/out/a/hello.py": true, "/workspace/src/hello.py": false} {
		if ok, err := h.svc.FileExists(ctx, "t1", sb.ID, p); err != nil || ok != want {
			t.Errorf("FileExists(%s) = %v, %v", p, ok, err)
		}
	}

	err = h.svc.DeleteFile(ctx, "t1", sb.ID, "/workspace/out", false)
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "directory not empty") {
		t.Errorf("DeleteFile of a non-empty directory: %v", err)
	}
	if err := h.svc.DeleteFile(ctx, "t1", sb.ID, "/workspace/out", true); err != nil {
		t.Errorf("DeleteFile recursive: %v", err)
	}
	list, err = h.svc.ListFiles(ctx, "t1", sb.ID, "/workspace/")
	var names []string
	for _, e := range list.Entries {
		names = append(names, e.Name)
	}
	if err != nil || !slices.Equal(names, []string{"src"}) {
		t.Errorf("after delete: %q, %v", names, err)
	}
}

func TestFileErrors(t *testing.T) {
	h := newFileHarness(t)
	ctx := t.Context()
	sb, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		kind error
		msg  string
	}{
		{"other tenant", func() error {
			_, err := h.svc.WriteFile(ctx, "t2", sb.ID, "/workspace/x", strings.NewReader("x"), sandbox.WriteFileOptions{})
			return err
		}, errdefs.ErrNotFound, sb.ID},
		{"unknown sandbox", func() error {
			_, _, err := h.svc.OpenFile(ctx, "t1", "sb-nope", "/workspace/x")
			return err
		}, errdefs.ErrNotFound, ""},
		{"write over a directory", func() error {
			_, err := h.svc.WriteFile(ctx, "t1", sb.ID, "/workspace", strings.NewReader("x"), sandbox.WriteFileOptions{})
			return err
		}, errdefs.ErrConflict, "write /workspace: is a directory"},
		{"relative path", func() error {
			_, err := h.svc.StatFile(ctx, "t1", sb.ID, "workspace")
			return err
		}, errdefs.ErrInvalidArgument, `"workspace"`},
		{"missing file", func() error {
			_, _, err := h.svc.OpenFile(ctx, "t1", sb.ID, "/workspace/none.txt")
			return err
		}, errdefs.ErrNotFound, "read /workspace/none.txt: no such file or directory"},
		{"list a file", func() error {
			_, err := h.svc.WriteFile(ctx, "t1", sb.ID, "/workspace/f", strings.NewReader("x"), sandbox.WriteFileOptions{})
			if err != nil {
				return err
			}
			_, err = h.svc.ListFiles(ctx, "t1", sb.ID, "/workspace/f")
			return err
		}, errdefs.ErrConflict, "not a directory"},
		{"move onto an existing file", func() error {
			_, err := h.svc.MoveFile(ctx, "t1", sb.ID, "/workspace/f", "/workspace/f2", false)
			if err != nil {
				return err
			}
			if _, err := h.svc.WriteFile(ctx, "t1", sb.ID, "/workspace/f", strings.NewReader("y"), sandbox.WriteFileOptions{}); err != nil {
				return err
			}
			_, err = h.svc.MoveFile(ctx, "t1", sb.ID, "/workspace/f", "/workspace/f2", false)
			return err
		}, errdefs.ErrConflict, "already exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v: want kind %v mentioning %q", err, tt.kind, tt.msg)
			}
		})
	}

	// A sandbox that is not running refuses file operations.
	if err := h.svc.Delete(ctx, "t1", sb.ID); err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.ListFiles(ctx, "t1", sb.ID, "/")
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "terminated") {
		t.Errorf("ListFiles in a terminated sandbox: %v", err)
	}
}
