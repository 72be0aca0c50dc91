package sandbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/template"
)

// File operations run in the sandbox's agent, which confines them to the
// sandbox's root. Paths are absolute sandbox paths. Besides the sandbox's
// own errors (errdefs.ErrNotFound for an unknown sandbox or one of another
// tenant, errdefs.ErrConflict when it is not ready or running), they
// return the agent's errors with its message ("write /workspace: is a
// directory"): errdefs.ErrNotFound for a missing file,
// errdefs.ErrInvalidArgument for a bad path or name,
// errdefs.ErrConflict for a directory where a file is expected or the
// reverse, an existing destination or a non-empty directory (the message
// says which), errdefs.ErrPermissionDenied, errdefs.ErrResourceExhausted
// when a write (or mkdir, rename) finds the sandbox's disk quota or a file
// system full; errdefs.ErrUnavailable when the agent cannot be reached.

// defaultFileOpTimeout bounds a file operation without content, in case
// the agent does not answer (Config.FileOpTimeout). Transfers are paced
// by the caller instead.
const defaultFileOpTimeout = 5 * time.Minute

// WriteFile writes content to an absolute path in the sandbox, atomically
// (temporary file + rename), and returns the new entry. content is
// streamed: memory use does not grow with its size. When content fails,
// the file is left as it was.
func (s *Service) WriteFile(ctx context.Context, tenant, sandboxID, path string, content io.Reader, opts WriteFileOptions) (FileEntry, error) {
	c, err := s.fileAgent(ctx, tenant, sandboxID)
	if err != nil {
		return FileEntry{}, err
	}
	e, err := c.WriteFile(ctx, agentproto.FileRequest{Path: path, CreateParents: opts.CreateParents}, content)
	if err != nil {
		return FileEntry{}, err
	}
	return fileEntry(e), nil
}

// OpenFile opens a file of the sandbox for reading. The caller closes the
// reader, which streams the content from the agent's connection (closing
// it closes the connection); ctx must stay alive while it is read. A read
// error part way wraps the agent's error kind. The reader returns exactly
// the entry's Size bytes, except when Size is -1: a file of /proc, /sys or
// the like, whose size is only known at its end.
func (s *Service) OpenFile(ctx context.Context, tenant, sandboxID, path string) (FileEntry, io.ReadCloser, error) {
	c, err := s.fileAgent(ctx, tenant, sandboxID)
	if err != nil {
		return FileEntry{}, nil, err
	}
	e, r, err := c.ReadFile(ctx, path)
	if err != nil {
		return FileEntry{}, nil, err
	}
	return fileEntry(e), r, nil
}

// DeleteFile removes a file, or a directory (with its contents only when
// recursive).
func (s *Service) DeleteFile(ctx context.Context, tenant, sandboxID, path string, recursive bool) error {
	_, err := fileOp(ctx, s, tenant, sandboxID, "delete", path, func(ctx context.Context, c *agentclient.Client) (struct{}, error) {
		return struct{}{}, c.RemoveFile(ctx, path, recursive)
	})
	return err
}

// ListFiles lists a directory; dir defaults to the template's working
// directory.
func (s *Service) ListFiles(ctx context.Context, tenant, sandboxID, dir string) (FileList, error) {
	sb, err := s.running(ctx, tenant, sandboxID)
	if err != nil {
		return FileList{}, err
	}
	if dir == "" {
		tmpl, err := s.templates.Get(sb.TemplateID)
		if err != nil {
			return FileList{}, err
		}
		dir = defaultDir(tmpl)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FileOpTimeout)
	defer cancel()
	entries, err := s.agent(sandboxID).ListFiles(ctx, dir)
	if err != nil {
		return FileList{}, fileOpError(ctx, "list", dir, err)
	}
	list := FileList{Path: dir, Entries: make([]FileEntry, len(entries))}
	if strings.HasPrefix(dir, "/") {
		list.Path = path.Clean(dir)
	}
	for i, e := range entries {
		list.Entries[i] = fileEntry(e)
	}
	return list, nil
}

