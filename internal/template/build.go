package template

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// Limits of a BuildRequest.
const (
	MaxNameLen           = 128
	MaxDependencies      = 256
	MaxDependencyLen     = 256
	MaxInstallCommandLen = 64 * 1024
	maxBuildLog          = 1 << 20
)

// aptPrefix marks a dependency installed with apt-get ("apt:curl").
const aptPrefix = "apt:"

// dependencyPattern is what a dependency may look like: a package name
// with an optional version or extras (numpy==1.26, "@types/node@20",
// requests[socks]); never an option (it must not start with '-').
var dependencyPattern = regexp.MustCompile(`^[A-Za-z0-9@_.][A-Za-z0-9@_.+/=<>!~^*:,\[\]-]*$`)

// Create validates req, records a custom template of tenant in status
// "building" and starts its build; it returns at once. The build pulls
// the image (or takes the built-in base of the language and version),
// runs the dependencies and installCommand in a build sandbox, and makes
// the sandbox's writes a layer on top. The template then becomes "ready",
// or "failed" with Error saying why (and no layers left).
//
// Errors: errdefs.ErrInvalidArgument naming the bad field,
// errdefs.ErrConflict when the tenant has a template of that name,
// errdefs.ErrUnavailable when the catalog has no store or is closed.
func (c *Catalog) Create(ctx context.Context, tenant string, req BuildRequest) (Template, error) {
	if c.cfg.Store == nil {
		return Template{}, fmt.Errorf("custom templates need a store: %w", errdefs.ErrUnavailable)
	}
	base, ref, err := c.validate(req)
	if err != nil {
		return Template{}, err
	}
	id, err := newTemplateID()
	if err != nil {
		return Template{}, err
	}
	now := time.Now().UTC()
	t := Template{
		ID: id, Name: req.Name, Language: req.Language, Version: req.Version,
		Dependencies: slices.Clone(req.Dependencies), DefaultEnv: copyMap(req.DefaultEnv),
		DefaultCwd: "/workspace", Status: StatusBuilding, CreatedAt: now, UpdatedAt: now,
		DockerImage: req.DockerImage, InstallCommand: req.InstallCommand, Tenant: tenant,
	}
	if t.Dependencies == nil {
		t.Dependencies = []string{}
	}
	if base != nil {
		t.Description = "built on " + base.ID
	} else {
		t.Description = "built on image " + ref.Name()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return Template{}, fmt.Errorf("the server is shutting down: %w", errdefs.ErrUnavailable)
	}
	for _, e := range c.custom {
		if e.t.Tenant == tenant && e.t.Name == req.Name && !e.deleting {
			return Template{}, fmt.Errorf("name: you already have a template named %q (%s): %w", req.Name, e.t.ID, errdefs.ErrConflict)
		}
	}
	if err := c.cfg.Store.CreateTemplate(ctx, t); err != nil {
		return Template{}, err
	}
	bctx, cancel := context.WithTimeout(c.ctx, c.cfg.BuildTimeout)
	e := &entry{t: t, done: make(chan struct{}), cancel: cancel}
	c.custom[id] = e
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer cancel()
		c.runBuild(bctx, e, base, ref)
	}()
	return e.snapshot(), nil
}

