package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// Stat describes the entry at p; a symbolic link is described itself.
//
// Errors: errdefs.ErrInvalidArgument for a bad path, errdefs.ErrNotFound,
// errdefs.ErrConflict when a parent is not a directory,
// errdefs.ErrPermissionDenied.
func (f *FS) Stat(ctx context.Context, p string) (agentproto.FileEntry, error) {
	const op = "stat"
	abs, rel, err := cleanPath(op, p)
	if err != nil {
		return agentproto.FileEntry{}, err
	}
	r, err := f.open(op, abs)
	if err != nil {
		return agentproto.FileEntry{}, err
	}
	defer r.close()
	st, err := r.lstat(rel)
	if err != nil {
		return agentproto.FileEntry{}, pathError(op, abs, err)
	}
	return entryOf(abs, &st), nil
}

// Exists reports whether p resolves to an entry (symbolic links followed,
// like test -e): false when it or a parent is missing, when a parent is
// not a directory, or for a dangling or looping symbolic link.
//
// Errors: errdefs.ErrInvalidArgument for a bad path,
// errdefs.ErrPermissionDenied.
func (f *FS) Exists(ctx context.Context, p string) (bool, error) {
	const op = "exists"
	abs, rel, err := cleanPath(op, p)
	if err != nil {
		return false, err
	}
	r, err := f.open(op, abs)
	if err != nil {
		return false, err
	}
	defer r.close()
	_, err = r.stat(rel)
	switch err {
	case nil:
		return true, nil
	case unix.ENOENT, unix.ENOTDIR, unix.ELOOP:
		return false, nil
	}
	return false, pathError(op, abs, err)
}

// List returns the entries of the directory p (symbolic links to
// directories followed), sorted by name. Symbolic links among the entries
// are described themselves.
//
// Errors: errdefs.ErrInvalidArgument for a bad path or a directory of more
// than agentproto.MaxListEntries entries, errdefs.ErrNotFound,
// errdefs.ErrConflict when p is not a directory,
// errdefs.ErrPermissionDenied.
func (f *FS) List(ctx context.Context, p string) ([]agentproto.FileEntry, error) {
	const op = "list"
	abs, rel, err := cleanPath(op, p)
	if err != nil {
		return nil, err
	}
	r, err := f.open(op, abs)
	if err != nil {
		return nil, err
	}
	defer r.close()
	fd, err := r.openat(rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, pathError(op, abs, err)
	}
	dir := os.NewFile(uintptr(fd), abs)
	defer dir.Close()

	var names []string
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		batch, err := dir.Readdirnames(1024)
		names = append(names, batch...)
		if len(names) > agentproto.MaxListEntries {
			return nil, fmt.Errorf("%s %s: too large: more than %d entries: %w", op, abs, agentproto.MaxListEntries, errdefs.ErrInvalidArgument)
		}
		if errors.Is(err, io.EOF) || err == nil && len(batch) == 0 {
			break
		}
		if err != nil {
			return nil, pathError(op, abs, err)
		}
	}
	slices.Sort(names)
	entries := make([]agentproto.FileEntry, 0, len(names))
	for _, name := range names {
		var st unix.Stat_t
		err := fstatat(fd, name, &st)
		if err == unix.ENOENT {
			continue // removed since it was read
		}
		if err != nil {
			return nil, pathError(op, path.Join(abs, name), err)
		}
		entries = append(entries, entryOf(path.Join(abs, name), &st))
	}
	return entries, nil
}

