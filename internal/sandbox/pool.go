package sandbox

import (
	"context"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/template"
)

// pool keeps pre-created sandboxes per template so that Create can claim
// one instead of starting a sandbox while the client waits. Pooled
// sandboxes are running but unrecorded: nobody owns them, no list shows
// them, and after a crash Recover sweeps them as unknown state. A claimed
// sandbox leaves the pool for good, so a used sandbox is never served again.
type pool struct {
	want map[string]int // template id → size
	kick chan struct{}

	mu    sync.Mutex
	ready map[string][]string // template id → sandbox ids, oldest first
	// warm holds, per pooled sandbox, the default context of its template's
	// language already started in its agent (so the first run doesn't wait
	// for an interpreter).
	warm  map[string]CodeContext
	stats PoolStats
}

// PoolStats counts pool activity since the server started.
type PoolStats struct {
	// Ready is the number of pooled sandboxes per template right now.
	Ready map[string]int `json:"ready"`
	// Size is the configured size per template.
	Size map[string]int `json:"size"`
	// Hits counts creates served from the pool, Misses creates that found
	// it empty, Failures refills that failed.
	Hits     int64 `json:"hits"`
	Misses   int64 `json:"misses"`
	Failures int64 `json:"failures"`
}

func newPool(want map[string]int) *pool {
	return &pool{want: want, kick: make(chan struct{}, 1), ready: map[string][]string{}, warm: map[string]CodeContext{}}
}

// take claims a pooled sandbox of the template, if one is ready.
func (p *pool) take(templateID string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.want[templateID] == 0 {
		return "", false
	}
	ids := p.ready[templateID]
	if len(ids) == 0 {
		p.stats.Misses++
		p.wake()
		return "", false
	}
	id := ids[0]
	p.ready[templateID] = ids[1:]
	p.stats.Hits++
	p.wake()
	return id, true
}

func (p *pool) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// deficit returns a template that needs another sandbox, if any.
func (p *pool) deficit() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, n := range p.want {
		if len(p.ready[id]) < n {
			return id, true
		}
	}
	return "", false
}

func (p *pool) put(templateID, id string, warm *CodeContext) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ready[templateID] = append(p.ready[templateID], id)
	if warm != nil {
		p.warm[id] = *warm
	}
}

// warmContext hands over the pre-started context of a claimed sandbox.
func (p *pool) warmContext(id string) (CodeContext, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cc, ok := p.warm[id]
	delete(p.warm, id)
	return cc, ok
}

func (p *pool) drain() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var all []string
	for t, ids := range p.ready {
		all = append(all, ids...)
		delete(p.ready, t)
	}
	clear(p.warm)
	return all
}

func (p *pool) snapshot() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.stats
	st.Ready, st.Size = map[string]int{}, map[string]int{}
	for id, n := range p.want {
		st.Size[id] = n
		st.Ready[id] = len(p.ready[id])
	}
	return st
}

// PoolStats reports the warm pool.
func (s *Service) PoolStats() PoolStats { return s.pool.snapshot() }

