// Package fs implements the agent's file operations (write, read, stat,
// list, remove, mkdir, rename, exists) and serves them over the agent
// protocol (agentproto's file ops, with content streamed in chunks).
//
// Every operation works below one root directory: the sandbox's "/" when
// the agent runs as the sandbox's PID 1, any directory in tests. Paths are
// absolute sandbox paths; they are cleaned and resolved with
// openat2(RESOLVE_IN_ROOT), so ".." and absolute symbolic links resolve as
// if the root were "/" and never lead outside it, even when the agent does
// not run in its own mount namespace. The last element of a path is then
// handled with *at system calls on its parent directory's descriptor.
//
// Errors wrap the errdefs kinds and name the operation, the sandbox path
// and the reason ("write /workspace: is a directory"); they never contain
// host paths.
package fs

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// maxPath is the longest path accepted (PATH_MAX without its NUL).
const maxPath = 4095

// FS performs file operations below a root directory. It holds no open
// descriptors; every operation opens the root anew, so the zero cost of an
// idle FS and its safety for concurrent use come for free.
type FS struct {
	root string
}

// New returns an FS rooted at root; empty means "/".
func New(root string) *FS {
	if root == "" {
		root = "/"
	}
	return &FS{root: root}
}

// cleanPath validates p, an absolute sandbox path, and returns its clean
// form and the same path relative to the root ("." for the root itself).
// Errors wrap errdefs.ErrInvalidArgument and quote p.
func cleanPath(op, p string) (abs, rel string, err error) {
	switch {
	case p == "":
		return "", "", fmt.Errorf("%s: path is empty: %w", op, errdefs.ErrInvalidArgument)
	case strings.IndexByte(p, 0) >= 0:
		return "", "", fmt.Errorf("%s %q: path contains a NUL byte: %w", op, p, errdefs.ErrInvalidArgument)
	case !utf8.ValidString(p):
		return "", "", fmt.Errorf("%s %q: path is not valid UTF-8: %w", op, p, errdefs.ErrInvalidArgument)
	case p[0] != '/':
		return "", "", fmt.Errorf("%s %q: path must be absolute (start with /): %w", op, p, errdefs.ErrInvalidArgument)
	}
	abs = path.Clean(p)
	if len(abs) > maxPath {
		return "", "", fmt.Errorf("%s %.64q...: path longer than %d bytes: %w", op, abs, maxPath, errdefs.ErrInvalidArgument)
	}
	if abs == "/" {
		return abs, ".", nil
	}
	return abs, abs[1:], nil
}

// root is an open root directory for the duration of one operation.
type root struct {
	fd int
	// plain is set when openat2 is missing (ENOSYS) and the root is "/":
	// plain openat is then confined by the agent's own root directory.
	plain bool
	// dir is the root as FS was given it.
	dir string
	// path is the root's path as /proc/self/fd shows it, read on demand.
	path string
}

// open opens the root directory.
func (f *FS) open(op, p string) (*root, error) {
	fd, err := unix.Open(f.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		// Not the caller's fault, and the host path stays out of the message.
		return nil, fmt.Errorf("%s %s: the file root cannot be opened: %v: %w", op, p, errnoOf(err), errdefs.ErrInternal)
	}
	return &root{fd: fd, dir: f.root}, nil
}

func (r *root) close() { unix.Close(r.fd) }

// openat opens rel (relative to the root, symbolic links followed inside
// it) with flags, which must not include O_CREAT.
func (r *root) openat(rel string, flags int) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for tries := 0; ; tries++ {
		var fd int
		var err error
		if r.plain {
			fd, err = unix.Openat(r.fd, rel, flags|unix.O_CLOEXEC, 0)
		} else {
			fd, err = unix.Openat2(r.fd, rel, &how)
		}
		switch {
		case err == nil:
			return fd, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN && tries < 32:
			// A concurrent rename raced the lookup; RESOLVE_IN_ROOT
			// refuses to guess.
			continue
		case err == unix.ENOSYS && !r.plain:
			if r.dir != "/" {
				return -1, err
			}
			r.plain = true
			continue
		}
		return -1, err
	}
}

// parent opens the directory that holds rel's last element and returns it
// with that element's name. rel must not be ".".
func (r *root) parent(rel string) (int, string, error) {
	dir, base := path.Split(rel)
	if dir == "" {
		dir = "."
	}
	fd, err := r.openat(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, "", err
	}
	return fd, base, nil
}

// lstat describes rel itself (a symbolic link is not followed).
func (r *root) lstat(rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if rel == "." {
		return st, unix.Fstat(r.fd, &st)
	}
	pfd, base, err := r.parent(rel)
	if err != nil {
		return st, err
	}
	defer unix.Close(pfd)
	return st, fstatat(pfd, base, &st)
}

// stat describes what rel resolves to (symbolic links followed).
func (r *root) stat(rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := r.openat(rel, unix.O_PATH)
	if err != nil {
		return st, err
	}
	defer unix.Close(fd)
	return st, unix.Fstat(fd, &st)
}

