package fs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/agent/fs"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// collect reads changes from w until want of them (overflow included)
// arrived, or fails after a generous deadline.
func collect(t *testing.T, w *fs.Watcher, want int) []agentproto.Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got []agentproto.Change
	for len(got) < want {
		batch, err := w.Next(ctx)
		got = append(got, batch...)
		if err != nil {
			t.Fatalf("Next after %v: %v", describe(got), err)
		}
	}
	return got
}

func describe(cs []agentproto.Change) []string {
	var out []string
	for _, c := range cs {
		s := c.Type + " " + c.Path
		if c.OldPath != "" {
			s += " from " + c.OldPath
		}
		if c.IsDir {
			s += " (dir)"
		}
		out = append(out, s)
	}
	return out
}

func startWatch(t *testing.T, f *fs.FS, p string, opts fs.WatchOptions) *fs.Watcher {
	t.Helper()
	w, err := f.Watch(t.Context(), p, opts)
	if err != nil {
		t.Fatalf("Watch(%q): %v", p, err)
	}
	t.Cleanup(w.Close)
	return w
}

func TestWatchOrder(t *testing.T) {
	f, root := newFS(t)
	if err := os.Mkdir(host(root, "/w"), 0o755); err != nil {
		t.Fatal(err)
	}
	w := startWatch(t, f, "/w", fs.WatchOptions{})
	must(t, os.WriteFile(host(root, "/w/a"), nil, 0o644))
	must(t, os.WriteFile(host(root, "/w/a"), []byte("x"), 0o644))
	must(t, os.Rename(host(root, "/w/a"), host(root, "/w/b")))
	must(t, os.Remove(host(root, "/w/b")))
	mustWrite(t, f, "/w/c", []byte("atomic"), fs.WriteOptions{})
	mustWrite(t, f, "/w/c", []byte("again"), fs.WriteOptions{})
	got := describe(collect(t, w, 6))
	want := []string{"created /w/a", "modified /w/a", "renamed /w/b from /w/a", "deleted /w/b", "created /w/c", "modified /w/c"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("changes:\n got %q\nwant %q", got, want)
	}
}

func TestWatchRecursiveNewDirectory(t *testing.T) {
	f, root := newFS(t)
	must(t, os.MkdirAll(host(root, "/w/old"), 0o755))
	w := startWatch(t, f, "/w", fs.WatchOptions{Recursive: true})
	must(t, os.WriteFile(host(root, "/w/old/f"), nil, 0o644))
	must(t, os.MkdirAll(host(root, "/w/new/deep"), 0o755))
	must(t, os.WriteFile(host(root, "/w/new/deep/g"), []byte("1"), 0o644))
	// The deep file is seen by the scan of its new directory, by the
	// watch on it, or (when it lands while that watch is being set up)
	// by both: at least once as created, and never a change of another
	// path.
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for seen["created /w/new/deep/g"] == 0 || seen["created /w/old/f"] == 0 {
		batch, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %v: %v", seen, err)
		}
		for _, s := range describe(batch) {
			seen[s]++
		}
	}
	if seen["created /w/new (dir)"] != 1 {
		t.Fatalf("changes: %v", seen)
	}
	// Renaming a watched directory keeps its watch, under the new name.
	must(t, os.Rename(host(root, "/w/new"), host(root, "/w/moved")))
	must(t, os.WriteFile(host(root, "/w/moved/deep/h"), nil, 0o644))
	var after []string
	for !slices.Contains(after, "created /w/moved/deep/h") {
		batch, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %q: %v", after, err)
		}
		after = append(after, describe(batch)...)
	}
	renamed := slices.Index(after, "renamed /w/moved from /w/new (dir)")
	if renamed < 0 || renamed > slices.Index(after, "created /w/moved/deep/h") {
		t.Fatalf("changes after rename: %q", after)
	}
	// Before the rename only late reports of /w/new/deep's own changes.
	for _, s := range after[:renamed] {
		if !strings.Contains(s, " /w/new/deep") {
			t.Fatalf("unexpected change %q in %q", s, after)
		}
	}
}

func TestWatchOverflow(t *testing.T) {
	f, root := newFS(t)
	must(t, os.Mkdir(host(root, "/w"), 0o755))
	w := startWatch(t, f, "/w", fs.WatchOptions{MaxQueue: 100})
	for i := range 300 {
		must(t, os.WriteFile(host(root, fmt.Sprintf("/w/f%03d", i)), nil, 0o644))
	}
	// Wait until the reader has seen the flood (the queue is full).
	deadline := time.Now().Add(10 * time.Second)
	var got []agentproto.Change
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		batch, err := w.Next(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, batch...)
		if got[len(got)-1].Type == agentproto.ChangeOverflow {
			break
		}
	}
	if n := len(got); n != 101 || got[n-1].Type != agentproto.ChangeOverflow || got[0].Path != "/w/f000" {
		t.Fatalf("got %d changes, last %+v; want 100 then an overflow", n, got[len(got)-1])
	}
	// After the overflow, changes flow again.
	must(t, os.Remove(host(root, "/w/f000")))
	if c := collect(t, w, 1); c[0].Type != agentproto.ChangeDeleted {
		t.Fatalf("after overflow: %+v", c)
	}
}

func TestWatchEnds(t *testing.T) {
	f, root := newFS(t)
	must(t, os.Mkdir(host(root, "/w"), 0o755))
	w := startWatch(t, f, "/w", fs.WatchOptions{})
	must(t, os.Remove(host(root, "/w")))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got []agentproto.Change
	for {
		batch, err := w.Next(ctx)
		got = append(got, batch...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if d := describe(got); len(d) != 1 || d[0] != "deleted /w (dir)" {
		t.Fatalf("changes: %q", d)
	}
}

func TestWatchErrors(t *testing.T) {
	f, root := newFS(t)
	must(t, os.WriteFile(host(root, "/file"), nil, 0o644))
	outside := t.TempDir()
	must(t, os.Symlink(outside, host(root, "/escape")))
	_, err := f.Watch(t.Context(), "/missing", fs.WatchOptions{})
	wantErr(t, err, errdefs.ErrNotFound, "/missing")
	_, err = f.Watch(t.Context(), "/file", fs.WatchOptions{})
	wantErr(t, err, errdefs.ErrConflict, "not a directory")
	_, err = f.Watch(t.Context(), "relative", fs.WatchOptions{})
	wantErr(t, err, errdefs.ErrInvalidArgument, "absolute")
	// An absolute link resolves inside the root, where its target does
	// not exist: the host directory is never watched.
	_, err = f.Watch(t.Context(), "/escape", fs.WatchOptions{})
	wantErr(t, err, errdefs.ErrNotFound)
	// ".." stops at the root.
	w := startWatch(t, f, "/../../..", fs.WatchOptions{})
	must(t, os.WriteFile(host(root, "/inside"), nil, 0o644))
	if got := describe(collect(t, w, 1)); got[0] != "created /inside" {
		t.Fatalf("changes: %q", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
