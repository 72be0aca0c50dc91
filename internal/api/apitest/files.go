package apitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// node is a file or directory of a fake sandbox.
type node struct {
	dir     bool
	data    []byte
	modTime time.Time
}

// newTree is the file tree of a new sandbox: / and /workspace.
func newTree(now time.Time) map[string]*node {
	return map[string]*node{
		"/":          {dir: true, modTime: now},
		"/workspace": {dir: true, modTime: now},
	}
}

func entryOf(p string, n *node) sandbox.FileEntry {
	e := sandbox.FileEntry{Name: path.Base(p), Path: p, Type: sandbox.FileTypeFile, Size: int64(len(n.data)), Mode: "0644", ModifiedAt: n.modTime}
	if n.dir {
		e.Type, e.Size, e.Mode = sandbox.FileTypeDir, 0, "0755"
	}
	return e
}

// cleanPath checks that p is an absolute path without NUL and cleans it.
func cleanPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("path %q: must be absolute: %w", p, errdefs.ErrInvalidArgument)
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path: contains NUL: %w", errdefs.ErrInvalidArgument)
	}
	return path.Clean(p), nil
}

// resolve applies the Fail hook for op, checks that the sandbox is the
// tenant's and returns p cleaned.
func (s *Service) resolve(ctx context.Context, op, tenant, sandboxID, p string) (string, error) {
	if _, err := s.sandboxFor(ctx, op, tenant, sandboxID); err != nil {
		return "", err
	}
	return cleanPath(p)
}

// missingParents lists the directories above p that files lacks, nearest
// first; a file in the way is a conflict.
func missingParents(files map[string]*node, p string) ([]string, error) {
	var missing []string
	for d := path.Dir(p); ; d = path.Dir(d) {
		n, ok := files[d]
		if ok && !n.dir {
			return nil, fmt.Errorf("path %s: %s is a file, not a directory: %w", p, d, errdefs.ErrConflict)
		}
		if ok {
			return missing, nil
		}
		missing = append(missing, d)
	}
}

