// Package sandbox is the domain core of sdbx: sandbox lifecycle, commands,
// expiry. It knows nothing of HTTP, SQL or syscalls: it drives a
// runtime.Driver, persists through a Store and resolves templates through a
// template catalog.
package sandbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/template"
)

// TemplatePage is one page of the template catalog.
type TemplatePage struct {
	Templates []template.Template `json:"templates"`
	Total     int                 `json:"total"`
	Page      int                 `json:"page"`
	PageSize  int                 `json:"pageSize"`
}

// Templates is the catalog the service resolves template ids with.
type Templates interface {
	List() []template.Template
	// Get returns errdefs.ErrNotFound for an unknown id.
	Get(id string) (template.Template, error)
}

// Config holds the service's policy knobs.
type Config struct {
	// DefaultExpiry applies when a create request gives none; 0 = never.
	DefaultExpiry time.Duration
	// ExpiryInterval is how often expired sandboxes are looked for.
	ExpiryInterval time.Duration
	// Resources are the limits of a sandbox created without its own.
	Resources runtime.Resources
	// MaxResources bound what a create request may ask for; zero fields
	// mean the default is also the maximum.
	MaxResources runtime.Resources
	// Pool is the number of pre-created sandboxes kept ready per template
	// id (the warm pool); a template that is not listed has none.
	Pool map[string]int
	// Network is the egress policy of sandboxes whose create request has
	// none, and of pooled sandboxes. Empty Egress: none.
	Network runtime.Network
	// Caps are the per-tenant caps on sandboxes and executions.
	Caps Caps
	// PythonBytecode is the Python context driver compiled by the host's
	// interpreter, sent with every Python context start (agents whose
	// interpreter has another cache tag compile the source); nil: agents
	// always compile it.
	PythonBytecode *agentproto.Bytecode
	// FileOpTimeout bounds a file operation without content (list, stat,
	// mkdir, move, delete, exists) in case the agent does not answer; 0
	// means 5 minutes.
	FileOpTimeout time.Duration
	// AgentGrace is how long past a command's or code run's own timeout
	// the service waits for the agent's answer (the agent enforces the
	// timeout) before it gives up with a timeout error; 0 means 5 s.
	AgentGrace time.Duration
}

// Service is the sandbox domain service. All methods take the caller's
// tenant; a sandbox of another tenant is reported as not found.
type Service struct {
	cfg       Config
	store     Store
	driver    runtime.Driver
	templates Templates
	log       *slog.Logger

	pool *pool

	// base is the parent of every operation's live context; Shutdown
	// cancels it.
	base     context.Context
	shutdown context.CancelFunc
	stopping atomic.Bool

	mu   sync.Mutex
	live map[string]*liveSandbox // by id, sandboxes with work in flight
	// defaultLocks serialize creating a sandbox's default context per
	// language.
	defaultLocks map[contextKey]*sync.Mutex
	// defaults caches each sandbox's default context per language, so a
	// run needs no store lookup to find it.
	defaults map[contextKey]CodeContext
	// ready caches the records of ready sandboxes (see remember).
	ready map[string]Sandbox
	// agents holds the pooled agent clients of ready sandboxes (see
	// agent); dropping a sandbox from ready closes its client.
	agents map[string]*agentclient.Client
	// runs counts the execution slots each tenant holds (see acquireRuns).
	runs map[string]int
	// diskErr says why Resources.DiskMB is not enforced; nil when it is.
	diskErr error
	// admitMu serializes the sandbox cap's count-then-insert.
	admitMu sync.Mutex
}

// liveSandbox tracks in-memory state of a sandbox: commands in flight and a
// context cancelled when the sandbox is deleted.
type liveSandbox struct {
	active  int
	watches int // directory watches open (not counted as running)
	ctx     context.Context
	cancel  context.CancelFunc
	// bound holds the cancels of the contexts bind tied to ctx that are
	// still in use (guarded by Service.mu).
	bound map[context.Context]context.CancelFunc
}

