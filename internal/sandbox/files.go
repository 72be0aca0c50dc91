package sandbox

import (
	"context"
	"fmt"
	"io"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/template"
)

// WriteFile writes content to an absolute path in the sandbox, atomically
// (temporary file + rename), and returns the new entry.
func (s *Service) WriteFile(ctx context.Context, tenant, sandboxID, path string, content io.Reader, opts WriteFileOptions) (FileEntry, error) {
	return FileEntry{}, fmt.Errorf("files are not implemented yet: %w", errdefs.ErrUnavailable)
}

// OpenFile opens a file of the sandbox for reading. The caller closes the
// reader.
func (s *Service) OpenFile(ctx context.Context, tenant, sandboxID, path string) (FileEntry, io.ReadCloser, error) {
	return FileEntry{}, nil, fmt.Errorf("files are not implemented yet: %w", errdefs.ErrUnavailable)
}

// DeleteFile removes a file, or a directory (with its contents only when
// recursive).
func (s *Service) DeleteFile(ctx context.Context, tenant, sandboxID, path string, recursive bool) error {
	return fmt.Errorf("files are not implemented yet: %w", errdefs.ErrUnavailable)
}

// ListFiles lists a directory; dir defaults to the template's working
// directory.
func (s *Service) ListFiles(ctx context.Context, tenant, sandboxID, dir string) (FileList, error) {
	return FileList{}, fmt.Errorf("files are not implemented yet: %w", errdefs.ErrUnavailable)
}

// CreateTemplate registers a custom template and starts building it; the
// template is returned at once with status "building".
func (s *Service) CreateTemplate(ctx context.Context, tenant string, cfg TemplateConfig) (template.Template, error) {
	return template.Template{}, fmt.Errorf("custom templates are not implemented yet: %w", errdefs.ErrUnavailable)
}
