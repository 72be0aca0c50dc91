// Package sandbox is the domain core of sdbx: sandbox lifecycle, commands,
// expiry. It knows nothing of HTTP, SQL or syscalls: it drives a
// runtime.Driver, persists through a Store and resolves templates through a
// template catalog.
package sandbox

import (
	"context"

	"github.com/sdbx/sdbx/internal/template"
)

// TemplatePage is one page of the template catalog.
type TemplatePage struct {
	Templates []template.Template `json:"templates"`
	Total     int                 `json:"total"`
	Page      int                 `json:"page"`
	PageSize  int                 `json:"pageSize"`
}

// Service is the sandbox domain service. All methods take the caller's
// tenant; a sandbox of another tenant is reported as not found.
type Service struct{}

// Create validates opts, records the sandbox and starts it. It returns the
// sandbox in status ready, or an error and no sandbox.
func (s *Service) Create(ctx context.Context, tenant string, opts CreateOptions) (Sandbox, error) {
	panic("TODO")
}

// Get returns one sandbox.
func (s *Service) Get(ctx context.Context, tenant, id string) (Sandbox, error) { panic("TODO") }

// List returns the tenant's live sandboxes, newest first.
func (s *Service) List(ctx context.Context, tenant string) ([]Sandbox, error) { panic("TODO") }

// Delete terminates a sandbox and frees everything it used.
func (s *Service) Delete(ctx context.Context, tenant, id string) error { panic("TODO") }

// RunCommand runs a command in a sandbox, calling onOutput for each line as
// it is produced (from one goroutine, in order), and returns the result once
// the command has exited. A command killed by its timeout returns an error
// wrapping errdefs.ErrTimeout. Cancelling ctx kills the command.
func (s *Service) RunCommand(ctx context.Context, tenant, id string, req CommandRequest, onOutput func(Output)) (CommandResult, error) {
	panic("TODO")
}

// Templates returns one page of the catalog; page starts at 1.
func (s *Service) Templates(ctx context.Context, tenant string, page, pageSize int) (TemplatePage, error) {
	panic("TODO")
}

// Template returns one template.
func (s *Service) Template(ctx context.Context, tenant, id string) (template.Template, error) {
	panic("TODO")
}