// Remove removes the entry at p: a file or symbolic link (not its
// target), or a directory, which must be empty unless recursive is set.
//
// Errors: errdefs.ErrInvalidArgument for a bad path or the root,
// errdefs.ErrNotFound, errdefs.ErrConflict for a non-empty directory
// without recursive ("directory not empty"), errdefs.ErrPermissionDenied.
func (f *FS) Remove(ctx context.Context, p string, recursive bool) error {
	const op = "remove"
	abs, rel, err := cleanPath(op, p)
	if err != nil {
		return err
	}
	if rel == "." {
		return fmt.Errorf("%s /: cannot remove the root directory: %w", op, errdefs.ErrInvalidArgument)
	}
	r, err := f.open(op, abs)
	if err != nil {
		return err
	}
	defer r.close()
	pfd, base, err := r.parent(rel)
	if err != nil {
		return pathError(op, abs, err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := fstatat(pfd, base, &st); err != nil {
		return pathError(op, abs, err)
	}
	switch {
	case !isDir(&st):
		err = unix.Unlinkat(pfd, base, 0)
	case recursive:
		err = removeAll(ctx, pfd, base)
	default:
		err = unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
		if err == unix.EEXIST {
			err = unix.ENOTEMPTY
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return pathError(op, abs, err)
	}
	if err := fsyncDir(pfd); err != nil {
		return pathError(op, abs, err)
	}
	return nil
}

// removeAll removes the directory name in dirfd with everything below it,
// never following a symbolic link.
func removeAll(ctx context.Context, dirfd int, name string) error {
	for range 3 {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch err {
		case nil:
		case unix.ENOENT:
			return nil
		case unix.ENOTDIR, unix.ELOOP:
			// Replaced by a file or a link since it was looked at.
			return unix.Unlinkat(dirfd, name, 0)
		default:
			return err
		}
		if err := removeEntries(ctx, fd, name); err != nil {
			return err
		}
		err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
		switch err {
		case nil, unix.ENOENT:
			return nil
		case unix.ENOTEMPTY, unix.EEXIST:
			continue // something was created meanwhile; go again
		}
		return err
	}
	return unix.ENOTEMPTY
}

// removeEntries removes everything in the directory fd and closes fd.
func removeEntries(ctx context.Context, fd int, name string) error {
	dir := os.NewFile(uintptr(fd), name)
	defer dir.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		names, rerr := dir.Readdirnames(1024)
		for _, n := range names {
			err := unix.Unlinkat(fd, n, 0)
			if err == unix.EISDIR {
				err = removeAll(ctx, fd, n)
			}
			if err != nil && err != unix.ENOENT {
				return err
			}
		}
		if len(names) == 0 || errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return errnoOf(rerr)
		}
	}
}

// Mkdir creates the directory p with mode's permission bits (0 means
// 0755). With parents, missing parents are created too and an existing
// directory at p is not an error. It returns the directory's entry.
//
// Errors: errdefs.ErrInvalidArgument for a bad path or mode,
// errdefs.ErrNotFound for a missing parent without parents,
// errdefs.ErrConflict when p exists (without parents) or is not a
// directory, or a parent is not a directory, errdefs.ErrPermissionDenied.
func (f *FS) Mkdir(ctx context.Context, p string, parents bool, mode uint32) (agentproto.FileEntry, error) {
	const op = "mkdir"
	abs, rel, err := cleanPath(op, p)
	if err != nil {
		return agentproto.FileEntry{}, err
	}
	if mode&^0o7777 != 0 {
		return agentproto.FileEntry{}, fmt.Errorf("%s %s: mode %#o has bits beyond 07777: %w", op, abs, mode, errdefs.ErrInvalidArgument)
	}
	r, err := f.open(op, abs)
	if err != nil {
		return agentproto.FileEntry{}, err
	}
	defer r.close()
	if rel == "." {
		if !parents {
			return agentproto.FileEntry{}, fmt.Errorf("%s /: already exists: %w", op, errdefs.ErrConflict)
		}
		st, err := r.lstat(rel)
		if err != nil {
			return agentproto.FileEntry{}, pathError(op, abs, err)
		}
		return entryOf(abs, &st), nil
	}
	if parents {
		if err := r.mkdirAll(path.Dir(rel)); err != nil {
			return agentproto.FileEntry{}, pathError(op, abs, err)
		}
	}
	pfd, base, err := r.parent(rel)
	if err != nil {
		if err == unix.ENOENT {
			return agentproto.FileEntry{}, fmt.Errorf("%s %s: parent directory does not exist: %w", op, abs, errdefs.ErrNotFound)
		}
		return agentproto.FileEntry{}, pathError(op, abs, err)
	}
	defer unix.Close(pfd)
	perm := mode
	if perm == 0 {
		perm = 0o755
	}
	created := true
	if err := unix.Mkdirat(pfd, base, perm); err != nil {
		if err != unix.EEXIST || !parents {
			return agentproto.FileEntry{}, pathError(op, abs, err)
		}
		// mkdir -p: fine when what exists resolves to a directory.
		if st, err := r.stat(rel); err != nil || !isDir(&st) {
			return agentproto.FileEntry{}, fmt.Errorf("%s %s: already exists and is not a directory: %w", op, abs, errdefs.ErrConflict)
		}
		created = false
	}
	if created && mode != 0 {
		// Exact bits, whatever the umask.
		if err := chmodDir(pfd, base, mode); err != nil {
			return agentproto.FileEntry{}, pathError(op, abs, err)
		}
	}
	if created {
		if err := fsyncDir(pfd); err != nil {
			return agentproto.FileEntry{}, pathError(op, abs, err)
		}
	}
	st, err := r.stat(rel)
	if err != nil {
		return agentproto.FileEntry{}, pathError(op, abs, err)
	}
	return entryOf(abs, &st), nil
}

// chmodDir sets the permission bits of the directory name in dirfd.
func chmodDir(dirfd int, name string, mode uint32) error {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fchmod(fd, mode)
}

// mkdirAll makes rel and its missing parents directories (mode 0755,
// less the umask). It returns ENOTDIR when one of them exists and is not a
// directory.
func (r *root) mkdirAll(rel string) error {
	if rel == "." {
		return nil
	}
	fd, err := r.openat(rel, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil {
		unix.Close(fd)
		return nil
	}
	if err != unix.ENOENT {
		return err
	}
	if err := r.mkdirAll(path.Dir(rel)); err != nil {
		return err
	}
	pfd, base, err := r.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	err = unix.Mkdirat(pfd, base, 0o755)
	if err == unix.EEXIST {
		// Created meanwhile, or a dangling link or a file is in the way.
		if st, serr := r.stat(rel); serr == nil && isDir(&st) {
			return nil
		}
		return unix.ENOTDIR
	}
	return err
}

// RenameOptions modify Rename.
type RenameOptions struct {
	// Overwrite replaces an existing destination (a file, or an empty
	// directory when the source is a directory).
	Overwrite bool
	// CreateParents creates the destination's missing parents.
	CreateParents bool
}

// Rename moves the entry at from (a symbolic link itself, not its target)
// to to and returns its entry at to.
//
// Errors: errdefs.ErrInvalidArgument for a bad path, the root, or a
// directory moved into itself; errdefs.ErrNotFound for a missing source or
// destination parent; errdefs.ErrConflict for an existing destination
// without Overwrite ("already exists"), a type mismatch with it ("is a
// directory", "not a directory", "directory not empty") or a move across
// file systems; errdefs.ErrPermissionDenied.
func (f *FS) Rename(ctx context.Context, from, to string, opts RenameOptions) (agentproto.FileEntry, error) {
	const op = "rename"
	fromAbs, fromRel, err := cleanPath(op, from)
	if err != nil {
		return agentproto.FileEntry{}, err
	}
	toAbs, toRel, err := cleanPath(op+" "+fromAbs+" to", to)
	if err != nil {
		return agentproto.FileEntry{}, err
	}
	what := fromAbs + " to " + toAbs
	switch {
	case fromRel == "." || toRel == ".":
		return agentproto.FileEntry{}, fmt.Errorf("%s %s: cannot move the root directory or replace it: %w", op, what, errdefs.ErrInvalidArgument)
	case strings.HasPrefix(toAbs, fromAbs+"/"):
		return agentproto.FileEntry{}, fmt.Errorf("%s %s: cannot move a directory into itself: %w", op, what, errdefs.ErrInvalidArgument)
	}
	r, err := f.open(op, what)
	if err != nil {
		return agentproto.FileEntry{}, err
	}
	defer r.close()
	fpfd, fbase, err := r.parent(fromRel)
	if err != nil {
		return agentproto.FileEntry{}, pathError(op, what, err)
	}
	defer unix.Close(fpfd)
	if opts.CreateParents {
		if err := r.mkdirAll(path.Dir(toRel)); err != nil {
			return agentproto.FileEntry{}, pathError(op, what, err)
		}
	}
	tpfd, tbase, err := r.parent(toRel)
	if err != nil {
		if err == unix.ENOENT {
			return agentproto.FileEntry{}, fmt.Errorf("%s %s: destination's parent directory does not exist: %w", op, what, errdefs.ErrNotFound)
		}
		return agentproto.FileEntry{}, pathError(op, what, err)
	}
	defer unix.Close(tpfd)
	if fromAbs == toAbs {
		var st unix.Stat_t
		if err := fstatat(tpfd, tbase, &st); err != nil {
			return agentproto.FileEntry{}, pathError(op, what, err)
		}
		return entryOf(toAbs, &st), nil
	}
	if err := rename(fpfd, fbase, tpfd, tbase, opts.Overwrite); err != nil {
		return agentproto.FileEntry{}, pathError(op, what, err)
	}
	if err := fsyncDir(tpfd); err != nil {
		return agentproto.FileEntry{}, pathError(op, what, err)
	}
	if path.Dir(fromAbs) != path.Dir(toAbs) {
		if err := fsyncDir(fpfd); err != nil {
			return agentproto.FileEntry{}, pathError(op, what, err)
		}
	}
	var st unix.Stat_t
	if err := fstatat(tpfd, tbase, &st); err != nil {
		return agentproto.FileEntry{}, pathError(op, what, err)
	}
	return entryOf(toAbs, &st), nil
}

// rename moves oldname in olddir to newname in newdir; without overwrite an
// existing newname is EEXIST.
func rename(olddir int, oldname string, newdir int, newname string, overwrite bool) error {
	if overwrite {
		return retry(func() error { return unix.Renameat(olddir, oldname, newdir, newname) })
	}
	err := retry(func() error { return unix.Renameat2(olddir, oldname, newdir, newname, unix.RENAME_NOREPLACE) })
	if err != unix.EINVAL && err != unix.ENOSYS {
		return err
	}
	// A file system without RENAME_NOREPLACE (or a real EINVAL, which
	// renameat reports again): check, then rename.
	var st unix.Stat_t
	switch err := fstatat(newdir, newname, &st); err {
	case nil:
		return unix.EEXIST
	case unix.ENOENT:
	default:
		return err
	}
	return retry(func() error { return unix.Renameat(olddir, oldname, newdir, newname) })
}
