// Package kernel runs the code contexts of the sdbx agent: persistent
// Python and JavaScript interpreters that keep their state (variables,
// imports, functions) between runs.
//
// Each context has one driver process: python3 or node running a small
// driver script (python/driver.py, node/driver.js, embedded in the agent
// and handed to the interpreter through a pipe, so nothing is written to
// the sandbox's file system; a Python driver may come precompiled by the
// server, see CompilePythonDriver). The agent talks to it over dedicated pipes:
// requests as JSON lines on fd 3, messages (ready, result, error, done) as
// JSON lines on fd 4. The driver's fd 1 and fd 2 are pipes of their own
// that the agent reads as stdout and stderr lines, so output of
// subprocesses, os.system and C code is captured like print's.
//
// # Ordering
//
// Before every message the driver flushes its standard streams and writes
// a sync marker line ("\x00sdbx-sync:TOKEN:N\n", TOKEN random per driver)
// to fd 5 and fd 6, which are the stdout and stderr pipes again. The agent
// passes message N on only after it has read marker N from both pipes. So
// every line written to stdout/stderr before a result, an error or the
// end of the run reaches the client before it; the run ends only after
// its output was delivered. Output that arrives while no run is going
// (a background thread or process) is dropped.
//
// # Interrupts and timeouts
//
// A run that passes its timeout (or whose client goes away) gets SIGINT
// (KeyboardInterrupt in Python; an interrupted synchronous script in
// Node). If it has not finished after the grace period, the driver's whole
// process group gets SIGINT; after another grace period every process of
// the context is killed and the driver restarts with fresh state on the
// next run. The run's final ContextDone says TimedOut and whether the
// state was kept. A driver that dies while running (os._exit, a crash)
// ends the run with an InterpreterExited exception and restarts on the
// next run.
//
// # Processes of a context
//
// Each driver leads its own session. Every process started from a context
// also carries SDBX_CONTEXT=<random tag> in its environment. Deleting a
// context (or restarting its driver) kills, with SIGKILL, until none is
// left: the driver, every process in its session or process group, every
// descendant of the driver, and every process whose environment carries
// the tag. This covers os.system, subprocess (also with
// start_new_session), background jobs of a shell, and daemons that setsid
// and double-fork. It does not cover a process that both left the
// session and cleared or replaced its environment (env -i) and was
// reparented before the kill. Background processes never keep a run busy:
// a run ends with the driver's done message, not with the end of its
// pipes.
package kernel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// Options configure a Manager. The zero value is usable.
type Options struct {
	// Spawner starts driver processes; nil means WaitSpawner.
	Spawner Spawner
	// Logger receives the manager's logs; nil discards them.
	Logger *slog.Logger
	// DefaultCwd is the working directory of a context that names none;
	// empty means /workspace.
	DefaultCwd string
	// Python and Node are the interpreters (a name looked up in the PATH
	// of the context's environment, or a path); empty means "python3" and
	// "node".
	Python, Node string
	// InterruptGrace is how long a run may take to stop after each SIGINT
	// before the next step; zero means 500ms.
	InterruptGrace time.Duration
	// StartTimeout bounds a driver's start; zero means 30s.
	StartTimeout time.Duration
	// DrainTimeout is how long output is still read after a driver died;
	// zero means 100ms.
	DrainTimeout time.Duration
}

// Manager keeps the code contexts of one agent. Create it with
// NewManager and stop it with Close. Its methods are safe for concurrent
// use.
type Manager struct {
	log    *slog.Logger
	sp     Spawner
	langs  map[string]*language
	cwd    string
	grace  time.Duration
	start  time.Duration
	drain  time.Duration
	mu     sync.Mutex
	ctxs   map[string]*kctx
	closed bool
}