// rootPath is the root's path as the agent sees it, from /proc; empty
// when /proc is not available.
func (r *root) rootPath() string {
	if r.path == "" {
		r.path, _ = fdPath(r.fd)
	}
	return r.path
}

// sandboxPath returns the sandbox path of fd, an open descriptor below the
// root, or false when it cannot be told (no /proc, a deleted file).
func (r *root) sandboxPath(fd int) (string, bool) {
	p, err := fdPath(fd)
	rp := r.rootPath()
	if err != nil || rp == "" || strings.HasSuffix(p, " (deleted)") {
		return "", false
	}
	if rp == "/" {
		return p, strings.HasPrefix(p, "/")
	}
	if rest, ok := strings.CutPrefix(p, rp); ok && strings.HasPrefix(rest, "/") {
		return rest, true
	}
	return "", false
}

// fdPath reads /proc/self/fd/N.
func fdPath(fd int) (string, error) {
	buf := make([]byte, maxPath+1)
	for {
		n, err := unix.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd), buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

// fstatat stats name in dirfd without following a symbolic link.
func fstatat(dirfd int, name string, st *unix.Stat_t) error {
	return retry(func() error { return unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW) })
}

// fsyncDir makes the entries of the directory dirfd (an O_PATH
// descriptor) durable.
func fsyncDir(dirfd int) error {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return retry(func() error { return unix.Fsync(fd) })
}

// retry calls f again while it fails with EINTR.
func retry(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

// entryOf describes the entry at abs from its stat.
func entryOf(abs string, st *unix.Stat_t) agentproto.FileEntry {
	typ := agentproto.FileTypeOther
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		typ = agentproto.FileTypeFile
	case unix.S_IFDIR:
		typ = agentproto.FileTypeDir
	case unix.S_IFLNK:
		typ = agentproto.FileTypeSymlink
	}
	return agentproto.FileEntry{
		Name:       path.Base(abs),
		Path:       abs,
		Type:       typ,
		Size:       st.Size,
		Mode:       fmt.Sprintf("%04o", st.Mode&0o7777),
		ModifiedAt: time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC(),
	}
}

func isDir(st *unix.Stat_t) bool  { return st.Mode&unix.S_IFMT == unix.S_IFDIR }
func isLink(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFLNK }
func isReg(st *unix.Stat_t) bool  { return st.Mode&unix.S_IFMT == unix.S_IFREG }

// errnoOf returns the errno inside err, or err itself.
func errnoOf(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// pathError turns a system call's failure on p into an error of the
// errdefs kind that fits, naming the operation, the sandbox path and the
// reason. An error that already has a kind is returned as it is.
func pathError(op, p string, err error) error {
	if errdefs.Code(err) != "internal" || errors.Is(err, errdefs.ErrInternal) {
		return err
	}
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("%s %s: %v: %w", op, p, err, errdefs.ErrInternal)
	}
	kind, reason := classify(errno)
	return fmt.Errorf("%s %s: %s: %w", op, p, reason, kind)
}

// classify maps an errno to an errdefs kind and a reason.
func classify(errno unix.Errno) (error, string) {
	switch errno {
	case unix.ENOENT:
		return errdefs.ErrNotFound, "no such file or directory"
	case unix.ENOTDIR:
		return errdefs.ErrConflict, "not a directory"
	case unix.EISDIR:
		return errdefs.ErrConflict, "is a directory"
	case unix.EEXIST:
		return errdefs.ErrConflict, "already exists"
	case unix.ENOTEMPTY:
		return errdefs.ErrConflict, "directory not empty"
	case unix.EBUSY:
		return errdefs.ErrConflict, "device or resource busy (a mount point?)"
	case unix.ETXTBSY:
		return errdefs.ErrConflict, "text file busy"
	case unix.EXDEV:
		return errdefs.ErrConflict, "cannot move across file systems"
	case unix.EACCES, unix.EPERM:
		return errdefs.ErrPermissionDenied, "permission denied"
	case unix.EROFS:
		return errdefs.ErrPermissionDenied, "read-only file system"
	case unix.ENAMETOOLONG:
		return errdefs.ErrInvalidArgument, "name too long"
	case unix.ELOOP:
		return errdefs.ErrInvalidArgument, "too many levels of symbolic links"
	case unix.EINVAL:
		return errdefs.ErrInvalidArgument, "invalid argument"
	case unix.EFBIG:
		return errdefs.ErrInvalidArgument, "too large: file too large"
	case unix.EDQUOT:
		return errdefs.ErrResourceExhausted, "disk quota exceeded (the sandbox's resources.diskMb is used up; delete files to free space)"
	case unix.ENOSPC:
		return errdefs.ErrResourceExhausted, "no space left on device (the file system is full; delete files to free space)"
	case unix.EMFILE, unix.ENFILE:
		return errdefs.ErrUnavailable, "too many open files"
	}
	return errdefs.ErrInternal, errno.Error()
}