// validate checks a build request and returns its base: a built-in, or an
// image reference.
func (c *Catalog) validate(req BuildRequest) (*Template, name.Reference, error) {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
	}
	switch {
	case req.Name == "":
		return nil, nil, invalid("name is required")
	case len(req.Name) > MaxNameLen:
		return nil, nil, invalid("name is %d bytes long; at most %d are allowed", len(req.Name), MaxNameLen)
	case !utf8.ValidString(req.Name) || strings.ContainsFunc(req.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return nil, nil, invalid("name must be valid UTF-8 without control characters")
	case req.Language != "python" && req.Language != "javascript":
		return nil, nil, invalid("language must be python or javascript, got %q", req.Language)
	case len(req.Version) > 64 || strings.ContainsFunc(req.Version, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return nil, nil, invalid("version %q: at most 64 characters without spaces", req.Version)
	case len(req.Dependencies) > MaxDependencies:
		return nil, nil, invalid("dependencies has %d entries; at most %d are allowed", len(req.Dependencies), MaxDependencies)
	case len(req.InstallCommand) > MaxInstallCommandLen:
		return nil, nil, invalid("installCommand is %d bytes; at most %d are allowed", len(req.InstallCommand), MaxInstallCommandLen)
	case strings.IndexByte(req.InstallCommand, 0) >= 0:
		return nil, nil, invalid("installCommand must not contain NUL")
	}
	for i, d := range req.Dependencies {
		pkg := strings.TrimPrefix(d, aptPrefix)
		if len(d) > MaxDependencyLen || !dependencyPattern.MatchString(pkg) {
			return nil, nil, invalid("dependencies[%d] %q: not a package name (letters, digits and @_.+/=<>!~^*:,[]-, not starting with '-')", i, d)
		}
	}
	if req.DockerImage != "" {
		ref, err := parseImageRef(req.DockerImage, c.cfg.RegistryMirror)
		if err != nil {
			return nil, nil, err
		}
		return nil, ref, nil
	}
	base, err := c.baseFor(req.Language, req.Version)
	if err != nil {
		return nil, nil, err
	}
	return &base, nil, nil
}

// baseFor picks the built-in a template without dockerImage builds on.
func (c *Catalog) baseFor(language, version string) (Template, error) {
	var candidates []string
	if language == "python" {
		candidates = []string{"python-3-11"}
	} else {
		for _, m := range slices.Backward(nodeMajors) {
			candidates = append(candidates, fmt.Sprintf("nodejs-%d", m))
		}
	}
	var offered []string
	for _, id := range candidates {
		t, err := c.Get(id)
		if err != nil || t.Status == StatusUnavailable {
			continue
		}
		v := strings.TrimPrefix(t.Version, "v")
		if language == "javascript" {
			v = fmt.Sprint(majorOf(id[len("nodejs-"):]))
		} else {
			v = strings.TrimSuffix(v, "."+lastPart(v))
		}
		offered = append(offered, v)
		want := strings.TrimSuffix(strings.TrimPrefix(version, "v"), ".x")
		if want == "" || want == v || strings.HasPrefix(want, v+".") || strings.HasPrefix(v, want+".") {
			return t, nil
		}
	}
	if len(offered) == 0 {
		return Template{}, fmt.Errorf("language %s: no built-in base is available on this server; give a dockerImage: %w", language, errdefs.ErrInvalidArgument)
	}
	return Template{}, fmt.Errorf("version %q: no built-in %s base of that version (this server has %s); give one of them or a dockerImage: %w",
		version, language, strings.Join(offered, ", "), errdefs.ErrInvalidArgument)
}

func lastPart(v string) string { return v[strings.LastIndexByte(v, '.')+1:] }

// runBuild builds e's template and records the outcome.
func (c *Catalog) runBuild(ctx context.Context, e *entry, base *Template, ref name.Reference) {
	start := time.Now()
	log := newBuildLog()
	c.mu.Lock()
	e.log = log
	c.mu.Unlock()
	b := &builder{c: c, id: e.t.ID, t: e.snapshot(), log: log}
	defer func() { c.unpin(b.pinned) }()
	c.log.Info("template build started", "template", e.t.ID, "tenant", e.t.Tenant)
	res, err := b.run(ctx, base, ref)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("the build took longer than %s and was stopped", c.cfg.BuildTimeout)
	} else if err != nil && c.ctx.Err() != nil {
		err = errors.New("the server stopped during the build; create the template again")
	} else if err != nil && ctx.Err() != nil {
		err = errors.New("the template was deleted during the build")
	}
	c.mu.Lock()
	t := e.t
	t.UpdatedAt = time.Now().UTC()
	if err != nil {
		log.add("build failed: " + err.Error())
		t.Status, t.Error, t.Layers, t.Overlays = StatusFailed, err.Error(), nil, nil
	} else {
		log.add(fmt.Sprintf("build done in %s", time.Since(start).Round(time.Millisecond)))
		t.Status, t.Layers, t.Overlays = StatusReady, res.layers, c.overlays(res.layers)
		t.DefaultEnv, t.Version = res.env, res.version
	}
	t.BuildLog = log.String()
	e.t = t
	c.mu.Unlock()
	defer log.end()

	if uerr := c.cfg.Store.UpdateTemplate(context.WithoutCancel(ctx), t); uerr != nil && !errors.Is(uerr, errdefs.ErrNotFound) {
		c.log.Error("record template build", "template", t.ID, "err", uerr)
	}
	if err != nil {
		// Layers made for this build only go; shared ones stay.
		c.unpin(b.pinned)
		b.pinned = nil
		c.collect(b.created)
		c.log.Warn("template build failed", "template", t.ID, "err", err, "duration", time.Since(start).Round(time.Millisecond))
	} else {
		c.log.Info("template build done", "template", t.ID, "version", t.Version, "duration", time.Since(start).Round(time.Millisecond))
	}
	c.mu.Lock()
	close(e.done)
	e.done, e.cancel = nil, nil
	c.mu.Unlock()
}