// NewManager returns a manager configured by opts.
func NewManager(opts Options) *Manager {
	m := &Manager{
		log:   opts.Logger,
		sp:    opts.Spawner,
		langs: languages(opts),
		cwd:   opts.DefaultCwd,
		grace: opts.InterruptGrace,
		start: opts.StartTimeout,
		drain: opts.DrainTimeout,
		ctxs:  make(map[string]*kctx),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.sp == nil {
		m.sp = WaitSpawner{}
	}
	if m.cwd == "" {
		m.cwd = "/workspace"
	}
	if m.grace <= 0 {
		m.grace = 500 * time.Millisecond
	}
	if m.start <= 0 {
		m.start = 30 * time.Second
	}
	if m.drain <= 0 {
		m.drain = 100 * time.Millisecond
	}
	return m
}

// maxIDLen bounds a context id.
const maxIDLen = 128

func validateID(field, id string) error {
	if id == "" {
		return fmt.Errorf("%s: must not be empty: %w", field, errdefs.ErrInvalidArgument)
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("%s: longer than %d bytes: %w", field, maxIDLen, errdefs.ErrInvalidArgument)
	}
	if strings.IndexFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return fmt.Errorf("%s: contains a control character: %w", field, errdefs.ErrInvalidArgument)
	}
	return nil
}

