package sandbox

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// capRetryAfter is the retry hint of a refusal by a per-tenant cap: a slot
// frees only when one of the tenant's sandboxes is deleted or one of its
// runs ends, which the server cannot foresee.
const capRetryAfter = time.Second

// Caps are the per-tenant (per API key) caps. Zero means no cap.
type Caps struct {
	// Sandboxes caps the tenant's sandboxes that are not terminated
	// (creating, ready, running, stopped or failed).
	Sandboxes int
	// Executions caps the code runs, commands and batch slots that the
	// tenant has in flight at once.
	Executions int
	// Exempt lists tenants no cap applies to (the admin key's tenant).
	Exempt []string
}

func (c Caps) exempt(tenant string) bool {
	return slices.Contains(c.Exempt, tenant)
}

// capped is the error of a refusal by a cap.
func capped(format string, args ...any) error {
	return &errdefs.RateLimitError{Msg: fmt.Sprintf(format, args...), RetryAfter: capRetryAfter}
}

// admitSandbox runs insert, which records a new sandbox of tenant, unless
// the tenant is at its sandbox cap. Admissions are serialized so two
// creates never both take the last slot; the count comes from the store,
// so it covers sandboxes adopted after a restart and claimed from the
// warm pool, and a failed create (whose record is removed) frees its slot.
func (s *Service) admitSandbox(ctx context.Context, tenant string, insert func() error) error {
	limit := s.cfg.Caps.Sandboxes
	if limit <= 0 || s.cfg.Caps.exempt(tenant) {
		return insert()
	}
	s.admitMu.Lock()
	defer s.admitMu.Unlock()
	list, err := s.store.ListSandboxes(ctx, tenant)
	if err != nil {
		return err
	}
	if len(list) >= limit {
		return capped("this API key has %d sandboxes, its cap (max-sandboxes-per-key %d); delete one and retry", len(list), limit)
	}
	return insert()
}

// acquireRuns takes up to want (at least 1) of the tenant's execution
// slots and returns how many it got and the function that gives them
// back (call it exactly once). With no slot free it returns a
// rate-limited error.
func (s *Service) acquireRuns(tenant string, want int) (int, func(), error) {
	limit := s.cfg.Caps.Executions
	if limit <= 0 || s.cfg.Caps.exempt(tenant) {
		return want, func() {}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	free := limit - s.runs[tenant]
	if free <= 0 {
		return 0, nil, capped("this API key has %d executions running, its cap (max-executions-per-key %d); retry when one ends", s.runs[tenant], limit)
	}
	n := min(want, free)
	s.runs[tenant] += n
	return n, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.runs[tenant] -= n; s.runs[tenant] <= 0 {
			delete(s.runs, tenant)
		}
	}, nil
}

// Runs returns how many execution slots tenant holds (for tests and
// status pages).
func (s *Service) Runs(tenant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[tenant]
}
