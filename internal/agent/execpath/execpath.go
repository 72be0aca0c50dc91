// Package execpath holds what the agent's command lookup and the code
// kernels' interpreter lookup share: the default PATH and the check that a
// file can be executed, and the error kinds of a failed start.
package execpath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// DefaultPath is searched for a name when the environment has no PATH (as
// execvp does). It is not added to the process's environment.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Check reports whether p is a regular file with an execute bit. The error
// completes a sentence starting with the executable's name.
func Check(p string) error {
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("not found: %w", errdefs.ErrNotFound)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("is not accessible: %w", errdefs.ErrPermissionDenied)
	case err != nil:
		return fmt.Errorf("cannot be inspected: %v: %w", ErrnoText(err), errdefs.ErrInvalidArgument)
	case fi.IsDir():
		return fmt.Errorf("is a directory: %w", errdefs.ErrPermissionDenied)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("is not a regular file: %w", errdefs.ErrPermissionDenied)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("is not executable: %w", errdefs.ErrPermissionDenied)
	}
	return nil
}

// ErrnoText returns the errno's text of err without the path that
// os.PathError adds (paths of the agent's host are not the client's
// business).
func ErrnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return "unexpected error"
}

// StartError maps a failed fork/exec of name to an error kind.
func StartError(name string, err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("start %q: %v: %w", name, err, errdefs.ErrInternal)
	}
	switch errno {
	case syscall.ENOENT, syscall.ENOTDIR:
		// The file was found, so a missing interpreter or loader.
		return fmt.Errorf("start %q: %v (missing interpreter?): %w", name, errno, errdefs.ErrNotFound)
	case syscall.EACCES, syscall.EPERM:
		return fmt.Errorf("start %q: %v: %w", name, errno, errdefs.ErrPermissionDenied)
	case syscall.ENOEXEC, syscall.E2BIG, syscall.ELOOP, syscall.ENAMETOOLONG:
		return fmt.Errorf("start %q: %v: %w", name, errno, errdefs.ErrInvalidArgument)
	case syscall.EAGAIN, syscall.ENOMEM, syscall.EMFILE, syscall.ENFILE:
		return fmt.Errorf("start %q: %v (sandbox limits reached?): %w", name, errno, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("start %q: %v: %w", name, errno, errdefs.ErrInternal)
}
