package fs

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// Open opens the regular file at p for reading (symbolic links followed)
// and returns its entry with it. The caller closes the file. The entry's
// Size is -1 for a file whose size is not known before it is read (files
// of /proc, /sys and similar file systems, which report 0).
//
// Errors: errdefs.ErrInvalidArgument for a bad path or an entry that is
// not a regular file (a device, a FIFO, a socket), errdefs.ErrNotFound,
// errdefs.ErrConflict when p is a directory ("is a directory") or a parent
// is not a directory, errdefs.ErrPermissionDenied.
func (f *FS) Open(ctx context.Context, p string) (agentproto.FileEntry, *os.File, error) {
	const op = "read"
	abs, rel, err := cleanPath(op, p)
	if err != nil {
		return agentproto.FileEntry{}, nil, err
	}
	r, err := f.open(op, abs)
	if err != nil {
		return agentproto.FileEntry{}, nil, err
	}
	defer r.close()
	// O_NONBLOCK: opening a FIFO must not wait for a writer.
	fd, err := r.openat(rel, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK)
	if err != nil {
		return agentproto.FileEntry{}, nil, pathError(op, abs, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return agentproto.FileEntry{}, nil, pathError(op, abs, err)
	}
	switch {
	case isDir(&st):
		unix.Close(fd)
		return agentproto.FileEntry{}, nil, fmt.Errorf("%s %s: is a directory: %w", op, abs, errdefs.ErrConflict)
	case !isReg(&st):
		unix.Close(fd)
		return agentproto.FileEntry{}, nil, fmt.Errorf("%s %s: not a regular file: %w", op, abs, errdefs.ErrInvalidArgument)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return agentproto.FileEntry{}, nil, pathError(op, abs, err)
	}
	e := entryOf(abs, &st)
	if sizeUnknown(fd) {
		e.Size = -1
	}
	return e, os.NewFile(uintptr(fd), abs), nil
}

// sizeUnknown reports whether fd is on a file system whose files do not
// know their size in advance (/proc, /sys and their kin report 0).
func sizeUnknown(fd int) bool {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return false
	}
	switch uint32(sfs.Type) {
	case unix.PROC_SUPER_MAGIC, unix.SYSFS_MAGIC, unix.DEBUGFS_MAGIC, unix.TRACEFS_MAGIC,
		unix.CGROUP_SUPER_MAGIC, unix.CGROUP2_SUPER_MAGIC, unix.SECURITYFS_MAGIC,
		unix.BPF_FS_MAGIC, unix.EFIVARFS_MAGIC:
		return true
	}
	return false
}
