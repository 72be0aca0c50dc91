package sandbox

import (
	"context"
	"fmt"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// RunCode runs code in a context of the sandbox, calling onEvent for each
// line and rich result as produced (from one goroutine, in order). A raised
// exception is part of the result, not an error. A run past its timeout
// returns an error wrapping errdefs.ErrTimeout whose message says whether
// the context's state survived.
func (s *Service) RunCode(ctx context.Context, tenant, sandboxID string, req RunCodeRequest, onEvent func(CodeEvent)) (ExecutionResult, error) {
	return ExecutionResult{}, fmt.Errorf("runCode is not implemented yet: %w", errdefs.ErrUnavailable)
}

// CreateContext starts a new code context in the sandbox.
func (s *Service) CreateContext(ctx context.Context, tenant, sandboxID string, opts ContextOptions) (CodeContext, error) {
	return CodeContext{}, fmt.Errorf("contexts are not implemented yet: %w", errdefs.ErrUnavailable)
}

// ListContexts returns the sandbox's contexts, oldest first.
func (s *Service) ListContexts(ctx context.Context, tenant, sandboxID string) ([]CodeContext, error) {
	return nil, fmt.Errorf("contexts are not implemented yet: %w", errdefs.ErrUnavailable)
}

// DeleteContext stops a context and everything it started.
func (s *Service) DeleteContext(ctx context.Context, tenant, contextID string) error {
	return fmt.Errorf("contexts are not implemented yet: %w", errdefs.ErrUnavailable)
}

// RunBatch runs jobs concurrently and returns their results in job order;
// onEvent gets every job's events tagged with its id.
func (s *Service) RunBatch(ctx context.Context, tenant, sandboxID string, req BatchRequest, onEvent func(jobID string, ev CodeEvent)) ([]BatchResult, error) {
	return nil, fmt.Errorf("batches are not implemented yet: %w", errdefs.ErrUnavailable)
}
