package fs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/agent/fs"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// newFS returns an FS rooted at a fresh directory and that directory.
func newFS(t *testing.T) (*fs.FS, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return fs.New(dir), dir
}

// host returns the host path of sandbox path p under root.
func host(root, p string) string { return filepath.Join(root, filepath.FromSlash(p)) }

func mustWrite(t *testing.T, f *fs.FS, p string, data []byte, opts fs.WriteOptions) agentproto.FileEntry {
	t.Helper()
	e, err := f.Write(t.Context(), p, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatalf("Write(%q): %v", p, err)
	}
	return e
}

func readAll(t *testing.T, f *fs.FS, p string) (agentproto.FileEntry, []byte, error) {
	t.Helper()
	e, file, err := f.Open(t.Context(), p)
	if err != nil {
		return e, nil, err
	}
	defer file.Close()
	b, err := io.ReadAll(file)
	if err != nil {
		t.Fatalf("read %q: %v", p, err)
	}
	return e, b, nil
}

// wantErr checks err's kind and that its message contains each of subs.
func wantErr(t *testing.T, err, kind error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q: want kind %v, got %s", err, kind, errdefs.Code(err))
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

// tempLeftovers lists the write's temporary files under dir.
func tempLeftovers(t *testing.T, dir string) []string {
	t.Helper()
	var left []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && (strings.HasPrefix(d.Name(), ".sdbx-write-") || strings.HasPrefix(d.Name(), ".sdbx-new-")) {
			left = append(left, p)
		}
		return nil
	})
	return left
}

func TestWriteReadRoundTrip(t *testing.T) {
	f, root := newFS(t)
	if err := os.Mkdir(host(root, "/workspace"), 0o755); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3*agentproto.ChunkSize+12345)
	_, _ = rand.Read(big)
	tests := []struct {
		name string
		path string
		data []byte
	}{
		{"empty", "/workspace/empty.txt", nil},
		{"text", "/workspace/hello.py", []byte("print('hi')\n")},
		{"binary with NULs", "/workspace/bin.dat", []byte{0, 1, 0, 0, 255, 0, '\n', 0}},
		{"unicode name", "/workspace/日本語 ñ ✓.txt", []byte("unicode")},
		{"name with spaces and newline", "/workspace/a b\nc", []byte("x")},
		{"several chunks", "/workspace/big.bin", big},
		{"unclean path", "/workspace/./sub/../unclean.txt", []byte("clean")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustWrite(t, f, tt.path, tt.data, fs.WriteOptions{})
			clean := filepath.Clean(tt.path)
			if e.Path != clean || e.Name != filepath.Base(clean) || e.Type != "file" || e.Size != int64(len(tt.data)) || e.Mode != "0644" {
				t.Errorf("entry = %+v", e)
			}
			if e.ModifiedAt.IsZero() {
				t.Error("modifiedAt is zero")
			}
			got, err := os.ReadFile(host(root, clean))
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("host file: %d bytes, %v; want %d bytes", len(got), err, len(tt.data))
			}
			re, back, err := readAll(t, f, tt.path)
			if err != nil || !bytes.Equal(back, tt.data) {
				t.Fatalf("read back %d bytes, %v", len(back), err)
			}
			if re.Size != int64(len(tt.data)) || re.Type != "file" {
				t.Errorf("read entry = %+v", re)
			}
		})
	}
	if left := tempLeftovers(t, root); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

