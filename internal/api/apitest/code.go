package apitest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// codeContext is a fake code context: the variables of the toy
// interpreter.
type codeContext struct {
	rec    sandbox.CodeContext
	tenant string

	mu    sync.Mutex // one run at a time
	vars  map[string]value
	count int
}

// RunCode implements api.Service with a toy interpreter. Each line is one
// statement:
//
//	import x / from x import y      ignored
//	name = expr                     assignment, kept in the context
//	print(expr, ...)                a stdout line (file=sys.stderr: stderr)
//	display(expr)                   a display event {"text": repr}
//	time.sleep(seconds)             waits (honours the timeout)
//	raise Name("message")           an exception
//	expr                            evaluated; the last line's value is the main result
//
// where expr is an integer, a quoted string, a name, os.environ["K"], or
// two of those joined by + - * /. 1/0 raises ZeroDivisionError, an unknown
// name NameError, anything else SyntaxError.
func (s *Service) RunCode(ctx context.Context, tenant, sandboxID string, req sandbox.RunCodeRequest, onEvent func(sandbox.CodeEvent)) (sandbox.ExecutionResult, error) {
	sb, err := s.sandboxFor(ctx, "RunCode", tenant, sandboxID)
	if err != nil {
		return sandbox.ExecutionResult{}, err
	}
	if strings.TrimSpace(req.Code) == "" {
		return sandbox.ExecutionResult{}, fmt.Errorf("code: required: %w", errdefs.ErrInvalidArgument)
	}
	if s.Code != nil {
		return s.Code(ctx, req, onEvent)
	}
	cc, err := s.contextFor(tenant, sb, req.ContextID, req.Language)
	if err != nil {
		return sandbox.ExecutionResult{}, err
	}
	env := map[string]string{}
	for _, m := range []map[string]string{sb.EnvVars, cc.rec.EnvVars, req.Env} {
		maps.Copy(env, m)
	}
	return cc.run(ctx, req.Code, env, req.Timeout, onEvent)
}

// contextFor finds the context a run goes to, creating the default
// context of the language on first use.
func (s *Service) contextFor(tenant string, sb sandbox.Sandbox, contextID, language string) (*codeContext, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if contextID != "" {
		cc, ok := s.contexts[contextID]
		if !ok || cc.tenant != tenant || cc.rec.SandboxID != sb.ID {
			return nil, fmt.Errorf("context %s: %w", contextID, errdefs.ErrNotFound)
		}
		if language != "" && language != cc.rec.Language {
			return nil, fmt.Errorf("language: context %s runs %s, not %s: %w", contextID, cc.rec.Language, language, errdefs.ErrInvalidArgument)
		}
		return cc, nil
	}
	lang, err := checkLanguage(language)
	if err != nil {
		return nil, err
	}
	for _, cc := range s.contexts {
		if cc.rec.SandboxID == sb.ID && cc.rec.Default && cc.rec.Language == lang {
			return cc, nil
		}
	}
	return s.newContextLocked(tenant, sb.ID, sandbox.ContextOptions{Language: lang}, true), nil
}

func checkLanguage(lang string) (string, error) {
	switch lang {
	case "":
		return sandbox.LanguagePython, nil
	case sandbox.LanguagePython, sandbox.LanguageJavaScript:
		return lang, nil
	}
	return "", fmt.Errorf("language: %q is not python or javascript: %w", lang, errdefs.ErrInvalidArgument)
}

func (s *Service) newContextLocked(tenant, sandboxID string, opts sandbox.ContextOptions, isDefault bool) *codeContext {
	s.seq++
	cwd := opts.Cwd
	if cwd == "" {
		cwd = "/workspace"
	}
	cc := &codeContext{
		rec: sandbox.CodeContext{
			ID: fmt.Sprintf("ctx-fake%05d", s.seq), SandboxID: sandboxID, Language: opts.Language,
			Cwd: cwd, EnvVars: opts.Env, CreatedAt: time.Now().UTC(), Default: isDefault,
		},
		tenant: tenant,
		vars:   map[string]value{},
	}
	s.contexts[cc.rec.ID] = cc
	return cc
}