func validateEnv(field string, env map[string]string) error {
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("%s: invalid variable name %q (empty, or contains '=' or NUL): %w", field, k, errdefs.ErrInvalidArgument)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%s[%q]: value contains a NUL byte: %w", field, k, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// Create starts a context: it makes the working directory when missing,
// starts the driver and waits until it is ready.
//
// Errors wrap errdefs.ErrInvalidArgument for a bad field (named in the
// message), errdefs.ErrConflict when the id is in use,
// errdefs.ErrNotFound when the interpreter is missing,
// errdefs.ErrUnavailable after Close, and errdefs.ErrInternal when the
// driver fails to start.
func (m *Manager) Create(ctx context.Context, req agentproto.ContextCreateRequest) (agentproto.ContextInfo, error) {
	if err := validateID("context.id", req.ID); err != nil {
		return agentproto.ContextInfo{}, err
	}
	lang, ok := m.langs[req.Language]
	if !ok {
		return agentproto.ContextInfo{}, fmt.Errorf("context.language: %q is not one of %q, %q: %w",
			req.Language, agentproto.LanguagePython, agentproto.LanguageJavaScript, errdefs.ErrInvalidArgument)
	}
	cwd := req.Cwd
	if cwd == "" {
		cwd = m.cwd
	}
	if !filepath.IsAbs(cwd) || strings.IndexByte(cwd, 0) >= 0 {
		return agentproto.ContextInfo{}, fmt.Errorf("context.cwd: %q is not an absolute path: %w", cwd, errdefs.ErrInvalidArgument)
	}
	if err := validateEnv("context.env", req.Env); err != nil {
		return agentproto.ContextInfo{}, err
	}
	if err := makeCwd(cwd); err != nil {
		return agentproto.ContextInfo{}, err
	}

	c := &kctx{
		m:    m,
		lang: lang,
		info: agentproto.ContextInfo{ID: req.ID, Language: lang.name, Cwd: filepath.Clean(cwd), CreatedAt: time.Now().UnixMilli()},
		env:  req.Env,
		tag:  randomHex(8),
		// Kept for restarts of the interpreter.
		bytecode: req.Bytecode,
		gone:     make(chan struct{}),
	}
	m.mu.Lock()
	switch {
	case m.closed:
		m.mu.Unlock()
		return agentproto.ContextInfo{}, fmt.Errorf("context %s: agent is shutting down: %w", req.ID, errdefs.ErrUnavailable)
	case m.ctxs[req.ID] != nil:
		m.mu.Unlock()
		return agentproto.ContextInfo{}, fmt.Errorf("context %s: already exists: %w", req.ID, errdefs.ErrConflict)
	}
	m.ctxs[req.ID] = c
	m.mu.Unlock()

	// Runs that arrive while the driver starts wait for it.
	if err := c.turn.lock(ctx, c.gone); err != nil {
		m.remove(c)
		return agentproto.ContextInfo{}, fmt.Errorf("context %s: %w", req.ID, err)
	}
	_, _, err := c.ensureDriver(ctx)
	c.turn.unlock()
	if err != nil {
		m.remove(c)
		c.close()
		return agentproto.ContextInfo{}, fmt.Errorf("context %s: %w", req.ID, err)
	}
	m.log.Debug("context created", "context_id", req.ID, "language", lang.name, "cwd", c.info.Cwd)
	return c.snapshot(), nil
}

// makeCwd creates a context's working directory when it is missing.
func makeCwd(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("context.cwd: %q is not a directory: %w", dir, errdefs.ErrInvalidArgument)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("context.cwd: cannot create %q: %w", dir, errdefs.ErrPermissionDenied)
		}
		var errno syscall.Errno
		text := "unexpected error"
		if errors.As(err, &errno) {
			text = errno.Error()
		}
		return fmt.Errorf("context.cwd: cannot create %q: %s: %w", dir, text, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Execute runs code in context req.ID and passes its output lines,
// results and exception to sink, in order. Runs of one context happen one
// at a time, in the order they arrive. The returned ContextDone ends the
// run; an exception raised by the code is not an error.
//
// Ending ctx interrupts the run (as its timeout would) or takes it out of
// the queue; Execute then returns ctx's error once the driver has stopped
// or was killed.
//
// Errors wrap errdefs.ErrNotFound when the context does not exist or is
// deleted meanwhile (also when the interpreter is missing on a restart),
// errdefs.ErrInvalidArgument for a bad field, and the errors of Create
// when the driver has to be restarted and cannot.
func (m *Manager) Execute(ctx context.Context, req agentproto.ContextExecRequest, sink Sink) (agentproto.ContextDone, error) {
	if err := validateID("contextExec.id", req.ID); err != nil {
		return agentproto.ContextDone{}, err
	}
	if err := validateEnv("contextExec.env", req.Env); err != nil {
		return agentproto.ContextDone{}, err
	}
	if req.TimeoutMs < 0 {
		return agentproto.ContextDone{}, fmt.Errorf("contextExec.timeoutMs: must not be negative, got %d: %w", req.TimeoutMs, errdefs.ErrInvalidArgument)
	}
	c, err := m.get(req.ID)
	if err != nil {
		return agentproto.ContextDone{}, err
	}
	if err := c.turn.lock(ctx, c.gone); err != nil {
		return agentproto.ContextDone{}, fmt.Errorf("context %s: %w", req.ID, err)
	}
	defer c.turn.unlock()
	if c.isDeleted() {
		return agentproto.ContextDone{}, fmt.Errorf("context %s: %w", req.ID, errDeleted)
	}
	return c.run(ctx, req, sink)
}

// Delete kills context id's driver and every process started from it,
// and forgets the context. A run in progress ends with an error; runs
// waiting for their turn fail with errdefs.ErrNotFound.
//
// Errors wrap errdefs.ErrNotFound when the context does not exist.
func (m *Manager) Delete(ctx context.Context, id string) (agentproto.ContextInfo, error) {
	m.mu.Lock()
	c := m.ctxs[id]
	delete(m.ctxs, id)
	m.mu.Unlock()
	if c == nil {
		return agentproto.ContextInfo{}, fmt.Errorf("context %s: %w", id, errdefs.ErrNotFound)
	}
	info := c.snapshot()
	c.close()
	m.log.Debug("context deleted", "context_id", id)
	return info, nil
}

// List returns the contexts, sorted by id.
func (m *Manager) List() []agentproto.ContextInfo {
	m.mu.Lock()
	cs := make([]*kctx, 0, len(m.ctxs))
	for _, c := range m.ctxs {
		cs = append(cs, c)
	}
	m.mu.Unlock()
	out := make([]agentproto.ContextInfo, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.snapshot())
	}
	slices.SortFunc(out, func(a, b agentproto.ContextInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Close deletes every context and makes Create fail from then on.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	cs := m.ctxs
	m.ctxs = make(map[string]*kctx)
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.close()
		}()
	}
	wg.Wait()
}

// get returns context id.
func (m *Manager) get(id string) (*kctx, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.ctxs[id]
	if c == nil {
		return nil, fmt.Errorf("context %s: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

// remove forgets c unless its id names another context by now.
func (m *Manager) remove(c *kctx) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctxs[c.info.ID] == c {
		delete(m.ctxs, c.info.ID)
	}
}
