package template

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/runtime/runtimetest"
)

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTar(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Linkname: e.link, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractWhiteoutsBecomeOverlayWhiteouts(t *testing.T) {
	runtimetest.RequireRoot(t)
	dir := t.TempDir()
	archive := makeTar(t, []tarEntry{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/.wh.gone", typ: tar.TypeReg},
		{name: "opaque/", typ: tar.TypeDir},
		{name: "opaque/.wh..wh..opq", typ: tar.TypeReg},
		{name: "opaque/new.txt", body: "new"},
		{name: "bin/tool", body: "#!/bin/sh\n", mode: 0o4755},
		{name: "bin/link", typ: tar.TypeSymlink, link: "tool"},
		{name: "bin/hard", typ: tar.TypeLink, link: "bin/tool"},
		{name: ".wh..wh.plnk", typ: tar.TypeReg},
	})
	if err := extractTar(t.Context(), bytes.NewReader(archive), dir, extractOptions{whiteouts: true}); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "etc", "gone"), &st); err != nil {
		t.Fatalf("whiteout of etc/gone missing: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/gone: mode %o rdev %d, want a character device 0/0", st.Mode, st.Rdev)
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc", ".wh.gone")); err == nil {
		t.Error("the .wh. file itself was extracted")
	}
	v := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(dir, "opaque"), "trusted.overlay.opaque", v)
	if err != nil || string(v[:n]) != "y" {
		t.Errorf("opaque dir: xattr %q, %v; want y", v[:n], err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "opaque", ".wh..wh..opq")); err == nil {
		t.Error("the opaque marker file itself was extracted")
	}
	if _, err := os.Lstat(filepath.Join(dir, ".wh..wh.plnk")); err == nil {
		t.Error("AUFS metadata was extracted")
	}
	info, err := os.Stat(filepath.Join(dir, "bin", "tool"))
	if err != nil || info.Mode()&os.ModeSetuid == 0 || info.Mode().Perm() != 0o755 {
		t.Errorf("bin/tool: %v %v, want setuid 0755", info.Mode(), err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "bin", "link")); err != nil || l != "tool" {
		t.Errorf("bin/link -> %q, %v", l, err)
	}
	var a, b unix.Stat_t
	unix.Stat(filepath.Join(dir, "bin", "tool"), &a)
	unix.Stat(filepath.Join(dir, "bin", "hard"), &b)
	if a.Ino != b.Ino {
		t.Error("bin/hard is not a hard link of bin/tool")
	}
}

func TestExtractStaysInsideTheLayer(t *testing.T) {
	runtimetest.RequireRoot(t)
	outside := t.TempDir()
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		inside  string // a path that must exist in the layer afterwards
	}{
		{"absolute symlink parent", []tarEntry{
			{name: "escape", typ: tar.TypeSymlink, link: outside},
			{name: "escape/planted", body: "x"},
		}, ""},
		{"climbing symlink parent", []tarEntry{
			{name: "d/", typ: tar.TypeDir},
			{name: "up", typ: tar.TypeSymlink, link: "../../../../../../.." + outside},
			{name: "up/planted", body: "x"},
		}, ""},
		{"symlink to an existing dir", []tarEntry{
			{name: "real/", typ: tar.TypeDir},
			{name: "alias", typ: tar.TypeSymlink, link: "/real"},
			{name: "alias/planted", body: "x"},
		}, "real/planted"},
		{"dot-dot name", []tarEntry{{name: "../../planted", body: "x"}}, "planted"},
		{"absolute name", []tarEntry{{name: "/abs/planted", body: "x"}}, "abs/planted"},
		{"hard link out", []tarEntry{{name: "hl", typ: tar.TypeLink, link: "../../../../etc/hostname"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := extractTar(t.Context(), bytes.NewReader(makeTar(t, tc.entries)), dir, extractOptions{whiteouts: true})
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("files were written outside the layer: %v (extract: %v)", ents, err)
			}
			if tc.inside != "" {
				if err != nil {
					t.Fatalf("extract: %v", err)
				}
				if _, err := os.Lstat(filepath.Join(dir, tc.inside)); err != nil {
					t.Errorf("%s not in the layer: %v", tc.inside, err)
				}
			}
		})
	}
}

func TestLayerStoreCommitIsContentAddressed(t *testing.T) {
	runtimetest.RequireRoot(t)
	s, err := newLayerStore(filepath.Join(t.TempDir(), "layers"))
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(src, "a", "b", "f"), []byte("hello"), 0o640)
	os.Symlink("b/f", filepath.Join(src, "a", "l"))
	if err := unix.Mknod(filepath.Join(src, "a", "wh"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(src, "a"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	d1, created, err := s.commit(src)
	if err != nil || !created {
		t.Fatalf("commit: %v created=%v", err, created)
	}
	d2, created, err := s.commit(src)
	if err != nil || created || d2 != d1 {
		t.Fatalf("second commit: %s %v %v, want %s reused", d2, created, err, d1)
	}
	same, err := sameTree(src, s.path(d1))
	if err != nil || !same {
		t.Errorf("the layer differs from its source (%v)", err)
	}
	os.WriteFile(filepath.Join(src, "a", "b", "f"), []byte("changed"), 0o640)
	d3, _, err := s.commit(src)
	if err != nil || d3 == d1 {
		t.Errorf("changed content kept digest %s (%v)", d3, err)
	}
	// Sweeping keeps what is kept and what is recent.
	removed, err := s.sweep(map[string]bool{d1: true}, time.Now().Add(time.Hour))
	if err != nil || len(removed) != 1 || removed[0] != d3 || !s.has(d1) || s.has(d3) {
		t.Errorf("sweep removed %v (%v); has d1=%v d3=%v", removed, err, s.has(d1), s.has(d3))
	}
}