// New returns a Service. Call Recover once, then Run for expiry.
func New(cfg Config, store Store, driver runtime.Driver, templates Templates, log *slog.Logger) *Service {
	if cfg.ExpiryInterval <= 0 {
		cfg.ExpiryInterval = time.Second
	}
	if cfg.FileOpTimeout <= 0 {
		cfg.FileOpTimeout = defaultFileOpTimeout
	}
	if cfg.AgentGrace <= 0 {
		cfg.AgentGrace = defaultAgentGrace
	}
	// Without quotas no disk limit is promised: diskMb is refused and
	// not reported.
	diskErr := errors.New("the runtime does not enforce disk quotas")
	if dq, ok := driver.(runtime.DiskQuotas); ok {
		diskErr = dq.DiskQuota()
	}
	if diskErr != nil {
		cfg.Resources.DiskMB, cfg.MaxResources.DiskMB = 0, 0
	}
	s := &Service{diskErr: diskErr,
		cfg: cfg, store: store, driver: driver, templates: templates, log: log,
		live: map[string]*liveSandbox{}, pool: newPool(cfg.Pool),
		defaults: map[contextKey]CodeContext{}, ready: map[string]Sandbox{},
		agents: map[string]*agentclient.Client{},
		runs:   map[string]int{},
	}
	s.base, s.shutdown = context.WithCancel(context.Background())
	return s
}

// Shutdown stops every command and code run in flight; they end with an
// unavailable error saying the server is shutting down. Sandboxes keep
// running (a restarted server adopts them).
func (s *Service) Shutdown() {
	s.stopping.Store(true)
	s.shutdown()
	s.mu.Lock()
	agents := s.agents
	s.agents = map[string]*agentclient.Client{}
	s.mu.Unlock()
	for _, c := range agents {
		c.Close()
	}
}

// Create validates opts, records the sandbox and starts it. It returns the
// sandbox in status ready, or an error and no sandbox.
func (s *Service) Create(ctx context.Context, tenant string, opts CreateOptions) (Sandbox, error) {
	if err := validateCreate(opts); err != nil {
		return Sandbox{}, err
	}
	tmpl, release, err := s.acquireTemplate(ctx, tenant, opts.TemplateID)
	if err != nil {
		return Sandbox{}, err
	}
	defer release()
	limits, err := s.limits(opts.Resources)
	if err != nil {
		return Sandbox{}, err
	}
	network, err := s.network(opts.Network)
	if err != nil {
		return Sandbox{}, err
	}
	opts.Network = network
	// Pooled sandboxes have the default limits.
	var sb Sandbox
	pooled := false
	err = s.admitSandbox(ctx, tenant, func() error {
		if limits == s.cfg.Resources {
			if id := s.claimPooled(ctx, tmpl.ID, network); id != "" {
				sb = newRecord(id, tenant, tmpl.ID, opts, s.cfg.DefaultExpiry)
				sb.Status, sb.Resources = StatusReady, toResources(limits)
				if err := s.store.CreateSandbox(ctx, sb); err != nil {
					s.deleteQuietly(context.WithoutCancel(ctx), id)
					return err
				}
				pooled = true
				return nil
			}
		}
		id, err := newID()
		if err != nil {
			return err
		}
		sb = newRecord(id, tenant, tmpl.ID, opts, s.cfg.DefaultExpiry)
		sb.Resources = toResources(limits)
		return s.store.CreateSandbox(ctx, sb)
	})
	if err != nil {
		return Sandbox{}, err
	}
	if pooled {
		s.remember(sb)
		s.adoptWarmContext(context.WithoutCancel(ctx), sb)
		return sb, nil
	}
	id := sb.ID
	spec := runtime.Spec{ID: id, Overlays: tmpl.Overlays, Resources: limits, Network: network}
	if err := s.driver.Create(ctx, spec); err != nil {
		s.log.Error("create sandbox", "sandbox_id", id, "err", err)
		s.forget(context.WithoutCancel(ctx), id)
		if errdefs.Code(err) == "internal" {
			return Sandbox{}, fmt.Errorf("start sandbox: %w", errdefs.ErrUnavailable)
		}
		return Sandbox{}, fmt.Errorf("start sandbox: %w", err)
	}
	sb.Status, sb.UpdatedAt = StatusReady, time.Now().UTC()
	if err := s.store.UpdateSandbox(context.WithoutCancel(ctx), sb); err != nil {
		s.forget(context.WithoutCancel(ctx), id)
		return Sandbox{}, err
	}
	s.remember(sb)
	return sb, nil
}