// StatFile describes the entry at path; a symbolic link is described
// itself (type "symlink").
func (s *Service) StatFile(ctx context.Context, tenant, sandboxID, path string) (FileEntry, error) {
	return entryOp(ctx, s, tenant, sandboxID, "stat", path, func(ctx context.Context, c *agentclient.Client) (agentproto.FileEntry, error) {
		return c.StatFile(ctx, path)
	})
}

// MakeDir creates the directory path (mode 0755); with parents, missing
// parents are created too and an existing directory is not an error.
func (s *Service) MakeDir(ctx context.Context, tenant, sandboxID, path string, parents bool) (FileEntry, error) {
	return entryOp(ctx, s, tenant, sandboxID, "mkdir", path, func(ctx context.Context, c *agentclient.Client) (agentproto.FileEntry, error) {
		return c.MakeDir(ctx, agentproto.FileRequest{Path: path, CreateParents: parents})
	})
}

// MoveFile renames the entry at from to to and returns its entry at to.
// An existing destination is a conflict unless overwrite is set (a
// directory can replace only an empty directory).
func (s *Service) MoveFile(ctx context.Context, tenant, sandboxID, from, to string, overwrite bool) (FileEntry, error) {
	return entryOp(ctx, s, tenant, sandboxID, "move", from, func(ctx context.Context, c *agentclient.Client) (agentproto.FileEntry, error) {
		return c.MoveFile(ctx, agentproto.FileRequest{Path: from, To: to, Overwrite: overwrite})
	})
}

// FileExists reports whether path resolves to an entry (symbolic links
// followed; a dangling link does not exist).
func (s *Service) FileExists(ctx context.Context, tenant, sandboxID, path string) (bool, error) {
	return fileOp(ctx, s, tenant, sandboxID, "exists", path, func(ctx context.Context, c *agentclient.Client) (bool, error) {
		return c.FileExists(ctx, path)
	})
}

// fileAgent checks the sandbox and returns a client of its agent.
func (s *Service) fileAgent(ctx context.Context, tenant, id string) (*agentclient.Client, error) {
	if _, err := s.running(ctx, tenant, id); err != nil {
		return nil, err
	}
	return s.agent(id), nil
}

// fileOp runs call, an operation without content on path, against the
// agent of the caller's running sandbox, bounded by Config.FileOpTimeout; a
// passed deadline is said so.
func fileOp[T any](ctx context.Context, s *Service, tenant, sandboxID, op, path string, call func(context.Context, *agentclient.Client) (T, error)) (T, error) {
	var zero T
	c, err := s.fileAgent(ctx, tenant, sandboxID)
	if err != nil {
		return zero, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FileOpTimeout)
	defer cancel()
	v, err := call(ctx, c)
	if err != nil {
		return zero, fileOpError(ctx, op, path, err)
	}
	return v, nil
}

// entryOp is fileOp for an operation that answers with an entry.
func entryOp(ctx context.Context, s *Service, tenant, sandboxID, op, path string, call func(context.Context, *agentclient.Client) (agentproto.FileEntry, error)) (FileEntry, error) {
	e, err := fileOp(ctx, s, tenant, sandboxID, op, path, call)
	if err != nil {
		return FileEntry{}, err
	}
	return fileEntry(e), nil
}

// fileOpError explains err; a passed deadline is said so.
func fileOpError(ctx context.Context, op, path string, err error) error {
	if err != nil && errors.Is(err, errdefs.ErrTimeout) && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: no answer from the sandbox before the deadline: %w", op, path, errdefs.ErrTimeout)
	}
	return err
}

// defaultDir is where ListFiles looks without a path, and a new code
// context's working directory without one.
func defaultDir(t template.Template) string {
	return cmp.Or(t.DefaultCwd, "/workspace")
}

// fileEntry converts the agent's entry.
func fileEntry(e agentproto.FileEntry) FileEntry {
	return FileEntry{
		Name: e.Name, Path: e.Path, Type: e.Type, Size: e.Size, Mode: e.Mode,
		ModifiedAt: e.ModifiedAt.UTC(),
	}
}