// Delete removes a tenant's custom template and the layers no other
// template uses. users counts the sandboxes (not terminated) made from
// it; while there are any, or while a sandbox is being created from it,
// delete is refused. A build in flight is stopped.
//
// Errors: errdefs.ErrNotFound for an unknown id (or another tenant's),
// errdefs.ErrPermissionDenied for a built-in, errdefs.ErrConflict while
// the template is in use.
func (c *Catalog) Delete(ctx context.Context, tenant, id string, users func(ctx context.Context) (int, error)) error {
	c.mu.Lock()
	e := c.find(id)
	switch {
	case e == nil || !e.visibleTo(tenant):
		c.mu.Unlock()
		return fmt.Errorf("template %q: %w", id, errdefs.ErrNotFound)
	case e.t.BuiltIn:
		c.mu.Unlock()
		return fmt.Errorf("template %q is built in and cannot be deleted: %w", id, errdefs.ErrPermissionDenied)
	case c.inflight[id] > 0:
		c.mu.Unlock()
		return fmt.Errorf("template %q: a sandbox is being created from it: %w", id, errdefs.ErrConflict)
	}
	e.deleting = true
	c.mu.Unlock()
	n, err := users(ctx)
	if err == nil && n > 0 {
		err = fmt.Errorf("template %q is used by %d sandbox(es); delete them first: %w", id, n, errdefs.ErrConflict)
	}
	if err == nil {
		err = c.cfg.Store.DeleteTemplate(ctx, id)
	}
	c.mu.Lock()
	if err != nil {
		e.deleting = false
		c.mu.Unlock()
		return err
	}
	cancel, done := e.cancel, e.done
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	c.mu.Lock()
	delete(c.custom, id)
	var layers []string
	for _, l := range e.t.Layers {
		layers = append(layers, l.Source)
	}
	c.mu.Unlock()
	c.collect(layers)
	c.log.Info("template deleted", "template", id, "tenant", tenant)
	return nil
}

// pruneRootUpper removes from a root overlay's upper dir what the runtime
// created there to mount on (empty directories such as /proc, /workspace,
// the other overlays' targets, the agent's mount point), so that only the
// build's own writes remain.
func pruneRootUpper(upper string, targets []string) error {
	paths := []string{"proc", "dev", "sys", "workspace", "root", "tmp", "var/tmp", "run", "var"}
	for _, t := range targets {
		if t != "/" {
			rel := strings.TrimPrefix(t, "/")
			for p := rel; p != "." && p != ""; p = path.Dir(p) {
				paths = append(paths, p)
			}
		}
	}
	// Deepest first, so that a parent left empty goes too.
	slices.SortFunc(paths, func(a, b string) int {
		return cmp.Or(strings.Count(b, "/")-strings.Count(a, "/"), strings.Compare(a, b))
	})
	if err := os.RemoveAll(filepath.Join(upper, ".sdbx")); err != nil {
		return err
	}
	for _, p := range slices.Compact(paths) {
		full := filepath.Join(upper, p)
		st, err := os.Lstat(full)
		if err != nil || !st.IsDir() {
			continue
		}
		if empty, err := emptyDir(full); err == nil && empty {
			if xa, _ := xattrs(full); len(xa) > 0 {
				continue // an opaque directory is a write of the build
			}
			if err := os.Remove(full); err != nil {
				return err
			}
		}
	}
	return nil
}