// remember caches the record of a ready sandbox; dropReady forgets it.
// Only this process changes sandbox records, so the cache is written by
// the places that make a sandbox ready (create, adoption at Recover) and
// emptied by those that end it; Get falls back to the store otherwise.
func (s *Service) remember(sb Sandbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready[sb.ID] = sb
}

func (s *Service) dropReady(id string) {
	s.mu.Lock()
	c := s.unready(id)
	s.mu.Unlock()
	closeAgent(c)
}

// unready forgets the record of a sandbox that is no longer ready and
// returns its pooled agent client (nil when none), which the caller
// closes (closeAgent) after unlocking s.mu. s.mu must be held.
func (s *Service) unready(id string) *agentclient.Client {
	delete(s.ready, id)
	if l := s.live[id]; l != nil {
		s.dropLive(id, l)
	}
	c := s.agents[id]
	delete(s.agents, id)
	return c
}

func closeAgent(c *agentclient.Client) {
	if c != nil {
		c.Close()
	}
}

// agentIdleConns bounds the connections kept open to one sandbox's agent
// between requests (the benchmarks run 4 clients per sandbox).
const agentIdleConns = 4

// agent returns the client of a sandbox's agent. A ready sandbox's client
// is shared and keeps connections open between requests; it is closed
// when the sandbox stops being ready (dropReady, terminate, Shutdown).
// Other sandboxes get a client that opens a connection per request, so
// nothing is kept for a sandbox that is going away.
func (s *Service) agent(id string) *agentclient.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.agents[id]; c != nil {
		return c
	}
	if _, ok := s.ready[id]; !ok || s.stopping.Load() {
		return agentclient.New(s.dialer(id))
	}
	c := agentclient.NewPooled(s.dialer(id), agentIdleConns)
	s.agents[id] = c
	return c
}

// limits returns the limits of a new sandbox: the request's, checked
// against the server's maxima, over the server's defaults.
func (s *Service) limits(r Resources) (runtime.Resources, error) {
	def, ceil := s.cfg.Resources, s.cfg.MaxResources
	out := def
	check := func(field string, v, min, limit float64, set func()) error {
		if v == 0 {
			return nil
		}
		if limit == 0 {
			limit = min
		}
		if v < min || v > limit {
			return invalid("resources.%s must be between %g and %g, got %g", field, min, limit, v)
		}
		set()
		return nil
	}
	if err := check("cpu", r.CPU, 0.01, math.Max(ceil.CPU, def.CPU), func() { out.CPU = r.CPU }); err != nil {
		return out, err
	}
	if err := check("memoryMb", float64(r.MemoryMB), 32, float64(max(ceil.MemoryMB, def.MemoryMB)), func() { out.MemoryMB = r.MemoryMB }); err != nil {
		return out, err
	}
	if err := check("pids", float64(r.PIDs), 16, float64(max(ceil.PIDs, def.PIDs)), func() { out.PIDs = r.PIDs }); err != nil {
		return out, err
	}
	if r.DiskMB != 0 && s.diskErr != nil {
		return out, invalid("resources.diskMb: this server does not enforce disk quotas (%s); leave it out", errdefs.Message(s.diskErr))
	}
	if err := check("diskMb", float64(r.DiskMB), 16, float64(max(ceil.DiskMB, def.DiskMB)), func() { out.DiskMB = r.DiskMB }); err != nil {
		return out, err
	}
	return out, nil
}

// network returns the egress policy of a new sandbox: the request's,
// checked and normalized, or the server's default.
func (s *Service) network(n runtime.Network) (runtime.Network, error) {
	n, err := runtime.NormalizeNetwork("network", n)
	if err != nil {
		return n, err
	}
	if n.Egress == "" {
		n = s.cfg.Network
	}
	if n.Egress == "" {
		n.Egress = runtime.EgressNone
	}
	return n, nil
}

// sameNetwork reports whether a and b are the same policy.
func sameNetwork(a, b runtime.Network) bool {
	return a.Egress == b.Egress && slices.Equal(a.Allow, b.Allow)
}

func toResources(r runtime.Resources) Resources {
	return Resources{CPU: r.CPU, MemoryMB: r.MemoryMB, PIDs: r.PIDs, DiskMB: r.DiskMB}
}

