// Package apitest provides stand-ins for what the api transports call, for
// tests that exercise the transports over real connections: a fake sandbox
// service and a fixed-key authenticator.
//
// The fake service keeps sandboxes in memory and runs commands on the host
// with /bin/bash -c (or argv directly) in a scratch directory, so streamed
// output is real process output. It is for tests only: it isolates nothing.
//
// Code runs in a toy interpreter of a few Python statements (see RunCode),
// enough for the transports' tests to behave like a real python sandbox on
// simple programs; files live in memory, per sandbox.
package apitest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
	"github.com/sdbx/sdbx/internal/template"
)

// Authenticator accepts exactly the keys in its map.
type Authenticator map[string]auth.Principal

// Authenticate implements auth.Authenticator.
func (a Authenticator) Authenticate(_ context.Context, key string) (auth.Principal, error) {
	p, ok := a[key]
	if !ok || key == "" {
		return auth.Principal{}, fmt.Errorf("API key: unknown: %w", errdefs.ErrUnauthenticated)
	}
	return p, nil
}

// Service is a fake sandbox service. The zero value is not usable; call
// NewService.
type Service struct {
	// Fail, when set, is asked before every call (op is the method name,
	// id the sandbox or template id or ""); a non-nil error is returned as
	// the call's error.
	Fail func(op, id string) error
	// Run, when set, replaces command execution (the sandbox must still
	// exist).
	Run func(ctx context.Context, req sandbox.CommandRequest, onOutput func(sandbox.Output)) (sandbox.CommandResult, error)
	// Code, when set, replaces the toy interpreter of RunCode (the sandbox
	// must still exist).
	Code func(ctx context.Context, req sandbox.RunCodeRequest, onEvent func(sandbox.CodeEvent)) (sandbox.ExecutionResult, error)
	// Upload, when set, reads WriteFile's content instead of io.ReadAll
	// (before the file is stored).
	Upload func(ctx context.Context, path string, content io.Reader) ([]byte, error)
	// Open, when set, replaces OpenFile's lookup (the sandbox must still
	// exist).
	Open func(ctx context.Context, path string) (sandbox.FileEntry, io.ReadCloser, error)

	dir string

	mu        sync.Mutex
	templates []template.Template
	sandboxes map[string]sandbox.Sandbox
	seq       int
	contexts  map[string]*codeContext     // by context id
	files     map[string]map[string]*node // by sandbox id, then clean path
	procs     map[string]*fakeProc        // by sandbox id + "/" + process id (procs.go)
	procOrder []string
}