// WriteFile implements api.Service: content is read whole (through Upload
// when set) before anything changes.
func (s *Service) WriteFile(ctx context.Context, tenant, sandboxID, p string, content io.Reader, opts sandbox.WriteFileOptions) (sandbox.FileEntry, error) {
	p, err := s.resolve(ctx, "WriteFile", tenant, sandboxID, p)
	if err != nil {
		return sandbox.FileEntry{}, err
	}
	if p == "/" {
		return sandbox.FileEntry{}, fmt.Errorf("path /: is a directory: %w", errdefs.ErrConflict)
	}
	read := func(_ context.Context, _ string, r io.Reader) ([]byte, error) { return io.ReadAll(r) }
	if s.Upload != nil {
		read = s.Upload
	}
	data, err := read(ctx, p, content)
	if err != nil {
		return sandbox.FileEntry{}, fmt.Errorf("file %s: reading the content: %w", p, errdefs.ErrUnavailable)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	files := s.files[sandboxID]
	if files == nil {
		return sandbox.FileEntry{}, fmt.Errorf("sandbox %s: %w", sandboxID, errdefs.ErrNotFound)
	}
	now := time.Now().UTC()
	parent := path.Dir(p)
	missing, err := missingParents(files, p)
	if err != nil {
		return sandbox.FileEntry{}, err
	}
	if len(missing) > 0 && !opts.CreateParents {
		return sandbox.FileEntry{}, fmt.Errorf("directory %s: %w", parent, errdefs.ErrNotFound)
	}
	if n, ok := files[p]; ok && n.dir {
		return sandbox.FileEntry{}, fmt.Errorf("path %s: is a directory: %w", p, errdefs.ErrConflict)
	}
	for _, d := range missing {
		files[d] = &node{dir: true, modTime: now}
	}
	n := &node{data: data, modTime: now}
	files[p] = n
	return entryOf(p, n), nil
}

// OpenFile implements api.Service (through Open when set).
func (s *Service) OpenFile(ctx context.Context, tenant, sandboxID, p string) (sandbox.FileEntry, io.ReadCloser, error) {
	p, err := s.resolve(ctx, "OpenFile", tenant, sandboxID, p)
	if err != nil {
		return sandbox.FileEntry{}, nil, err
	}
	if s.Open != nil {
		return s.Open(ctx, p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.files[sandboxID][p]
	switch {
	case !ok:
		return sandbox.FileEntry{}, nil, fmt.Errorf("file %s: %w", p, errdefs.ErrNotFound)
	case n.dir:
		return sandbox.FileEntry{}, nil, fmt.Errorf("path %s: is a directory, not a file: %w", p, errdefs.ErrConflict)
	}
	return entryOf(p, n), io.NopCloser(bytes.NewReader(n.data)), nil
}

// DeleteFile implements api.Service.
func (s *Service) DeleteFile(ctx context.Context, tenant, sandboxID, p string, recursive bool) error {
	p, err := s.resolve(ctx, "DeleteFile", tenant, sandboxID, p)
	if err != nil {
		return err
	}
	if p == "/" {
		return fmt.Errorf("path /: the root cannot be deleted: %w", errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	files := s.files[sandboxID]
	n, ok := files[p]
	if !ok {
		return fmt.Errorf("file %s: %w", p, errdefs.ErrNotFound)
	}
	if n.dir {
		var inside []string
		for q := range files {
			if strings.HasPrefix(q, p+"/") {
				inside = append(inside, q)
			}
		}
		if len(inside) > 0 && !recursive {
			return fmt.Errorf("directory %s: not empty (delete it with recursive): %w", p, errdefs.ErrConflict)
		}
		for _, q := range inside {
			delete(files, q)
		}
	}
	delete(files, p)
	return nil
}

// ListFiles implements api.Service; dir defaults to /workspace.
func (s *Service) ListFiles(ctx context.Context, tenant, sandboxID, dir string) (sandbox.FileList, error) {
	if dir == "" {
		dir = "/workspace"
	}
	dir, err := s.resolve(ctx, "ListFiles", tenant, sandboxID, dir)
	if err != nil {
		return sandbox.FileList{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	files := s.files[sandboxID]
	n, ok := files[dir]
	switch {
	case !ok:
		return sandbox.FileList{}, fmt.Errorf("directory %s: %w", dir, errdefs.ErrNotFound)
	case !n.dir:
		return sandbox.FileList{}, fmt.Errorf("path %s: is a file, not a directory: %w", dir, errdefs.ErrConflict)
	}
	list := sandbox.FileList{Path: dir, Entries: []sandbox.FileEntry{}}
	for q, n := range files {
		if q != dir && path.Dir(q) == dir {
			list.Entries = append(list.Entries, entryOf(q, n))
		}
	}
	slices.SortFunc(list.Entries, func(a, b sandbox.FileEntry) int { return strings.Compare(a.Name, b.Name) })
	return list, nil
}

// StatFile implements api.Service.
func (s *Service) StatFile(ctx context.Context, tenant, sandboxID, p string) (sandbox.FileEntry, error) {
	p, err := s.resolve(ctx, "StatFile", tenant, sandboxID, p)
	if err != nil {
		return sandbox.FileEntry{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.files[sandboxID][p]
	if !ok {
		return sandbox.FileEntry{}, fmt.Errorf("file %s: %w", p, errdefs.ErrNotFound)
	}
	return entryOf(p, n), nil
}

// MakeDir implements api.Service: with parents, missing parents are
// created and an existing directory is not an error.
func (s *Service) MakeDir(ctx context.Context, tenant, sandboxID, p string, parents bool) (sandbox.FileEntry, error) {
	p, err := s.resolve(ctx, "MakeDir", tenant, sandboxID, p)
	if err != nil {
		return sandbox.FileEntry{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	files := s.files[sandboxID]
	if n, ok := files[p]; ok {
		switch {
		case !n.dir:
			return sandbox.FileEntry{}, fmt.Errorf("path %s: exists and is a file: %w", p, errdefs.ErrConflict)
		case !parents:
			return sandbox.FileEntry{}, fmt.Errorf("directory %s: already exists: %w", p, errdefs.ErrConflict)
		}
		return entryOf(p, n), nil
	}
	missing, err := missingParents(files, p)
	if err != nil {
		return sandbox.FileEntry{}, err
	}
	if len(missing) > 0 && !parents {
		return sandbox.FileEntry{}, fmt.Errorf("directory %s: %w", path.Dir(p), errdefs.ErrNotFound)
	}
	now := time.Now().UTC()
	for _, d := range missing {
		files[d] = &node{dir: true, modTime: now}
	}
	n := &node{dir: true, modTime: now}
	files[p] = n
	return entryOf(p, n), nil
}

// MoveFile implements api.Service: an existing destination is a conflict
// unless overwrite is set, and a directory replaces only an empty one.
func (s *Service) MoveFile(ctx context.Context, tenant, sandboxID, from, to string, overwrite bool) (sandbox.FileEntry, error) {
	from, err := s.resolve(ctx, "MoveFile", tenant, sandboxID, from)
	if err != nil {
		return sandbox.FileEntry{}, err
	}
	if to, err = cleanPath(to); err != nil {
		return sandbox.FileEntry{}, err
	}
	if from == "/" || to == "/" {
		return sandbox.FileEntry{}, fmt.Errorf("path /: the root cannot be moved or replaced: %w", errdefs.ErrInvalidArgument)
	}
	if strings.HasPrefix(to, from+"/") {
		return sandbox.FileEntry{}, fmt.Errorf("move %s to %s: into itself: %w", from, to, errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	files := s.files[sandboxID]
	src, ok := files[from]
	if !ok {
		return sandbox.FileEntry{}, fmt.Errorf("file %s: %w", from, errdefs.ErrNotFound)
	}
	if from == to {
		return entryOf(to, src), nil
	}
	if parent, ok := files[path.Dir(to)]; !ok {
		return sandbox.FileEntry{}, fmt.Errorf("directory %s: %w", path.Dir(to), errdefs.ErrNotFound)
	} else if !parent.dir {
		return sandbox.FileEntry{}, fmt.Errorf("path %s: %s is a file, not a directory: %w", to, path.Dir(to), errdefs.ErrConflict)
	}
	if dst, ok := files[to]; ok {
		switch {
		case !overwrite:
			return sandbox.FileEntry{}, fmt.Errorf("destination %s: already exists (move it with overwrite): %w", to, errdefs.ErrConflict)
		case dst.dir && !src.dir:
			return sandbox.FileEntry{}, fmt.Errorf("destination %s: is a directory: %w", to, errdefs.ErrConflict)
		case !dst.dir && src.dir:
			return sandbox.FileEntry{}, fmt.Errorf("destination %s: is a file, not a directory: %w", to, errdefs.ErrConflict)
		}
		for q := range files {
			if strings.HasPrefix(q, to+"/") {
				return sandbox.FileEntry{}, fmt.Errorf("destination %s: directory not empty: %w", to, errdefs.ErrConflict)
			}
		}
	}
	moved := map[string]*node{}
	for q, n := range files {
		if q == from || strings.HasPrefix(q, from+"/") {
			moved[to+strings.TrimPrefix(q, from)] = n
			delete(files, q)
		}
	}
	maps.Copy(files, moved)
	return entryOf(to, src), nil
}

// FileExists implements api.Service.
func (s *Service) FileExists(ctx context.Context, tenant, sandboxID, p string) (bool, error) {
	p, err := s.resolve(ctx, "FileExists", tenant, sandboxID, p)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.files[sandboxID][p]
	return ok, nil
}