func TestWriteReplacesAtomicallyAndKeepsMode(t *testing.T) {
	f, root := newFS(t)
	p := host(root, "/run.sh")
	if err := os.WriteFile(p, []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := os.Stat(p)
	e := mustWrite(t, f, "/run.sh", []byte("new"), fs.WriteOptions{})
	if e.Mode != "0755" {
		t.Errorf("mode of replaced file = %s, want 0755 kept", e.Mode)
	}
	now, _ := os.Stat(p)
	if os.SameFile(old, now) {
		t.Error("the file was rewritten in place, not replaced by a rename")
	}
	e = mustWrite(t, f, "/run.sh", []byte("newer"), fs.WriteOptions{Mode: 0o600})
	if e.Mode != "0600" {
		t.Errorf("explicit mode = %s, want 0600", e.Mode)
	}

	// A content reader that fails leaves the old file and no temporary.
	_, err := f.Write(t.Context(), "/run.sh", io.MultiReader(strings.NewReader("partial"), errReader{}), fs.WriteOptions{})
	var ce *fs.ContentError
	if !errors.As(err, &ce) {
		t.Fatalf("Write with failing content: %v, want a ContentError", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "newer" {
		t.Errorf("file after failed write = %q, want the old content", b)
	}
	if left := tempLeftovers(t, root); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}

	// The default mode ignores the umask.
	old022 := syscall.Umask(0o077)
	defer syscall.Umask(old022)
	if e := mustWrite(t, f, "/fresh", []byte("x"), fs.WriteOptions{}); e.Mode != "0644" {
		t.Errorf("new file mode under umask 077 = %s, want 0644", e.Mode)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("client went away") }

func TestWriteErrors(t *testing.T) {
	f, root := newFS(t)
	for _, d := range []string{"/dir/sub", "/empty"} {
		if err := os.MkdirAll(host(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(host(root, "/file"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dir", host(root, "/linkdir")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		opts fs.WriteOptions
		kind error
		subs []string
	}{
		{"over a directory", "/dir", fs.WriteOptions{}, errdefs.ErrConflict, []string{"write /dir: is a directory"}},
		{"over the root", "/", fs.WriteOptions{}, errdefs.ErrConflict, []string{"is a directory"}},
		{"over a link to a directory", "/linkdir", fs.WriteOptions{}, errdefs.ErrConflict, []string{"write /linkdir: is a directory"}},
		{"missing parent", "/nope/x.txt", fs.WriteOptions{}, errdefs.ErrNotFound, []string{"/nope/x.txt", "parent directory does not exist"}},
		{"parent is a file", "/file/x.txt", fs.WriteOptions{}, errdefs.ErrConflict, []string{"/file/x.txt", "not a directory"}},
		{"parent is a file with createParents", "/file/x/y.txt", fs.WriteOptions{CreateParents: true}, errdefs.ErrConflict, []string{"not a directory"}},
		{"relative", "dir/x", fs.WriteOptions{}, errdefs.ErrInvalidArgument, []string{`"dir/x"`, "absolute"}},
		{"bad mode", "/m", fs.WriteOptions{Mode: 0o10000}, errdefs.ErrInvalidArgument, []string{"mode"}},
		{"long name", "/" + strings.Repeat("n", 256), fs.WriteOptions{}, errdefs.ErrInvalidArgument, []string{"name too long"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.Write(t.Context(), tt.path, strings.NewReader("data"), tt.opts)
			wantErr(t, err, tt.kind, tt.subs...)
		})
	}
	if fi, err := os.Stat(host(root, "/dir")); err != nil || !fi.IsDir() {
		t.Errorf("/dir after refused writes: %v", err)
	}
	if left := tempLeftovers(t, root); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

func TestWriteCreateParentsDeep(t *testing.T) {
	f, root := newFS(t)
	var parts []string
	for i := range 60 {
		parts = append(parts, "d"+strings.Repeat("x", i%7))
	}
	p := "/" + strings.Join(parts, "/") + "/leaf.txt"
	mustWrite(t, f, p, []byte("deep"), fs.WriteOptions{CreateParents: true})
	if b, err := os.ReadFile(host(root, p)); err != nil || string(b) != "deep" {
		t.Fatalf("deep file: %q %v", b, err)
	}
	// Again, over existing parents.
	mustWrite(t, f, p, []byte("again"), fs.WriteOptions{CreateParents: true})
	fi, err := os.Stat(host(root, "/"+parts[0]))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("created parent: %v %v", fi.Mode(), err)
	}
}

func TestWriteFollowsSymlinks(t *testing.T) {
	f, root := newFS(t)
	if err := os.MkdirAll(host(root, "/data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(host(root, "/data/real.txt"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"/abs":      "/data/real.txt", // absolute: resolved inside the root
		"/data/rel": "real.txt",
		"/chain":    "/abs",
		"/dangling": "/data/missing.txt",
	}
	for l, target := range links {
		if err := os.Symlink(target, host(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"/abs", "/data/rel", "/chain"} {
		e := mustWrite(t, f, l, []byte("via "+l), fs.WriteOptions{})
		if b, _ := os.ReadFile(host(root, "/data/real.txt")); string(b) != "via "+l {
			t.Errorf("write through %s: target has %q", l, b)
		}
		if fi, err := os.Lstat(host(root, l)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symlink", l)
		}
		if e.Path != l || e.Mode != "0600" {
			t.Errorf("entry for %s = %+v (want its own path, the target's mode)", l, e)
		}
	}
	// A dangling link is replaced by the file.
	mustWrite(t, f, "/dangling", []byte("d"), fs.WriteOptions{})
	if fi, err := os.Lstat(host(root, "/dangling")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("dangling link not replaced by a file: %v", err)
	}
}

func TestStat(t *testing.T) {
	f, root := newFS(t)
	if err := os.Mkdir(host(root, "/d"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(host(root, "/d"), 0o750); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "/d/f", []byte("12345"), fs.WriteOptions{Mode: 0o4755})
	if err := os.Symlink("/d/f", host(root, "/l")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, name, typ, mode string
		size                  int64
	}{
		{"/d/f", "f", "file", "4755", 5},
		{"/d", "d", "dir", "0750", -1},
		{"/l", "l", "symlink", "0777", int64(len("/d/f"))},
		{"/", "/", "dir", "0755", -1},
	}
	for _, tt := range tests {
		e, err := f.Stat(t.Context(), tt.path)
		if err != nil {
			t.Fatalf("Stat(%s): %v", tt.path, err)
		}
		if e.Path != tt.path || e.Name != tt.name || e.Type != tt.typ || e.Mode != tt.mode || tt.size >= 0 && e.Size != tt.size {
			t.Errorf("Stat(%s) = %+v", tt.path, e)
		}
	}
	_, err := f.Stat(t.Context(), "/d/missing")
	wantErr(t, err, errdefs.ErrNotFound, "stat /d/missing: no such file or directory")
	_, err = f.Stat(t.Context(), "/d/f/x")
	wantErr(t, err, errdefs.ErrConflict, "not a directory")
}

func TestList(t *testing.T) {
	f, root := newFS(t)
	for _, p := range []string{"/w/b.txt", "/w/a.txt", "/w/Z", "/w/é"} {
		mustWrite(t, f, p, []byte(p), fs.WriteOptions{CreateParents: true})
	}
	if err := os.Mkdir(host(root, "/w/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", host(root, "/w/link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(host(root, "/w/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/w", host(root, "/wl")); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"/w", "/wl", "/w/"} {
		entries, err := f.List(t.Context(), dir)
		if err != nil {
			t.Fatalf("List(%s): %v", dir, err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.Name+":"+e.Type)
			if want := filepath.Clean(dir) + "/" + e.Name; e.Path != want {
				t.Errorf("entry path %q, want %q", e.Path, want)
			}
		}
		want := []string{"Z:file", "a.txt:file", "b.txt:file", "fifo:other", "link:symlink", "sub:dir", "é:file"}
		if !slices.Equal(got, want) {
			t.Errorf("List(%s) = %q, want %q", dir, got, want)
		}
	}
	if entries, err := f.List(t.Context(), "/w/sub"); err != nil || len(entries) != 0 {
		t.Errorf("empty dir: %v %v", entries, err)
	}
	_, err := f.List(t.Context(), "/w/a.txt")
	wantErr(t, err, errdefs.ErrConflict, "list /w/a.txt: not a directory")
	_, err = f.List(t.Context(), "/missing")
	wantErr(t, err, errdefs.ErrNotFound, "list /missing")
}

func TestRemove(t *testing.T) {
	f, root := newFS(t)
	setup := func() {
		for _, p := range []string{"/t/file", "/t/full/a/b/c.txt", "/t/full/x", "/keep/k"} {
			mustWrite(t, f, p, []byte("x"), fs.WriteOptions{CreateParents: true})
		}
		_ = os.Mkdir(host(root, "/t/empty"), 0o755)
		_ = os.Symlink("/keep", host(root, "/t/linkdir"))
	}
	setup()
	ctx := t.Context()
	wantErr(t, f.Remove(ctx, "/t/full", false), errdefs.ErrConflict, "remove /t/full: directory not empty")
	wantErr(t, f.Remove(ctx, "/", true), errdefs.ErrInvalidArgument, "root")
	wantErr(t, f.Remove(ctx, "/t/missing", false), errdefs.ErrNotFound, "remove /t/missing")
	for _, tt := range []struct {
		path      string
		recursive bool
	}{
		{"/t/file", false}, {"/t/empty", false}, {"/t/full", true}, {"/t/linkdir", true},
	} {
		if err := f.Remove(ctx, tt.path, tt.recursive); err != nil {
			t.Fatalf("Remove(%s, %v): %v", tt.path, tt.recursive, err)
		}
		if _, err := os.Lstat(host(root, tt.path)); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", tt.path, err)
		}
	}
	if _, err := os.Stat(host(root, "/keep/k")); err != nil {
		t.Errorf("removing a link to a directory touched its target: %v", err)
	}
}

func TestMkdir(t *testing.T) {
	f, root := newFS(t)
	ctx := t.Context()
	e, err := f.Mkdir(ctx, "/a", false, 0)
	if err != nil || e.Type != "dir" || e.Path != "/a" {
		t.Fatalf("Mkdir(/a) = %+v, %v", e, err)
	}
	_, err = f.Mkdir(ctx, "/a", false, 0)
	wantErr(t, err, errdefs.ErrConflict, "mkdir /a: already exists")
	if _, err := f.Mkdir(ctx, "/a", true, 0); err != nil {
		t.Errorf("mkdir -p of an existing directory: %v", err)
	}
	_, err = f.Mkdir(ctx, "/x/y/z", false, 0)
	wantErr(t, err, errdefs.ErrNotFound, "parent directory does not exist")
	e, err = f.Mkdir(ctx, "/x/y/z", true, 0o700)
	if err != nil || e.Mode != "0700" {
		t.Fatalf("Mkdir -p /x/y/z 0700 = %+v, %v", e, err)
	}
	mustWrite(t, f, "/file", nil, fs.WriteOptions{})
	_, err = f.Mkdir(ctx, "/file", true, 0)
	wantErr(t, err, errdefs.ErrConflict, "mkdir /file")
	_, err = f.Mkdir(ctx, "/file/sub", true, 0)
	wantErr(t, err, errdefs.ErrConflict, "not a directory")
	if fi, err := os.Stat(host(root, "/x/y")); err != nil || !fi.IsDir() {
		t.Errorf("parent not created: %v", err)
	}
}

func TestRename(t *testing.T) {
	f, root := newFS(t)
	ctx := t.Context()
	mustWrite(t, f, "/a.txt", []byte("A"), fs.WriteOptions{})
	mustWrite(t, f, "/b.txt", []byte("B"), fs.WriteOptions{})
	mustWrite(t, f, "/dir/inner", []byte("I"), fs.WriteOptions{CreateParents: true})

	_, err := f.Rename(ctx, "/a.txt", "/b.txt", fs.RenameOptions{})
	wantErr(t, err, errdefs.ErrConflict, "rename /a.txt to /b.txt: already exists")
	e, err := f.Rename(ctx, "/a.txt", "/b.txt", fs.RenameOptions{Overwrite: true})
	if err != nil || e.Path != "/b.txt" || e.Size != 1 {
		t.Fatalf("rename with overwrite = %+v, %v", e, err)
	}
	if b, _ := os.ReadFile(host(root, "/b.txt")); string(b) != "A" {
		t.Errorf("/b.txt = %q after overwrite", b)
	}
	if _, err := os.Stat(host(root, "/a.txt")); !os.IsNotExist(err) {
		t.Errorf("/a.txt still there: %v", err)
	}
	_, err = f.Rename(ctx, "/dir", "/dir/sub/dir", fs.RenameOptions{CreateParents: true})
	wantErr(t, err, errdefs.ErrInvalidArgument, "into itself")
	_, err = f.Rename(ctx, "/missing", "/m2", fs.RenameOptions{})
	wantErr(t, err, errdefs.ErrNotFound, "rename /missing to /m2")
	_, err = f.Rename(ctx, "/b.txt", "/new/parent/b.txt", fs.RenameOptions{})
	wantErr(t, err, errdefs.ErrNotFound, "parent")
	e, err = f.Rename(ctx, "/dir", "/moved/here/dir2", fs.RenameOptions{CreateParents: true})
	if err != nil || e.Type != "dir" {
		t.Fatalf("rename a directory: %+v, %v", e, err)
	}
	if b, _ := os.ReadFile(host(root, "/moved/here/dir2/inner")); string(b) != "I" {
		t.Errorf("moved directory content = %q", b)
	}
	_, err = f.Rename(ctx, "/b.txt", "/moved", fs.RenameOptions{Overwrite: true})
	wantErr(t, err, errdefs.ErrConflict, "is a directory")
	_, err = f.Rename(ctx, "/", "/x", fs.RenameOptions{})
	wantErr(t, err, errdefs.ErrInvalidArgument, "root")
}

func TestExists(t *testing.T) {
	f, root := newFS(t)
	mustWrite(t, f, "/f", nil, fs.WriteOptions{})
	_ = os.Symlink("/nowhere", host(root, "/dangling"))
	_ = os.Symlink("/f", host(root, "/good"))
	_ = os.Symlink("/loop", host(root, "/loop"))
	for p, want := range map[string]bool{
		"/f": true, "/": true, "/good": true, "/missing": false, "/dangling": false, "/loop": false, "/f/under": false,
	} {
		got, err := f.Exists(t.Context(), p)
		if err != nil || got != want {
			t.Errorf("Exists(%s) = %v, %v; want %v", p, got, err, want)
		}
	}
}

func TestBadPaths(t *testing.T) {
	f, _ := newFS(t)
	ctx := t.Context()
	tests := []struct {
		name, path, sub string
	}{
		{"empty", "", "path is empty"},
		{"relative", "workspace/x", `"workspace/x"`},
		{"dot relative", "./x", `"./x"`},
		{"NUL", "/a\x00b", "NUL"},
		{"bad UTF-8", "/a\xffb", "UTF-8"},
		{"too long", "/" + strings.Repeat("a/", 2100), "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.Stat(ctx, tt.path)
			wantErr(t, err, errdefs.ErrInvalidArgument, "stat", tt.sub)
			_, err = f.Write(ctx, tt.path, strings.NewReader(""), fs.WriteOptions{})
			wantErr(t, err, errdefs.ErrInvalidArgument, "write", tt.sub)
			_, _, err = f.Open(ctx, tt.path)
			wantErr(t, err, errdefs.ErrInvalidArgument, "read", tt.sub)
			_, err = f.List(ctx, tt.path)
			wantErr(t, err, errdefs.ErrInvalidArgument, "list", tt.sub)
			wantErr(t, f.Remove(ctx, tt.path, true), errdefs.ErrInvalidArgument, "remove", tt.sub)
			_, err = f.Mkdir(ctx, tt.path, true, 0)
			wantErr(t, err, errdefs.ErrInvalidArgument, "mkdir", tt.sub)
			_, err = f.Rename(ctx, tt.path, "/x", fs.RenameOptions{})
			wantErr(t, err, errdefs.ErrInvalidArgument, "rename", tt.sub)
			_, err = f.Rename(ctx, "/x", tt.path, fs.RenameOptions{})
			wantErr(t, err, errdefs.ErrInvalidArgument, "rename", tt.sub)
			_, err = f.Exists(ctx, tt.path)
			wantErr(t, err, errdefs.ErrInvalidArgument, "exists", tt.sub)
		})
	}
}

func TestLongNames(t *testing.T) {
	f, _ := newFS(t)
	ok := "/" + strings.Repeat("é", 127) + "x" // 255 bytes
	mustWrite(t, f, ok, []byte("max"), fs.WriteOptions{})
	if _, b, err := readAll(t, f, ok); err != nil || string(b) != "max" {
		t.Errorf("255-byte name: %q %v", b, err)
	}
	tooLong := "/" + strings.Repeat("é", 128)
	_, err := f.Mkdir(t.Context(), tooLong, false, 0)
	wantErr(t, err, errdefs.ErrInvalidArgument, "name too long")
	_, _, err = f.Open(t.Context(), tooLong)
	wantErr(t, err, errdefs.ErrInvalidArgument, "name too long")
}

func TestReadErrors(t *testing.T) {
	f, root := newFS(t)
	_ = os.Mkdir(host(root, "/d"), 0o755)
	_ = syscall.Mkfifo(host(root, "/fifo"), 0o644)
	_, _, err := f.Open(t.Context(), "/d")
	wantErr(t, err, errdefs.ErrConflict, "read /d: is a directory")
	_, _, err = f.Open(t.Context(), "/fifo")
	wantErr(t, err, errdefs.ErrInvalidArgument, "read /fifo: not a regular file")
	_, _, err = f.Open(t.Context(), "/d/none")
	wantErr(t, err, errdefs.ErrNotFound, "read /d/none: no such file or directory")
}

// TestConfinement runs every operation against symbolic links and paths
// that would leave the root if they were resolved against the host's "/":
// none may read, write, list or remove anything outside it.
func TestConfinement(t *testing.T) {
	top := t.TempDir()
	root := filepath.Join(top, "root")
	outside := filepath.Join(top, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("HOST SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"up":     "../..",                   // relative, climbs out
		"slash":  "/",                       // absolute root
		"hostd":  outside,                   // absolute host path of the outside dir
		"hostf":  secret,                    // absolute host path of the secret
		"rel":    "../outside/secret",       // relative to the secret
		"deep":   "../../../../../../../..", // far above
		"chain":  "up",
		"etc":    "/etc",
		"passwd": "/etc/passwd",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	f := fs.New(root)
	ctx := t.Context()
	rel, err := filepath.Rel("/", outside)
	if err != nil {
		t.Fatal(err)
	}
	hostRel := "/" + filepath.ToSlash(rel)

	reads := []string{
		"/up/outside/secret", "/deep/" + hostRel + "/secret", "/hostd/secret", "/hostf", "/rel",
		"/chain/outside/secret", "/../outside/secret", "/slash/up/outside/secret", "/etc/passwd", "/passwd",
		hostRel + "/secret",
	}
	for _, p := range reads {
		_, b, err := readAll(t, f, p)
		if err == nil {
			t.Errorf("read %s succeeded with %q", p, b)
			continue
		}
		// Not found, or a loop for the links that lead to themselves.
		if !errors.Is(err, errdefs.ErrNotFound) && !strings.Contains(err.Error(), "symbolic links") {
			t.Errorf("read %s: %v, want not_found", p, err)
		}
		if strings.Contains(err.Error(), root) {
			t.Errorf("error %q shows a host path", err)
		}
	}
	// Links to the root resolve to the root itself.
	for _, p := range []string{"/up", "/deep", "/slash", "/chain"} {
		entries, err := f.List(ctx, p)
		if err != nil {
			t.Fatalf("list %s: %v", p, err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name)
		}
		if !slices.Contains(names, "hostd") || slices.Contains(names, "outside") {
			t.Errorf("list %s = %q, want the root's own entries", p, names)
		}
	}
	// Writes land inside the root or fail.
	for _, p := range []string{"/up/outside/secret", "/hostf", "/rel", "/hostd/secret", "/chain/outside/secret", "/passwd"} {
		_, err := f.Write(ctx, p, strings.NewReader("PWNED"), fs.WriteOptions{CreateParents: true})
		if err != nil && errdefs.Code(err) == "internal" {
			t.Errorf("write %s: %v", p, err)
		}
	}
	// What the writes through escaping links did create is inside the root.
	if b, err := os.ReadFile(filepath.Join(root, "outside", "secret")); err != nil || string(b) != "PWNED" {
		t.Errorf("write through /up did not land inside the root: %q %v", b, err)
	}
	_, _ = f.Mkdir(ctx, "/hostd/newdir", true, 0)
	_, _ = f.Mkdir(ctx, "/up/outside/newdir", true, 0)
	_, _ = f.Rename(ctx, "/hostf", "/up/outside/moved", fs.RenameOptions{Overwrite: true, CreateParents: true})
	_ = f.Remove(ctx, "/up/outside/secret", false)
	_ = f.Remove(ctx, "/hostd", true)
	_ = f.Remove(ctx, "/deep", true)

	if b, err := os.ReadFile(secret); err != nil || string(b) != "HOST SECRET" {
		t.Errorf("host secret changed: %q %v", b, err)
	}
	got, err := os.ReadDir(outside)
	if err != nil || len(got) != 1 {
		t.Errorf("outside dir now holds %v (%v), want only the secret", got, err)
	}
	if b, err := os.ReadFile("/etc/passwd"); err != nil || bytes.Contains(b, []byte("PWNED")) {
		t.Errorf("host /etc/passwd touched: %v", err)
	}
}

func TestCancelledRemove(t *testing.T) {
	f, _ := newFS(t)
	for i := range 20 {
		mustWrite(t, f, "/tree/d"+strings.Repeat("x", i)+"/f", nil, fs.WriteOptions{CreateParents: true})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := f.Remove(ctx, "/tree", true); !errors.Is(err, context.Canceled) {
		t.Errorf("Remove with a cancelled context: %v", err)
	}
}

// TestProcFileSizeUnknown reads a /proc file through an FS rooted at the
// real "/", as the agent is in a sandbox: its size is reported unknown.
func TestProcFileSizeUnknown(t *testing.T) {
	f := fs.New("/")
	e, file, err := f.Open(t.Context(), "/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	b, err := io.ReadAll(file)
	if err != nil || !bytes.Contains(b, []byte("Name:")) {
		t.Fatalf("content %.40q, %v", b, err)
	}
	if e.Size != -1 || e.Type != "file" {
		t.Errorf("entry = %+v, want size -1", e)
	}
	e, file, err = f.Open(t.Context(), "/etc/hostname")
	if err == nil {
		file.Close()
		if e.Size < 0 {
			t.Errorf("ordinary file has size %d", e.Size)
		}
	}
}

// fsImmutableFL is FS_IMMUTABLE_FL of <linux/fs.h>.
const fsImmutableFL = 0x10

// setImmutable sets or clears the immutable attribute of the file p
// (chattr +i), which even root may not change.
func setImmutable(p string, on bool) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	if on {
		flags |= fsImmutableFL
	} else {
		flags &^= fsImmutableFL
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags))
}

func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_LINUX_IMMUTABLE)")
	}
	f, root := newFS(t)
	mustWrite(t, f, "/locked/file", []byte("keep"), fs.WriteOptions{CreateParents: true})
	dir := host(root, "/locked")
	if err := setImmutable(dir, true); err != nil {
		t.Skipf("file system without the immutable attribute: %v", err)
	}
	t.Cleanup(func() { _ = setImmutable(dir, false) })
	ctx := t.Context()
	_, err := f.Write(ctx, "/locked/file", strings.NewReader("new"), fs.WriteOptions{})
	wantErr(t, err, errdefs.ErrPermissionDenied, "write /locked/file: permission denied")
	wantErr(t, f.Remove(ctx, "/locked/file", false), errdefs.ErrPermissionDenied, "remove /locked/file: permission denied")
	_, err = f.Mkdir(ctx, "/locked/sub", false, 0)
	wantErr(t, err, errdefs.ErrPermissionDenied, "mkdir /locked/sub")
	_, err = f.Rename(ctx, "/locked/file", "/moved", fs.RenameOptions{})
	wantErr(t, err, errdefs.ErrPermissionDenied, "rename /locked/file to /moved")
	if b, _ := os.ReadFile(host(root, "/locked/file")); string(b) != "keep" {
		t.Errorf("locked file = %q", b)
	}
}
