package sandbox

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/template"
)

// Limits of code runs and batches, documented in docs/protocol.md.
const (
	MaxCodeLen         = 1 << 20
	MaxBatchJobs       = 1000
	DefaultConcurrency = 4
	MaxConcurrency     = 16
)

// RunCode runs code in a context of the sandbox, calling onEvent for each
// line and rich result as produced (from one goroutine, in order). A raised
// exception is part of the result, not an error. A run past its timeout
// returns an error wrapping errdefs.ErrTimeout whose message says whether
// the context's state survived.
func (s *Service) RunCode(ctx context.Context, tenant, sandboxID string, req RunCodeRequest, onEvent func(CodeEvent)) (ExecutionResult, error) {
	if err := validateRunCode(req); err != nil {
		return ExecutionResult{}, err
	}
	sb, err := s.running(ctx, tenant, sandboxID)
	if err != nil {
		return ExecutionResult{}, err
	}
	_, release, err := s.acquireRuns(tenant, 1)
	if err != nil {
		return ExecutionResult{}, err
	}
	defer release()
	tmpl, err := s.templates.Get(sb.TemplateID)
	if err != nil {
		return ExecutionResult{}, err
	}
	cc, err := s.resolveContext(ctx, sb, tmpl, req.Language, req.ContextID)
	if err != nil {
		return ExecutionResult{}, err
	}
	return s.runInContext(ctx, sb, tmpl, cc, req, onEvent)
}

func (s *Service) runInContext(ctx context.Context, sb Sandbox, tmpl template.Template, cc CodeContext, req RunCodeRequest, onEvent func(CodeEvent)) (ExecutionResult, error) {
	timeout := cmp.Or(req.Timeout, DefaultTimeout)
	// The agent enforces the timeout (interrupt, then kill and restart);
	// the deadline is a backstop in case it cannot answer.
	ctx, done := s.track(ctx, sb.ID, timeout+s.cfg.AgentGrace)
	defer done()

	res := ExecutionResult{
		Execution: Execution{Logs: Logs{Stdout: []string{}, Stderr: []string{}}, Results: []Result{}},
		Metadata:  ExecutionMetadata{ContextID: cc.ID, Language: cc.Language, SandboxID: sb.ID},
	}
	var (
		kept  resultBytes
		spoke bool // an event reached the caller
	)
	handle := func(ev agentproto.Event) {
		out := CodeEvent{Type: ev.Type}
		switch ev.Type {
		case agentproto.EventStdout, agentproto.EventStderr:
			lines := &res.Execution.Logs.Stdout
			if ev.Type == agentproto.EventStderr {
				lines = &res.Execution.Logs.Stderr
			}
			if !kept.keep(lines, ev.Data) {
				res.Execution.Truncated = true
			}
			out.Line, out.Timestamp = ev.Data, time.UnixMilli(ev.TS).UTC()
		case agentproto.EventDisplay:
			if ev.Result == nil {
				return
			}
			out.Result = toResult(*ev.Result)
			res.Execution.Results = append(res.Execution.Results, out.Result)
		case agentproto.EventException:
			if ev.Exception == nil {
				return
			}
			out.Error = &ExecutionError{Name: ev.Exception.Name, Value: ev.Exception.Value, Traceback: ev.Exception.Traceback}
			res.Execution.Error = out.Error
		default:
			return
		}
		spoke = true
		if onEvent != nil {
			onEvent(out)
		}
	}
	client := s.agent(sb.ID)
	exec := agentproto.ContextExecRequest{ID: cc.ID, Code: req.Code, Env: req.Env, TimeoutMs: timeout.Milliseconds()}
	start := time.Now()
	d, err := client.ExecContext(ctx, exec, handle)
	if errors.Is(err, errdefs.ErrNotFound) && !spoke {
		// The agent lost the context (the sandbox was restarted): start it
		// again from its record, with fresh state, and run once more.
		if err = s.startAgentContext(ctx, client, sb, tmpl, cc); err == nil {
			d, err = client.ExecContext(ctx, exec, handle)
		}
	}
	res.Metadata.DurationMs = time.Since(start).Milliseconds()
	if err != nil {
		return ExecutionResult{}, s.commandError(ctx, sb.ID, "code run", err)
	}
	res.Execution.ExecutionCount = d.ExecutionCount
	if d.TimedOut {
		state := "the context's state was kept"
		if !d.StateKept {
			state = "the context was restarted and its state was lost"
		}
		return ExecutionResult{}, fmt.Errorf("execution timed out after %d ms and was interrupted; %s: %w", timeout.Milliseconds(), state, errdefs.ErrTimeout)
	}
	return res, nil
}