// newRecord builds the record of a new sandbox, status creating.
func newRecord(id, tenant, templateID string, opts CreateOptions, defaultExpiry time.Duration) Sandbox {
	now := time.Now().UTC()
	sb := Sandbox{
		ID: id, Name: opts.Name, TemplateID: templateID, Status: StatusCreating,
		EnvVars: copyEnv(opts.Env), CreatedAt: now, UpdatedAt: now, Tenant: tenant,
		Network: opts.Network,
	}
	if sb.Name == "" {
		sb.Name = id
	}
	expiry := opts.Expiry
	if expiry == 0 {
		expiry = defaultExpiry
	}
	if expiry > 0 {
		t := now.Add(expiry)
		sb.ExpiresAt = &t
	}
	return sb
}

// forget removes every trace of a sandbox whose creation failed.
func (s *Service) forget(ctx context.Context, id string) {
	s.dropReady(id)
	if err := s.driver.Delete(ctx, id); err != nil {
		s.log.Error("clean up failed sandbox", "sandbox_id", id, "err", err)
	}
	if err := s.store.DeleteSandbox(ctx, id); err != nil {
		s.log.Error("forget failed sandbox", "sandbox_id", id, "err", err)
	}
}

// Get returns one sandbox. A deleted or expired sandbox is reported with
// status terminated for a while (then not found).
func (s *Service) Get(ctx context.Context, tenant, id string) (Sandbox, error) {
	s.mu.Lock()
	sb, ok := s.ready[id]
	s.mu.Unlock()
	if !ok {
		var err error
		if sb, err = s.store.GetSandbox(ctx, id); err != nil {
			return Sandbox{}, err
		}
	}
	if sb.Tenant != tenant {
		return Sandbox{}, fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
	}
	return s.withLiveStatus(sb), nil
}

// List returns the tenant's sandboxes that are not terminated, newest first.
func (s *Service) List(ctx context.Context, tenant string) ([]Sandbox, error) {
	list, err := s.store.ListSandboxes(ctx, tenant)
	if err != nil {
		return nil, err
	}
	for i := range list {
		list[i] = s.withLiveStatus(list[i])
	}
	return list, nil
}

// running returns the caller's sandbox when it is running (ready or busy);
// a stopped, failed or terminated one is a conflict.
func (s *Service) running(ctx context.Context, tenant, id string) (Sandbox, error) {
	sb, err := s.Get(ctx, tenant, id)
	if err != nil {
		return Sandbox{}, err
	}
	if sb.Status != StatusReady && sb.Status != StatusRunning {
		return Sandbox{}, fmt.Errorf("sandbox %s is %s: %w", id, sb.Status, errdefs.ErrConflict)
	}
	return sb, nil
}

// withLiveStatus reports "running" for a ready sandbox with a command in
// flight.
func (s *Service) withLiveStatus(sb Sandbox) Sandbox {
	if sb.Status != StatusReady {
		return sb
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.live[sb.ID]; l != nil && l.active > 0 {
		sb.Status = StatusRunning
	}
	return sb
}

// Delete terminates a sandbox and frees everything it used. Commands in
// flight end with a conflict error.
func (s *Service) Delete(ctx context.Context, tenant, id string) error {
	sb, err := s.Get(ctx, tenant, id)
	if err != nil {
		return err
	}
	if sb.Status == StatusTerminated {
		return fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
	}
	return s.terminate(ctx, sb, "")
}

// terminate stops and removes a sandbox and marks its record terminated.
func (s *Service) terminate(ctx context.Context, sb Sandbox, reason string) error {
	ctx = context.WithoutCancel(ctx)
	s.mu.Lock()
	agent := s.unready(sb.ID)
	if l := s.live[sb.ID]; l != nil {
		l.cancel()
	}
	for key := range s.defaultLocks {
		if key.sandboxID == sb.ID {
			delete(s.defaultLocks, key)
		}
	}
	for key := range s.defaults {
		if key.sandboxID == sb.ID {
			delete(s.defaults, key)
		}
	}
	s.mu.Unlock()
	closeAgent(agent)
	if err := s.driver.Delete(ctx, sb.ID); err != nil {
		s.log.Error("delete sandbox", "sandbox_id", sb.ID, "err", err)
		return fmt.Errorf("delete sandbox %s: %w", sb.ID, errdefs.ErrUnavailable)
	}
	sb.Status, sb.Error, sb.UpdatedAt = StatusTerminated, reason, time.Now().UTC()
	if err := s.store.UpdateSandbox(ctx, sb); err != nil {
		return err
	}
	s.log.Info("sandbox terminated", "sandbox_id", sb.ID, "reason", reason)
	return nil
}

// Run keeps the warm pool filled and terminates expired sandboxes until ctx
// is cancelled; then it deletes the pooled sandboxes and returns.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.refill(ctx)
	}()
	defer wg.Wait()
	t := time.NewTicker(s.cfg.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.expire(ctx)
		}
	}
}

