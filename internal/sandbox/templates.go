package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/template"
)

// CustomTemplates is the ability of a catalog to hold the tenants' own
// templates, build them, and fetch layers on first use
// (*template.Catalog has it). The service finds it by type assertion on
// the Templates it was given; without it, only the catalog's List is
// offered and custom templates are unavailable.
type CustomTemplates interface {
	// ListFor returns the built-ins and the tenant's own templates.
	ListFor(tenant string) []template.Template
	// Lookup returns errdefs.ErrNotFound for an unknown id or another
	// tenant's template.
	Lookup(tenant, id string) (template.Template, error)
	// Acquire waits (bounded by ctx) until the template is ready and
	// holds it against deletion until release is called.
	Acquire(ctx context.Context, tenant, id string) (template.Template, func(), error)
	// Create records a template in status building and starts its build.
	Create(ctx context.Context, tenant string, req template.BuildRequest) (template.Template, error)
	// Delete removes a template unless users reports sandboxes using it.
	Delete(ctx context.Context, tenant, id string, users func(ctx context.Context) (int, error)) error
}

// templateUsers is the ability of a store to count the sandboxes (not
// terminated) of a template; without it the service counts from
// ListSandboxes.
type templateUsers interface {
	CountTemplateUsers(ctx context.Context, templateID string) (int, error)
}

// TemplateWait bounds how long a create waits for a template's layers
// (a first-use fetch of Node.js, a custom build in flight).
const TemplateWait = 10 * time.Minute

// acquireTemplate resolves the template of a new sandbox for tenant,
// waiting for its layers if needed. Call release once the sandbox is
// recorded: until then the template cannot be deleted.
func (s *Service) acquireTemplate(ctx context.Context, tenant, id string) (template.Template, func(), error) {
	ct, ok := s.templates.(CustomTemplates)
	if !ok {
		tmpl, err := s.templates.Get(id)
		if err != nil {
			return template.Template{}, nil, fmt.Errorf("templateId: %w", err)
		}
		if tmpl.Status != template.StatusReady {
			return template.Template{}, nil, fmt.Errorf("template %q is %s on this server: %w", tmpl.ID, tmpl.Status, errdefs.ErrConflict)
		}
		return tmpl, func() {}, nil
	}
	wctx, cancel := context.WithTimeout(ctx, TemplateWait)
	defer cancel()
	tmpl, release, err := ct.Acquire(wctx, tenant, id)
	if err != nil {
		return template.Template{}, nil, fmt.Errorf("templateId: %w", err)
	}
	return tmpl, release, nil
}

// Templates returns one page of the templates the tenant sees (the
// built-ins, then its own); page starts at 1.
func (s *Service) Templates(ctx context.Context, tenant string, page, pageSize int) (TemplatePage, error) {
	if page == 0 {
		page = 1
	}
	if pageSize == 0 {
		pageSize = 10
	}
	if page < 1 {
		return TemplatePage{}, fmt.Errorf("page must be at least 1, got %d: %w", page, errdefs.ErrInvalidArgument)
	}
	if pageSize < 1 || pageSize > 100 {
		return TemplatePage{}, fmt.Errorf("pageSize must be between 1 and 100, got %d: %w", pageSize, errdefs.ErrInvalidArgument)
	}
	var all []template.Template
	if ct, ok := s.templates.(CustomTemplates); ok {
		all = ct.ListFor(tenant)
	} else {
		all = s.templates.List()
	}
	start := min((page-1)*pageSize, len(all))
	end := min(start+pageSize, len(all))
	return TemplatePage{Templates: all[start:end], Total: len(all), Page: page, PageSize: pageSize}, nil
}

// Template returns one template the tenant sees, with its status (and the
// reason of a failed build in Error).
func (s *Service) Template(ctx context.Context, tenant, id string) (template.Template, error) {
	if id == "" {
		return template.Template{}, fmt.Errorf("templateId is required: %w", errdefs.ErrInvalidArgument)
	}
	if ct, ok := s.templates.(CustomTemplates); ok {
		return ct.Lookup(tenant, id)
	}
	return s.templates.Get(id)
}

// CreateTemplate registers a custom template and starts building it; the
// template is returned at once with status "building". Errors:
// errdefs.ErrInvalidArgument naming the bad field (an unparsable
// dockerImage among them; an image that cannot be pulled fails the build
// instead), errdefs.ErrConflict when the tenant has a template of that
// name, errdefs.ErrUnavailable when this server cannot build templates.
func (s *Service) CreateTemplate(ctx context.Context, tenant string, cfg TemplateConfig) (template.Template, error) {
	ct, ok := s.templates.(CustomTemplates)
	if !ok {
		return template.Template{}, fmt.Errorf("custom templates are not available on this server: %w", errdefs.ErrUnavailable)
	}
	if err := validateEnv("defaultEnvVars", cfg.DefaultEnv); err != nil {
		return template.Template{}, err
	}
	return ct.Create(ctx, tenant, template.BuildRequest{
		Name: cfg.Name, Language: cfg.Language, Version: cfg.Version, DockerImage: cfg.DockerImage,
		Dependencies: cfg.Dependencies, InstallCommand: cfg.InstallCommand, DefaultEnv: cfg.DefaultEnv,
	})
}

// DeleteTemplate removes one of the tenant's custom templates and the
// layers no other template uses. Errors: errdefs.ErrNotFound for an
// unknown id (or another tenant's), errdefs.ErrPermissionDenied for a
// built-in, errdefs.ErrConflict while sandboxes (not terminated) use it.
func (s *Service) DeleteTemplate(ctx context.Context, tenant, id string) error {
	if id == "" {
		return fmt.Errorf("templateId is required: %w", errdefs.ErrInvalidArgument)
	}
	ct, ok := s.templates.(CustomTemplates)
	if !ok {
		if _, err := s.templates.Get(id); err != nil {
			return err
		}
		return fmt.Errorf("template %q is built in and cannot be deleted: %w", id, errdefs.ErrPermissionDenied)
	}
	return ct.Delete(ctx, tenant, id, func(ctx context.Context) (int, error) {
		if tu, ok := s.store.(templateUsers); ok {
			return tu.CountTemplateUsers(ctx, id)
		}
		list, err := s.store.ListSandboxes(ctx, "")
		if err != nil {
			return 0, err
		}
		n := 0
		for _, sb := range list {
			if sb.TemplateID == id {
				n++
			}
		}
		return n, nil
	})
}

// BuildLogs is the ability of a catalog to stream the output of template
// builds (*template.Catalog has it); see template.Catalog.BuildLogs.
type BuildLogs interface {
	BuildLogs(ctx context.Context, tenant, id string, follow bool, onLine func(string)) (template.Template, error)
}

// TemplateLogs calls onLine for each line of the output of the
// template's last build, in order, and returns the template as it is at
// the end. With follow, a build in progress is followed until it ends.
// A built-in template has no build output. Errors:
// errdefs.ErrNotFound for an unknown id (or another tenant's).
func (s *Service) TemplateLogs(ctx context.Context, tenant, id string, follow bool, onLine func(string)) (template.Template, error) {
	if id == "" {
		return template.Template{}, fmt.Errorf("templateId is required: %w", errdefs.ErrInvalidArgument)
	}
	bl, ok := s.templates.(BuildLogs)
	if !ok {
		return s.Template(ctx, tenant, id)
	}
	return bl.BuildLogs(ctx, tenant, id, follow, onLine)
}