// NewService returns a fake service whose commands run in dir. Its
// catalog has one template, python-3-11.
func NewService(dir string) *Service {
	return &Service{
		dir: dir,
		templates: []template.Template{{
			ID: "python-3-11", Name: "Python 3.11", Language: "python", Version: "3.11.2",
			Description: "Python 3.11", DefaultCwd: "/workspace", Status: "ready", BuiltIn: true,
			CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		}},
		sandboxes: map[string]sandbox.Sandbox{},
		contexts:  map[string]*codeContext{},
		files:     map[string]map[string]*node{},
	}
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

const maxExpiry = 7 * 24 * time.Hour

func (s *Service) fail(op, id string) error {
	if s.Fail == nil {
		return nil
	}
	return s.Fail(op, id)
}

// sandboxFor applies the Fail hook for op and returns the tenant's
// sandbox sandboxID.
func (s *Service) sandboxFor(ctx context.Context, op, tenant, sandboxID string) (sandbox.Sandbox, error) {
	if err := s.fail(op, sandboxID); err != nil {
		return sandbox.Sandbox{}, err
	}
	return s.Get(ctx, tenant, sandboxID)
}

// Create implements api.Service.
func (s *Service) Create(ctx context.Context, tenant string, opts sandbox.CreateOptions) (sandbox.Sandbox, error) {
	if err := s.fail("Create", opts.TemplateID); err != nil {
		return sandbox.Sandbox{}, err
	}
	switch {
	case opts.TemplateID == "":
		return sandbox.Sandbox{}, fmt.Errorf("templateId: required: %w", errdefs.ErrInvalidArgument)
	case utf8.RuneCountInString(opts.Name) > 128:
		return sandbox.Sandbox{}, fmt.Errorf("name: longer than 128 characters: %w", errdefs.ErrInvalidArgument)
	case opts.Expiry < 0 || opts.Expiry > maxExpiry:
		return sandbox.Sandbox{}, fmt.Errorf("expiryTime: must be 0 to 7 days: %w", errdefs.ErrInvalidArgument)
	}
	for k := range opts.Env {
		if !envName.MatchString(k) {
			return sandbox.Sandbox{}, fmt.Errorf("initialEnvVars: name %q is not valid: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	if _, err := s.Template(ctx, tenant, opts.TemplateID); err != nil {
		return sandbox.Sandbox{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	now := time.Now().UTC()
	sb := sandbox.Sandbox{
		ID:         fmt.Sprintf("sb-fake%05d", s.seq),
		Name:       opts.Name,
		TemplateID: opts.TemplateID,
		Status:     sandbox.StatusReady,
		EnvVars:    opts.Env,
		CreatedAt:  now,
		UpdatedAt:  now,
		Tenant:     tenant,
	}
	if opts.Expiry > 0 {
		exp := now.Add(opts.Expiry)
		sb.ExpiresAt = &exp
	}
	s.sandboxes[sb.ID] = sb
	s.files[sb.ID] = newTree(now)
	return sb, nil
}

// Get implements api.Service.
func (s *Service) Get(_ context.Context, tenant, id string) (sandbox.Sandbox, error) {
	if err := s.fail("Get", id); err != nil {
		return sandbox.Sandbox{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, ok := s.sandboxes[id]
	if !ok || sb.Tenant != tenant {
		return sandbox.Sandbox{}, fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
	}
	return sb, nil
}

// List implements api.Service.
func (s *Service) List(_ context.Context, tenant string) ([]sandbox.Sandbox, error) {
	if err := s.fail("List", ""); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sandbox.Sandbox
	for _, sb := range s.sandboxes {
		if sb.Tenant == tenant {
			out = append(out, sb)
		}
	}
	slices.SortFunc(out, func(a, b sandbox.Sandbox) int { return -a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Delete implements api.Service.
func (s *Service) Delete(ctx context.Context, tenant, id string) error {
	if err := s.fail("Delete", id); err != nil {
		return err
	}
	if _, err := s.Get(ctx, tenant, id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sandboxes, id)
	delete(s.files, id)
	for cid, c := range s.contexts {
		if c.rec.SandboxID == id {
			delete(s.contexts, cid)
		}
	}
	return nil
}

// Templates implements api.Service.
func (s *Service) Templates(_ context.Context, _ string, page, pageSize int) (sandbox.TemplatePage, error) {
	if err := s.fail("Templates", ""); err != nil {
		return sandbox.TemplatePage{}, err
	}
	if page < 1 {
		return sandbox.TemplatePage{}, fmt.Errorf("page: must be at least 1: %w", errdefs.ErrInvalidArgument)
	}
	if pageSize < 1 || pageSize > 100 {
		return sandbox.TemplatePage{}, fmt.Errorf("pageSize: must be 1-100: %w", errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tp := sandbox.TemplatePage{Total: len(s.templates), Page: page, PageSize: pageSize, Templates: []template.Template{}}
	if start := (page - 1) * pageSize; start < len(s.templates) {
		tp.Templates = slices.Clone(s.templates[start:min(start+pageSize, len(s.templates))])
	}
	return tp, nil
}

// Template implements api.Service.
func (s *Service) Template(_ context.Context, _ string, id string) (template.Template, error) {
	if err := s.fail("Template", id); err != nil {
		return template.Template{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.templates {
		if t.ID == id {
			return t, nil
		}
	}
	return template.Template{}, fmt.Errorf("template %s: %w", id, errdefs.ErrNotFound)
}

// RunCommand implements api.Service: it runs the command on the host.
func (s *Service) RunCommand(ctx context.Context, tenant, id string, req sandbox.CommandRequest, onOutput func(sandbox.Output)) (sandbox.CommandResult, error) {
	if err := s.fail("RunCommand", id); err != nil {
		return sandbox.CommandResult{}, err
	}
	sb, err := s.Get(ctx, tenant, id)
	if err != nil {
		return sandbox.CommandResult{}, err
	}
	if (req.Command == "") == (len(req.Args) == 0) {
		return sandbox.CommandResult{}, fmt.Errorf("command, args: exactly one is required: %w", errdefs.ErrInvalidArgument)
	}
	if s.Run != nil {
		return s.Run(ctx, req, onOutput)
	}
	return s.exec(ctx, sb, req, onOutput)
}

const maxLines = 10000

// exec runs req in a process group that is killed at the timeout or when
// ctx ends.
func (s *Service) exec(ctx context.Context, sb sandbox.Sandbox, req sandbox.CommandRequest, onOutput func(sandbox.Output)) (sandbox.CommandResult, error) {
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	argv := req.Args
	if req.Command != "" {
		argv = []string{"/bin/bash", "-c", req.Command}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + s.dir}
	for _, env := range []map[string]string{sb.EnvVars, req.Env} {
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return sandbox.CommandResult{}, fmt.Errorf("stdout pipe: %w", errdefs.ErrInternal)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return sandbox.CommandResult{}, fmt.Errorf("stderr pipe: %w", errdefs.ErrInternal)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return sandbox.CommandResult{}, fmt.Errorf("start %s: %w", argv[0], errdefs.ErrInvalidArgument)
	}

	lines := make(chan sandbox.Output)
	var readers sync.WaitGroup
	for name, r := range map[string]io.Reader{"stdout": stdout, "stderr": stderr} {
		readers.Go(func() {
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				lines <- sandbox.Output{Stream: name, Line: sc.Text(), Timestamp: time.Now()}
			}
			_, _ = io.Copy(io.Discard, r) // drain after an over-long line
		})
	}
	go func() {
		readers.Wait()
		close(lines)
	}()
	killed := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-killed:
		}
	}()

	res := sandbox.CommandResult{Stdout: []string{}, Stderr: []string{}}
	for o := range lines {
		onOutput(o)
		dst := &res.Stdout
		if o.Stream == "stderr" {
			dst = &res.Stderr
		}
		if len(*dst) < maxLines {
			*dst = append(*dst, o.Line)
		} else {
			res.Truncated = true
		}
	}
	waitErr := cmd.Wait()
	close(killed)
	res.DurationMs = time.Since(start).Milliseconds()
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return sandbox.CommandResult{}, fmt.Errorf("command ran past %s: %w", timeout, errdefs.ErrTimeout)
		}
		return sandbox.CommandResult{}, fmt.Errorf("command cancelled: %w", errdefs.ErrUnavailable)
	}
	var exitErr *exec.ExitError
	switch {
	case waitErr == nil:
	case errors.As(waitErr, &exitErr):
		res.ExitCode = exitErr.ExitCode()
		if res.ExitCode < 0 {
			res.ExitCode = 128 + int(exitErr.Sys().(syscall.WaitStatus).Signal())
		}
	default:
		return sandbox.CommandResult{}, fmt.Errorf("wait: %w", errdefs.ErrInternal)
	}
	return res, nil
}

// Sandboxes returns how many sandboxes the fake holds (for tests).
func (s *Service) Sandboxes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sandboxes)
}

// CreateTemplate implements api.Service: it checks cfg and adds a
// template that stays "building".
func (s *Service) CreateTemplate(_ context.Context, _ string, cfg sandbox.TemplateConfig) (template.Template, error) {
	if err := s.fail("CreateTemplate", cfg.Name); err != nil {
		return template.Template{}, err
	}
	switch {
	case cfg.Name == "":
		return template.Template{}, fmt.Errorf("name: required: %w", errdefs.ErrInvalidArgument)
	case cfg.Language != sandbox.LanguagePython && cfg.Language != sandbox.LanguageJavaScript:
		return template.Template{}, fmt.Errorf("language: %q is not python or javascript: %w", cfg.Language, errdefs.ErrInvalidArgument)
	}
	for k := range cfg.DefaultEnv {
		if !envName.MatchString(k) {
			return template.Template{}, fmt.Errorf("defaultEnvVars: name %q is not valid: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	t := template.Template{
		ID: fmt.Sprintf("tpl-fake%05d", s.seq), Name: cfg.Name, Language: cfg.Language, Version: cfg.Version,
		Dependencies: cfg.Dependencies, DefaultEnv: cfg.DefaultEnv, DefaultCwd: "/workspace",
		Status: "building", CreatedAt: time.Now().UTC(),
	}
	s.templates = append(s.templates, t)
	return t, nil
}

// DeleteTemplate implements api.Service: it removes a template the fake
// created; built-ins are refused.
func (s *Service) DeleteTemplate(_ context.Context, _ string, id string) error {
	if err := s.fail("DeleteTemplate", id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, t := range s.templates {
		if t.ID != id {
			continue
		}
		if t.BuiltIn {
			return fmt.Errorf("template %q is built in: %w", id, errdefs.ErrPermissionDenied)
		}
		s.templates = append(s.templates[:i], s.templates[i+1:]...)
		return nil
	}
	return fmt.Errorf("template %q: %w", id, errdefs.ErrNotFound)
}