// toResult turns the agent's rich result into the wire map.
func toResult(r agentproto.Result) Result {
	b, err := json.Marshal(r)
	out := Result{}
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		return Result{"text": r.Text}
	}
	return out
}

// resolveContext finds the context a run goes to: the named one (which
// must be the sandbox's), or the sandbox's default context of the language,
// created on first use.
func (s *Service) resolveContext(ctx context.Context, sb Sandbox, tmpl template.Template, language, contextID string) (CodeContext, error) {
	if contextID != "" {
		cc, err := s.store.GetContext(ctx, contextID)
		if err != nil || cc.SandboxID != sb.ID {
			return CodeContext{}, fmt.Errorf("context %s: not found in sandbox %s: %w", contextID, sb.ID, errdefs.ErrNotFound)
		}
		if language != "" && language != cc.Language {
			return CodeContext{}, fmt.Errorf("language %q does not match context %s, which runs %s: %w", language, cc.ID, cc.Language, errdefs.ErrInvalidArgument)
		}
		return cc, nil
	}
	language, err := contextLanguage(language, tmpl)
	if err != nil {
		return CodeContext{}, err
	}
	key := defaultKey(sb.ID, language)
	s.mu.Lock()
	cc, ok := s.defaults[key]
	s.mu.Unlock()
	if ok {
		return cc, nil
	}
	unlock := s.lockDefault(key)
	defer unlock()
	list, err := s.store.ListContexts(ctx, sb.ID)
	if err != nil {
		return CodeContext{}, err
	}
	i := slices.IndexFunc(list, func(c CodeContext) bool { return c.Default && c.Language == language })
	if i >= 0 {
		cc = list[i]
	} else if cc, err = s.createContext(ctx, sb, tmpl, ContextOptions{Language: language}, true); err != nil {
		return CodeContext{}, err
	}
	s.mu.Lock()
	s.defaults[key] = cc
	s.mu.Unlock()
	return cc, nil
}

// contextKey is the key of s.defaults and s.defaultLocks: the default
// context of one language in one sandbox. A struct, not a joined string,
// so a run's lookup allocates nothing.
type contextKey struct{ sandboxID, language string }

// defaultKey is the key of the default context of language in a sandbox.
func defaultKey(sandboxID, language string) contextKey { return contextKey{sandboxID, language} }

// newContextID returns "ctx-" and 12 random characters of [a-z0-9].
func newContextID() (string, error) {
	id, err := newID()
	if err != nil {
		return "", err
	}
	return "ctx-" + strings.TrimPrefix(id, "sb-"), nil
}

