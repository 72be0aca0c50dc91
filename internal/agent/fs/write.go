package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// WriteOptions modify Write.
type WriteOptions struct {
	// CreateParents creates missing parent directories (mode 0755).
	CreateParents bool
	// Mode is the file's permission bits; 0 keeps those of the file that
	// is replaced, or gives a new file 0644.
	Mode uint32
}

// ContentError is returned by Write when reading the content failed; Err
// is the reader's error. The file is left as it was.
type ContentError struct{ Err error }

func (e *ContentError) Error() string { return "reading the content: " + e.Err.Error() }
func (e *ContentError) Unwrap() error { return e.Err }

// maxLinkHops bounds how many symbolic links Write follows at the path.
const maxLinkHops = 8

// Write replaces the file at p with content, atomically: the content goes
// to a temporary file in the same directory, which is synced, renamed over
// p, and the directory is synced, so the file is durable when Write
// returns. Readers see the old file or the new one, never a mix. A
// symbolic link at p is followed when its target exists (a dangling link
// is replaced). It returns the new file's entry.
//
// Errors: errdefs.ErrInvalidArgument for a bad path or mode,
// errdefs.ErrNotFound when the parent is missing and not CreateParents,
// errdefs.ErrConflict when p is a directory ("is a directory") or a parent
// is not a directory ("not a directory"), errdefs.ErrPermissionDenied,
// errdefs.ErrResourceExhausted when the sandbox's disk quota or the file
// system is full, and a *ContentError when content fails.
func (f *FS) Write(ctx context.Context, p string, content io.Reader, opts WriteOptions) (agentproto.FileEntry, error) {
	const op = "write"
	abs, rel, err := cleanPath(op, p)
	if err != nil {
		return agentproto.FileEntry{}, err
	}
	if opts.Mode&^0o7777 != 0 {
		return agentproto.FileEntry{}, fmt.Errorf("%s %s: mode %#o has bits beyond 07777: %w", op, abs, opts.Mode, errdefs.ErrInvalidArgument)
	}
	if rel == "." {
		return agentproto.FileEntry{}, fmt.Errorf("%s /: is a directory: %w", op, errdefs.ErrConflict)
	}
	r, err := f.open(op, abs)
	if err != nil {
		return agentproto.FileEntry{}, err
	}
	defer r.close()
	t, err := r.writeTarget(op, abs, rel, opts.CreateParents)
	if err != nil {
		return agentproto.FileEntry{}, err
	}
	defer unix.Close(t.dirfd)

	mode := uint32(0o644)
	if t.old != nil && isReg(t.old) {
		mode = t.old.Mode & 0o7777
	}
	if opts.Mode != 0 {
		mode = opts.Mode
	}
	tmp, err := tempName(t.old != nil && isReg(t.old))
	if err != nil {
		return agentproto.FileEntry{}, fmt.Errorf("%s %s: %v: %w", op, abs, err, errdefs.ErrInternal)
	}
	fd, err := unix.Openat(t.dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return agentproto.FileEntry{}, pathError(op, abs, err)
	}
	file := os.NewFile(uintptr(fd), abs)
	renamed := false
	defer func() {
		file.Close()
		if !renamed {
			_ = unix.Unlinkat(t.dirfd, tmp, 0)
		}
	}()
	if err := copyContent(file, content); err != nil {
		var ce *ContentError
		if errors.As(err, &ce) {
			return agentproto.FileEntry{}, fmt.Errorf("%s %s: %w", op, abs, err)
		}
		return agentproto.FileEntry{}, pathError(op, abs, err)
	}
	if t.old != nil && isReg(t.old) {
		// Keep the owner of the file that is replaced (best effort).
		_ = unix.Fchown(fd, int(t.old.Uid), int(t.old.Gid))
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return agentproto.FileEntry{}, pathError(op, abs, err)
	}
	if err := file.Sync(); err != nil {
		return agentproto.FileEntry{}, pathError(op, abs, err)
	}
	if err := ctx.Err(); err != nil {
		return agentproto.FileEntry{}, err
	}
	if err := retry(func() error { return unix.Renameat(t.dirfd, tmp, t.dirfd, t.name) }); err != nil {
		return agentproto.FileEntry{}, pathError(op, abs, err)
	}
	renamed = true
	if err := fsyncDir(t.dirfd); err != nil {
		return agentproto.FileEntry{}, pathError(op, abs, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return agentproto.FileEntry{}, pathError(op, abs, err)
	}
	return entryOf(abs, &st), nil
}

// copyContent copies content to file in large writes. A failed read is a
// *ContentError; a failed write is the file's error.
func copyContent(file *os.File, content io.Reader) error {
	buf := make([]byte, agentproto.ChunkSize)
	for {
		n, rerr := content.Read(buf)
		if n > 0 {
			if _, err := file.Write(buf[:n]); err != nil {
				return errnoOf(err)
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return &ContentError{Err: rerr}
		}
	}
}

// writeTarget is where Write puts its file: a directory and a name in it,
// with what is there now (nil when nothing).
type writeTarget struct {
	dirfd int
	name  string
	old   *unix.Stat_t
}

// writeTarget resolves rel for a write: it creates missing parents when
// asked, follows a symbolic link whose target exists, and refuses a
// directory.
func (r *root) writeTarget(op, abs, rel string, createParents bool) (writeTarget, error) {
	for hops := 0; ; hops++ {
		pfd, base, err := r.parent(rel)
		if err == unix.ENOENT && createParents {
			if err := r.mkdirAll(path.Dir(rel)); err != nil {
				return writeTarget{}, pathError(op, abs, err)
			}
			pfd, base, err = r.parent(rel)
		}
		if err == unix.ENOENT {
			return writeTarget{}, fmt.Errorf("%s %s: parent directory does not exist (set createParents to create it): %w", op, abs, errdefs.ErrNotFound)
		}
		if err != nil {
			return writeTarget{}, pathError(op, abs, err)
		}
		var st unix.Stat_t
		err = fstatat(pfd, base, &st)
		switch {
		case err == unix.ENOENT:
			return writeTarget{dirfd: pfd, name: base}, nil
		case err != nil:
			unix.Close(pfd)
			return writeTarget{}, pathError(op, abs, err)
		case isDir(&st):
			unix.Close(pfd)
			return writeTarget{}, fmt.Errorf("%s %s: is a directory: %w", op, abs, errdefs.ErrConflict)
		case isLink(&st) && hops < maxLinkHops:
			next, ok, err := r.linkTarget(rel)
			if err != nil {
				unix.Close(pfd)
				return writeTarget{}, pathError(op, abs, err)
			}
			if !ok {
				// Dangling, or its target cannot be named: replace the link.
				return writeTarget{dirfd: pfd, name: base, old: &st}, nil
			}
			unix.Close(pfd)
			rel = next
		default:
			return writeTarget{dirfd: pfd, name: base, old: &st}, nil
		}
	}
}

// linkTarget resolves the symbolic link rel inside the root and returns
// the root-relative path of what it leads to, or false when that does not
// exist or cannot be named. A link to a directory is EISDIR.
func (r *root) linkTarget(rel string) (string, bool, error) {
	fd, err := r.openat(rel, unix.O_PATH)
	switch err {
	case nil:
	case unix.ENOENT, unix.ELOOP:
		return "", false, nil
	default:
		return "", false, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", false, err
	}
	if isDir(&st) {
		return "", false, unix.EISDIR
	}
	p, ok := r.sandboxPath(fd)
	if !ok {
		return "", false, nil
	}
	_, next, err := cleanPath("write", p)
	if err != nil || next == "." {
		return "", false, nil
	}
	return next, true, nil
}

// Temporary files of Write are named tempPrefixReplace or tempPrefixNew
// (whether a file is replaced), 16 hex digits and tempSuffix, so that a
// watch reports the rename that ends a write as one change of the path.
const (
	tempPrefixReplace = ".sdbx-write-"
	tempPrefixNew     = ".sdbx-new-"
	tempSuffix        = ".tmp"
)

// tempName returns a fresh name for a temporary file.
func tempName(replacing bool) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	prefix := tempPrefixNew
	if replacing {
		prefix = tempPrefixReplace
	}
	return prefix + hex.EncodeToString(b[:]) + tempSuffix, nil
}

// tempKind tells whether name is one of Write's temporary files, and if
// so the change its rename over a path is: created or modified.
func tempKind(name string) (string, bool) {
	var rest string
	var kind string
	switch {
	case strings.HasPrefix(name, tempPrefixReplace):
		rest, kind = name[len(tempPrefixReplace):], agentproto.ChangeModified
	case strings.HasPrefix(name, tempPrefixNew):
		rest, kind = name[len(tempPrefixNew):], agentproto.ChangeCreated
	default:
		return "", false
	}
	hexPart, ok := strings.CutSuffix(rest, tempSuffix)
	if !ok || len(hexPart) != 16 {
		return "", false
	}
	if _, err := hex.DecodeString(hexPart); err != nil {
		return "", false
	}
	return kind, true
}
