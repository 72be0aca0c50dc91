package fs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/agent/fs"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// TestWriteFullFileSystem fills a 1 MiB tmpfs: the write fails with
// errdefs.ErrResourceExhausted (not a rate limit, not unavailable) and a
// message naming the problem and the fix, the file stays as it was, no
// temporary file is left, and once a file is deleted the write passes.
func TestWriteFullFileSystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts a tmpfs)")
	}
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	f := fs.New(root)
	ctx := t.Context()

	mustWrite(t, f, "/keep", []byte("old"), fs.WriteOptions{})
	mustWrite(t, f, "/filler", make([]byte, 768<<10), fs.WriteOptions{})
	_, err := f.Write(ctx, "/keep", bytes.NewReader(make([]byte, 512<<10)), fs.WriteOptions{})
	wantErr(t, err, errdefs.ErrResourceExhausted, "write /keep", "no space left on device", "delete files")
	if errdefs.Code(err) != "resource_exhausted" {
		t.Errorf("code %q, want resource_exhausted", errdefs.Code(err))
	}
	if _, b, _ := readAll(t, f, "/keep"); string(b) != "old" {
		t.Errorf("/keep after the failed write = %q", b)
	}
	if left := tempLeftovers(t, root); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}

	if err := f.Remove(ctx, "/filler", false); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "/keep", make([]byte, 512<<10), fs.WriteOptions{})
}