// lockDefault serializes the creation of one sandbox's default context of
// one language, so two first runs don't both create it.
func (s *Service) lockDefault(key contextKey) func() {
	s.mu.Lock()
	if s.defaultLocks == nil {
		s.defaultLocks = map[contextKey]*sync.Mutex{}
	}
	m := s.defaultLocks[key]
	if m == nil {
		m = &sync.Mutex{}
		s.defaultLocks[key] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func contextLanguage(language string, tmpl template.Template) (string, error) {
	if language == "" {
		language = tmpl.Language
	}
	switch language {
	case LanguagePython, "py", "python3":
		return LanguagePython, nil
	case LanguageJavaScript, "js", "node", "nodejs":
		return LanguageJavaScript, nil
	}
	return "", fmt.Errorf("language %q: want python or javascript: %w", language, errdefs.ErrInvalidArgument)
}

// CreateContext starts a new code context in the sandbox.
func (s *Service) CreateContext(ctx context.Context, tenant, sandboxID string, opts ContextOptions) (CodeContext, error) {
	if err := validateContextOptions(opts); err != nil {
		return CodeContext{}, err
	}
	sb, err := s.running(ctx, tenant, sandboxID)
	if err != nil {
		return CodeContext{}, err
	}
	tmpl, err := s.templates.Get(sb.TemplateID)
	if err != nil {
		return CodeContext{}, err
	}
	if opts.Language, err = contextLanguage(opts.Language, tmpl); err != nil {
		return CodeContext{}, err
	}
	return s.createContext(ctx, sb, tmpl, opts, false)
}

func (s *Service) createContext(ctx context.Context, sb Sandbox, tmpl template.Template, opts ContextOptions, isDefault bool) (CodeContext, error) {
	id, err := newContextID()
	if err != nil {
		return CodeContext{}, err
	}
	cc := CodeContext{
		ID: id, SandboxID: sb.ID, Language: opts.Language,
		Cwd: cmp.Or(opts.Cwd, defaultDir(tmpl)), EnvVars: copyEnv(opts.Env),
		CreatedAt: time.Now().UTC(), Default: isDefault,
	}
	client := s.agent(sb.ID)
	// The record is written while the interpreter starts; a record whose
	// interpreter is missing is started again from it on its next run.
	recorded := make(chan error, 1)
	go func() { recorded <- s.store.CreateContext(context.WithoutCancel(ctx), cc) }()
	serr := s.startAgentContext(ctx, client, sb, tmpl, cc)
	rerr := <-recorded
	switch {
	case serr != nil:
		if rerr == nil {
			if err := s.store.DeleteContext(context.WithoutCancel(ctx), cc.ID); err != nil {
				s.log.Error("remove record of a context that did not start", "sandbox_id", sb.ID, "context_id", cc.ID, "err", err)
			}
		}
		return CodeContext{}, serr
	case rerr != nil:
		if _, derr := client.DeleteContext(context.WithoutCancel(ctx), cc.ID); derr != nil {
			s.log.Error("remove unrecorded context", "sandbox_id", sb.ID, "context_id", cc.ID, "err", derr)
		}
		return CodeContext{}, rerr
	}
	s.log.Debug("context created", "sandbox_id", sb.ID, "context_id", cc.ID, "language", cc.Language)
	return cc, nil
}

// startAgentContext starts the interpreter of a context record in the
// sandbox's agent.
func (s *Service) startAgentContext(ctx context.Context, client *agentclient.Client, sb Sandbox, tmpl template.Template, cc CodeContext) error {
	req := agentproto.ContextCreateRequest{ID: cc.ID, Language: cc.Language, Cwd: cc.Cwd, Env: envFor(sb, tmpl, cc.EnvVars)}
	if cc.Language == LanguagePython {
		req.Bytecode = s.cfg.PythonBytecode
	}
	_, err := client.CreateContext(ctx, req)
	if err != nil {
		return fmt.Errorf("start %s context: %w", cc.Language, err)
	}
	return nil
}

// ListContexts returns the sandbox's contexts, oldest first.
func (s *Service) ListContexts(ctx context.Context, tenant, sandboxID string) ([]CodeContext, error) {
	sb, err := s.running(ctx, tenant, sandboxID)
	if err != nil {
		return nil, err
	}
	return s.store.ListContexts(ctx, sb.ID)
}

// DeleteContext stops a context and everything it started.
func (s *Service) DeleteContext(ctx context.Context, tenant, contextID string) error {
	if contextID == "" {
		return invalid("contextId is required")
	}
	cc, err := s.store.GetContext(ctx, contextID)
	if err != nil {
		return err
	}
	sb, err := s.Get(ctx, tenant, cc.SandboxID)
	if err != nil {
		return fmt.Errorf("context %s: %w", contextID, errdefs.ErrNotFound)
	}
	if sb.Status == StatusReady || sb.Status == StatusRunning {
		_, err := s.agent(sb.ID).DeleteContext(ctx, cc.ID)
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("delete context %s: %w", cc.ID, err)
		}
	}
	if cc.Default {
		s.mu.Lock()
		delete(s.defaults, defaultKey(cc.SandboxID, cc.Language))
		s.mu.Unlock()
	}
	return s.store.DeleteContext(context.WithoutCancel(ctx), cc.ID)
}

// RunBatch runs jobs concurrently and returns their results in job order;
// onEvent gets every job's events tagged with its id (from several
// goroutines; one job's events in order). A failing job never stops the
// others.
func (s *Service) RunBatch(ctx context.Context, tenant, sandboxID string, req BatchRequest, onEvent func(jobID string, ev CodeEvent)) ([]BatchResult, error) {
	if err := validateBatch(req); err != nil {
		return nil, err
	}
	sb, err := s.running(ctx, tenant, sandboxID)
	if err != nil {
		return nil, err
	}
	// The batch runs as many jobs at once as it got execution slots.
	slots, release, err := s.acquireRuns(tenant, min(cmp.Or(req.Concurrency, DefaultConcurrency), len(req.Jobs)))
	if err != nil {
		return nil, err
	}
	defer release()
	tmpl, err := s.templates.Get(sb.TemplateID)
	if err != nil {
		return nil, err
	}
	// Higher priority starts first; equal priorities keep job order.
	order := make([]int, len(req.Jobs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(req.Jobs[b].Priority, req.Jobs[a].Priority) })

	results := make([]BatchResult, len(req.Jobs))
	sem := make(chan struct{}, slots)
	var wg sync.WaitGroup
	for _, i := range order {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			results[i] = BatchResult{JobID: req.Jobs[i].ID, Error: "batch cancelled before the job started"}
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i] = s.runJob(ctx, sb, tmpl, req.Jobs[i], req.Env, onEvent)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return results, nil
}

func (s *Service) runJob(ctx context.Context, sb Sandbox, tmpl template.Template, job BatchJob, env map[string]string, onEvent func(string, CodeEvent)) BatchResult {
	start := time.Now()
	out := BatchResult{JobID: job.ID}
	fail := func(err error) BatchResult {
		out.Error, out.Duration = errdefs.Message(err), time.Since(start).Milliseconds()
		return out
	}
	var cc CodeContext
	if job.ContextID != "" {
		var err error
		if cc, err = s.resolveContext(ctx, sb, tmpl, job.Language, job.ContextID); err != nil {
			return fail(err)
		}
	} else {
		// A fresh context per job, so jobs can't see each other's state.
		language, err := contextLanguage(job.Language, tmpl)
		if err != nil {
			return fail(err)
		}
		if cc, err = s.createContext(ctx, sb, tmpl, ContextOptions{Language: language}, false); err != nil {
			return fail(err)
		}
		defer func() {
			if err := s.DeleteContext(context.WithoutCancel(ctx), sb.Tenant, cc.ID); err != nil {
				s.log.Error("delete batch context", "sandbox_id", sb.ID, "context_id", cc.ID, "err", err)
			}
		}()
	}
	var emit func(CodeEvent)
	if onEvent != nil {
		emit = func(ev CodeEvent) { onEvent(job.ID, ev) }
	}
	res, err := s.runInContext(ctx, sb, tmpl, cc, RunCodeRequest{Code: job.Code, Env: env, Timeout: job.Timeout}, emit)
	if err != nil {
		return fail(err)
	}
	out.Execution = &res.Execution
	out.Duration = time.Since(start).Milliseconds()
	out.Success = res.Execution.Error == nil
	if e := res.Execution.Error; e != nil {
		out.Error = e.Name + ": " + e.Value
	}
	return out
}

func validateRunCode(r RunCodeRequest) error {
	switch {
	case strings.TrimSpace(r.Code) == "":
		return invalid("code is required")
	case len(r.Code) > MaxCodeLen:
		return invalid("code is %d bytes; at most %d are allowed", len(r.Code), MaxCodeLen)
	case r.Timeout < 0:
		return invalid("timeoutMs must not be negative, got %d", r.Timeout.Milliseconds())
	case r.Timeout > MaxTimeout:
		return invalid("timeoutMs must be at most %d (24 hours), got %d", MaxTimeout.Milliseconds(), r.Timeout.Milliseconds())
	}
	return validateEnv("envs", r.Env)
}

func validateContextOptions(o ContextOptions) error {
	if o.Cwd != "" && (!path.IsAbs(o.Cwd) || len(o.Cwd) > maxCwdLen || strings.IndexByte(o.Cwd, 0) >= 0) {
		return invalid("cwd must be an absolute path, got %q", o.Cwd)
	}
	return validateEnv("envs", o.Env)
}

func validateBatch(r BatchRequest) error {
	switch {
	case len(r.Jobs) == 0:
		return invalid("jobs: at least one job is required")
	case len(r.Jobs) > MaxBatchJobs:
		return invalid("jobs: %d jobs; at most %d are allowed", len(r.Jobs), MaxBatchJobs)
	case r.Concurrency < 0 || r.Concurrency > MaxConcurrency:
		return invalid("concurrency must be between 1 and %d, got %d", MaxConcurrency, r.Concurrency)
	}
	seen := map[string]bool{}
	for i, j := range r.Jobs {
		if j.ID == "" {
			return invalid("jobs[%d].id is required", i)
		}
		if seen[j.ID] {
			return invalid("jobs[%d].id %q is used twice", i, j.ID)
		}
		seen[j.ID] = true
		if err := validateRunCode(RunCodeRequest{Code: j.Code, Timeout: j.Timeout}); err != nil {
			return fmt.Errorf("jobs[%d] (%s): %w", i, j.ID, err)
		}
	}
	return validateEnv("envs", r.Env)
}