// claimPooled returns a ready pooled sandbox of the template whose agent
// answers, with egress policy network, or "" when none is. Pooled
// sandboxes have the server's default policy; another one is applied at
// claim (a sandbox never keeps a wider policy than it asked for).
func (s *Service) claimPooled(ctx context.Context, templateID string, network runtime.Network) string {
	setter, canSet := s.driver.(runtime.NetworkSetter)
	if !canSet && !sameNetwork(network, s.poolNetwork()) {
		return ""
	}
	for {
		id, ok := s.pool.take(templateID)
		if !ok {
			return ""
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := s.agent(id).Ping(pctx)
		cancel()
		if err == nil && !sameNetwork(network, s.poolNetwork()) {
			err = setter.SetNetwork(ctx, id, network)
		}
		if err == nil {
			return id
		}
		s.log.Warn("pooled sandbox did not answer or take its network; discarding it", "sandbox_id", id, "err", err)
		s.deleteQuietly(context.WithoutCancel(ctx), id)
	}
}

// poolNetwork is the egress policy pooled sandboxes are created with.
func (s *Service) poolNetwork() runtime.Network {
	n, err := s.network(runtime.Network{})
	if err != nil {
		return runtime.Network{Egress: runtime.EgressNone}
	}
	return n
}

// refill keeps the pool at its configured sizes until ctx is cancelled,
// then deletes the pooled sandboxes.
func (s *Service) refill(ctx context.Context) {
	defer func() {
		for _, id := range s.pool.drain() {
			s.deleteQuietly(context.WithoutCancel(ctx), id)
		}
	}()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		for ctx.Err() == nil {
			templateID, ok := s.pool.deficit()
			if !ok {
				break
			}
			if err := s.fillOne(ctx, templateID); err != nil && ctx.Err() == nil {
				s.pool.mu.Lock()
				s.pool.stats.Failures++
				s.pool.mu.Unlock()
				s.log.Error("refill warm pool", "template", templateID, "err", err)
				break // try again on the next tick
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.pool.kick:
			// A claim woke us, and its first requests are being served
			// now: let them have the CPUs before a new sandbox and its
			// interpreter start (nobody waits for the refill).
			select {
			case <-ctx.Done():
				return
			case <-time.After(refillSettle):
			}
		case <-retry.C:
		}
	}
}

// refillSettle is how long the pool waits after a claim before it starts
// refilling.
const refillSettle = 30 * time.Millisecond

func (s *Service) fillOne(ctx context.Context, templateID string) error {
	tmpl, err := s.templates.Get(templateID)
	if err != nil {
		return err
	}
	id, err := newID()
	if err != nil {
		return err
	}
	if err := s.driver.Create(ctx, runtime.Spec{ID: id, Overlays: tmpl.Overlays, Resources: s.cfg.Resources, Network: s.poolNetwork()}); err != nil {
		return err
	}
	s.pool.put(templateID, id, s.prewarm(ctx, id, tmpl))
	return nil
}

// prewarm starts the default context of the template's language in a
// pooled sandbox; nil when the template has no code language or the start
// failed (the context is then created on first use, as usual).
func (s *Service) prewarm(ctx context.Context, id string, tmpl template.Template) *CodeContext {
	language, err := contextLanguage("", tmpl)
	if err != nil {
		return nil
	}
	ctxID, err := newContextID()
	if err != nil {
		return nil
	}
	cc := CodeContext{
		ID: ctxID, SandboxID: id, Language: language,
		Cwd: defaultDir(tmpl), EnvVars: map[string]string{}, Default: true,
	}
	if err := s.startAgentContext(ctx, s.agent(id), Sandbox{ID: id}, tmpl, cc); err != nil {
		s.log.Warn("prewarm context of pooled sandbox", "sandbox_id", id, "err", err)
		return nil
	}
	return &cc
}

// adoptWarmContext records the pre-started context of a claimed sandbox as
// its default context. The interpreter was started before the sandbox got
// its own environment, so it is only kept when the sandbox has none;
// otherwise it is stopped and the first run starts one with the right
// environment.
func (s *Service) adoptWarmContext(ctx context.Context, sb Sandbox) {
	cc, ok := s.pool.warmContext(sb.ID)
	if !ok {
		return
	}
	if len(sb.EnvVars) > 0 {
		if _, err := s.agent(sb.ID).DeleteContext(ctx, cc.ID); err != nil {
			s.log.Warn("stop prewarmed context", "sandbox_id", sb.ID, "context_id", cc.ID, "err", err)
		}
		return
	}
	cc.CreatedAt = time.Now().UTC()
	if err := s.store.CreateContext(ctx, cc); err != nil {
		s.log.Warn("record prewarmed context", "sandbox_id", sb.ID, "context_id", cc.ID, "err", err)
		return
	}
	s.mu.Lock()
	s.defaults[defaultKey(sb.ID, cc.Language)] = cc
	s.mu.Unlock()
}

func (s *Service) deleteQuietly(ctx context.Context, id string) {
	if err := s.driver.Delete(ctx, id); err != nil {
		s.log.Error("delete sandbox", "sandbox_id", id, "err", err)
	}
}