func (s *Service) expire(ctx context.Context) {
	now := time.Now().UTC()
	expired, err := s.store.ListExpired(ctx, now)
	if err != nil {
		s.log.Error("list expired sandboxes", "err", err)
		return
	}
	for _, sb := range expired {
		if err := s.terminate(ctx, sb, "expired"); err != nil {
			s.log.Error("expire sandbox", "sandbox_id", sb.ID, "err", err)
		}
	}
	if err := s.store.PruneTerminated(ctx, now.Add(-24*time.Hour)); err != nil {
		s.log.Error("prune sandboxes", "err", err)
	}
}

// Recover reconciles the store with what the driver has after a restart:
// running sandboxes are adopted as they are, sandboxes whose processes died
// are marked stopped with their files kept, half-created ones are removed,
// and driver state nobody knows about is swept.
//
// Call it once at start, before serving requests.
func (s *Service) Recover(ctx context.Context) error {
	known := map[string]bool{}
	list, err := s.store.ListSandboxes(ctx, "")
	if err != nil {
		return err
	}
	for _, sb := range list {
		known[sb.ID] = true
		if sb.Status == StatusCreating {
			s.log.Warn("removing sandbox left half-created", "sandbox_id", sb.ID)
			s.forget(ctx, sb.ID)
			continue
		}
		if sb.Status != StatusReady && sb.Status != StatusRunning {
			continue
		}
		state, err := s.driver.Status(ctx, sb.ID)
		if err == nil && state == runtime.StateRunning {
			// The sandbox's link and rules outlived the server; the DNS
			// proxy learns it again and the rules are rewritten from the
			// record. A sandbox whose policy can't be restored is stopped,
			// never left with a wider one.
			if nerr := s.restoreNetwork(ctx, sb); nerr != nil {
				s.log.Error("restore sandbox network", "sandbox_id", sb.ID, "err", nerr)
			} else if _, err := s.agent(sb.ID).Ping(ctx); err == nil {
				sb.Status = StatusReady
				s.remember(sb)
				s.log.Info("adopted running sandbox", "sandbox_id", sb.ID)
				continue
			}
		}
		if err == nil {
			err = s.driver.Stop(ctx, sb.ID)
		}
		s.dropReady(sb.ID)
		sb.Status, sb.Error, sb.UpdatedAt = StatusStopped, "the server restarted and the sandbox's processes were gone", time.Now().UTC()
		if errors.Is(err, errdefs.ErrNotFound) {
			sb.Status, sb.Error = StatusError, "the sandbox's files were gone after a server restart"
		}
		if err := s.store.UpdateSandbox(ctx, sb); err != nil {
			return err
		}
		s.log.Warn("sandbox not running after restart", "sandbox_id", sb.ID, "status", sb.Status)
	}
	ids, err := s.driver.List(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !known[id] {
			s.log.Warn("sweeping unknown sandbox state", "sandbox_id", id)
			if err := s.driver.Delete(ctx, id); err != nil {
				s.log.Error("sweep sandbox", "sandbox_id", id, "err", err)
			}
		}
	}
	return nil
}

// restoreNetwork applies sb's recorded egress policy to its running
// sandbox.
func (s *Service) restoreNetwork(ctx context.Context, sb Sandbox) error {
	setter, ok := s.driver.(runtime.NetworkSetter)
	if !ok {
		return nil
	}
	n := sb.Network
	if n.Egress == "" {
		n.Egress = runtime.EgressNone
	}
	return setter.SetNetwork(ctx, sb.ID, n)
}

func (s *Service) dialer(id string) agentclient.Dialer {
	return func(ctx context.Context) (net.Conn, error) { return s.driver.Dial(ctx, id) }
}

// newID returns "sb-" and 12 random characters of [a-z0-9].
func newID() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate sandbox id: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "sb-" + string(b[:]), nil
}

func copyEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = v
	}
	return out
}