// CreateContext implements api.Service.
func (s *Service) CreateContext(ctx context.Context, tenant, sandboxID string, opts sandbox.ContextOptions) (sandbox.CodeContext, error) {
	if _, err := s.sandboxFor(ctx, "CreateContext", tenant, sandboxID); err != nil {
		return sandbox.CodeContext{}, err
	}
	lang, err := checkLanguage(opts.Language)
	if err != nil {
		return sandbox.CodeContext{}, err
	}
	if opts.Cwd != "" && !strings.HasPrefix(opts.Cwd, "/") {
		return sandbox.CodeContext{}, fmt.Errorf("cwd: %q is not an absolute path: %w", opts.Cwd, errdefs.ErrInvalidArgument)
	}
	opts.Language = lang
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newContextLocked(tenant, sandboxID, opts, false).rec, nil
}

// ListContexts implements api.Service.
func (s *Service) ListContexts(ctx context.Context, tenant, sandboxID string) ([]sandbox.CodeContext, error) {
	if _, err := s.sandboxFor(ctx, "ListContexts", tenant, sandboxID); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sandbox.CodeContext
	for _, cc := range s.contexts {
		if cc.rec.SandboxID == sandboxID {
			out = append(out, cc.rec)
		}
	}
	slices.SortFunc(out, func(a, b sandbox.CodeContext) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// DeleteContext implements api.Service.
func (s *Service) DeleteContext(_ context.Context, tenant, contextID string) error {
	if err := s.fail("DeleteContext", contextID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cc, ok := s.contexts[contextID]
	if !ok || cc.tenant != tenant {
		return fmt.Errorf("context %s: %w", contextID, errdefs.ErrNotFound)
	}
	delete(s.contexts, contextID)
	return nil
}

// Contexts returns how many contexts the fake holds (for tests).
func (s *Service) Contexts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.contexts)
}

// RunBatch implements api.Service: jobs run concurrently (higher priority
// first), each in its context or in a fresh one deleted afterwards, and
// onEvent is called from the jobs' goroutines.
func (s *Service) RunBatch(ctx context.Context, tenant, sandboxID string, req sandbox.BatchRequest, onEvent func(jobID string, ev sandbox.CodeEvent)) ([]sandbox.BatchResult, error) {
	if _, err := s.sandboxFor(ctx, "RunBatch", tenant, sandboxID); err != nil {
		return nil, err
	}
	if err := checkBatch(req); err != nil {
		return nil, err
	}
	conc := cmp.Or(req.Concurrency, 4)
	order := make([]int, len(req.Jobs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(req.Jobs[b].Priority, req.Jobs[a].Priority) })

	results := make([]sandbox.BatchResult, len(req.Jobs))
	slots := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for _, i := range order {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			results[i] = s.runJob(ctx, tenant, sandboxID, req.Jobs[i], req.Env, onEvent)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("batch cancelled: %w", errdefs.ErrUnavailable)
	}
	return results, nil
}

func checkBatch(req sandbox.BatchRequest) error {
	if len(req.Jobs) == 0 {
		return fmt.Errorf("jobs: at least one job is required: %w", errdefs.ErrInvalidArgument)
	}
	if req.Concurrency < 0 || req.Concurrency > 16 {
		return fmt.Errorf("concurrency: must be 1-16: %w", errdefs.ErrInvalidArgument)
	}
	seen := map[string]bool{}
	for i, j := range req.Jobs {
		switch {
		case j.ID == "":
			return fmt.Errorf("jobs[%d].id: required: %w", i, errdefs.ErrInvalidArgument)
		case seen[j.ID]:
			return fmt.Errorf("jobs[%d].id: %q is used by another job: %w", i, j.ID, errdefs.ErrInvalidArgument)
		case strings.TrimSpace(j.Code) == "":
			return fmt.Errorf("jobs[%d].code: required: %w", i, errdefs.ErrInvalidArgument)
		}
		seen[j.ID] = true
	}
	return nil
}

func (s *Service) runJob(ctx context.Context, tenant, sandboxID string, job sandbox.BatchJob, env map[string]string, onEvent func(string, sandbox.CodeEvent)) sandbox.BatchResult {
	start := time.Now()
	contextID := job.ContextID
	if contextID == "" {
		cc, err := s.CreateContext(ctx, tenant, sandboxID, sandbox.ContextOptions{Language: job.Language})
		if err != nil {
			return sandbox.BatchResult{JobID: job.ID, Error: errdefs.Message(err)}
		}
		contextID = cc.ID
		defer func() { _ = s.DeleteContext(context.WithoutCancel(ctx), tenant, contextID) }()
	}
	res, err := s.RunCode(ctx, tenant, sandboxID, sandbox.RunCodeRequest{
		Code: job.Code, Language: job.Language, ContextID: contextID, Env: env, Timeout: job.Timeout,
	}, func(ev sandbox.CodeEvent) { onEvent(job.ID, ev) })
	out := sandbox.BatchResult{JobID: job.ID, Duration: time.Since(start).Milliseconds()}
	switch {
	case err != nil:
		out.Error = errdefs.Message(err)
	case res.Execution.Error != nil:
		out.Error = res.Execution.Error.Name + ": " + res.Execution.Error.Value
		out.Execution = &res.Execution
	default:
		out.Success = true
		out.Execution = &res.Execution
	}
	return out
}

const maxCodeLines = 10000

// run interprets code in the context, one run at a time.
func (cc *codeContext) run(ctx context.Context, code string, env map[string]string, timeout time.Duration, onEvent func(sandbox.CodeEvent)) (sandbox.ExecutionResult, error) {
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.count++
	start := time.Now()
	exec := sandbox.Execution{
		Logs:           sandbox.Logs{Stdout: []string{}, Stderr: []string{}},
		Results:        []sandbox.Result{},
		ExecutionCount: cc.count,
	}
	emit := func(ev sandbox.CodeEvent) {
		ev.Timestamp = time.Now()
		switch ev.Type {
		case sandbox.CodeStdout, sandbox.CodeStderr:
			dst := &exec.Logs.Stdout
			if ev.Type == sandbox.CodeStderr {
				dst = &exec.Logs.Stderr
			}
			if len(*dst) < maxCodeLines {
				*dst = append(*dst, ev.Line)
			} else {
				exec.Truncated = true
			}
		case sandbox.CodeDisplay:
			exec.Results = append(exec.Results, ev.Result)
		}
		onEvent(ev)
	}
	in := &interp{vars: cc.vars, env: env, emit: emit}
	lines := strings.Split(strings.TrimRight(code, "\n"), "\n")
	for i, line := range lines {
		err := in.exec(ctx, strings.TrimSpace(line), i == len(lines)-1)
		var r *raised
		switch {
		case err == nil:
			continue
		case errors.As(err, &r):
			exec.Error = &sandbox.ExecutionError{
				Name:      r.name,
				Value:     r.value,
				Traceback: fmt.Sprintf("Traceback (most recent call last):\n  Cell In[%d], line %d\n    %s\n%s: %s", cc.count, i+1, strings.TrimSpace(line), r.name, r.value),
			}
			emit(sandbox.CodeEvent{Type: sandbox.CodeException, Error: exec.Error})
		case errors.Is(err, context.DeadlineExceeded):
			return sandbox.ExecutionResult{}, fmt.Errorf("code ran past %s (the context's state survived): %w", timeout, errdefs.ErrTimeout)
		default:
			return sandbox.ExecutionResult{}, fmt.Errorf("run cancelled: %w", errdefs.ErrUnavailable)
		}
		break
	}
	if in.main != nil {
		exec.Results = append(exec.Results, in.main)
	}
	return sandbox.ExecutionResult{
		Execution: exec,
		Metadata: sandbox.ExecutionMetadata{
			DurationMs: time.Since(start).Milliseconds(),
			ContextID:  cc.rec.ID,
			Language:   cc.rec.Language,
			SandboxID:  cc.rec.SandboxID,
		},
	}, nil
}
