// Package api holds sdbx's client-facing transports: the HTTP JSON API under
// /v1/ and the Socket.IO v4 server at /socket.io/, served on one port by one
// http.Handler. The wire contract is docs/protocol.md.
//
// The transports are thin: they authenticate the API key, decode and check
// the JSON shape of a request (unknown fields, wrong types, size limits),
// call the sandbox Service with the caller's tenant, and encode the result
// or the error. Domain rules (env names, expiry bounds, ...) are the
// service's; error kinds are mapped to wire codes in one place (errors.go).
package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/limit"
	"github.com/sdbx/sdbx/internal/sandbox"
	"github.com/sdbx/sdbx/internal/template"
)

// Service is what the transports need from the sandbox domain. All methods
// take the caller's tenant and return errors wrapping the errdefs kinds.
type Service interface {
	Create(ctx context.Context, tenant string, opts sandbox.CreateOptions) (sandbox.Sandbox, error)
	Get(ctx context.Context, tenant, id string) (sandbox.Sandbox, error)
	List(ctx context.Context, tenant string) ([]sandbox.Sandbox, error)
	Delete(ctx context.Context, tenant, id string) error
	// RunCommand calls onOutput for each line, from one goroutine, before it
	// returns; cancelling ctx kills the command.
	RunCommand(ctx context.Context, tenant, id string, req sandbox.CommandRequest, onOutput func(sandbox.Output)) (sandbox.CommandResult, error)
	Templates(ctx context.Context, tenant string, page, pageSize int) (sandbox.TemplatePage, error)
	Template(ctx context.Context, tenant, id string) (template.Template, error)
	CreateTemplate(ctx context.Context, tenant string, cfg sandbox.TemplateConfig) (template.Template, error)
	DeleteTemplate(ctx context.Context, tenant, id string) error

	// RunCode calls onEvent for each event, in order, before it returns;
	// cancelling ctx stops the run. A raised exception is in the result,
	// not an error.
	RunCode(ctx context.Context, tenant, sandboxID string, req sandbox.RunCodeRequest, onEvent func(sandbox.CodeEvent)) (sandbox.ExecutionResult, error)
	CreateContext(ctx context.Context, tenant, sandboxID string, opts sandbox.ContextOptions) (sandbox.CodeContext, error)
	ListContexts(ctx context.Context, tenant, sandboxID string) ([]sandbox.CodeContext, error)
	DeleteContext(ctx context.Context, tenant, contextID string) error
	// RunBatch calls onEvent for the events of every job before it
	// returns, possibly from several goroutines at once (each job's
	// events in order).
	RunBatch(ctx context.Context, tenant, sandboxID string, req sandbox.BatchRequest, onEvent func(jobID string, ev sandbox.CodeEvent)) ([]sandbox.BatchResult, error)

	// WriteFile reads content until EOF (or an error, which fails the
	// write without changing the file) before it returns.
	WriteFile(ctx context.Context, tenant, sandboxID, path string, content io.Reader, opts sandbox.WriteFileOptions) (sandbox.FileEntry, error)
	// OpenFile returns a reader the caller must close.
	OpenFile(ctx context.Context, tenant, sandboxID, path string) (sandbox.FileEntry, io.ReadCloser, error)
	DeleteFile(ctx context.Context, tenant, sandboxID, path string, recursive bool) error
	ListFiles(ctx context.Context, tenant, sandboxID, dir string) (sandbox.FileList, error)
	StatFile(ctx context.Context, tenant, sandboxID, path string) (sandbox.FileEntry, error)
	MakeDir(ctx context.Context, tenant, sandboxID, path string, parents bool) (sandbox.FileEntry, error)
	MoveFile(ctx context.Context, tenant, sandboxID, from, to string, overwrite bool) (sandbox.FileEntry, error)
	// FileExists reports whether path exists; a missing path is false, not
	// an error.
	FileExists(ctx context.Context, tenant, sandboxID, path string) (bool, error)
	// DialPort connects to a port on the sandbox's loopback interface; the
	// connection outlives ctx and the caller must close it.
	DialPort(ctx context.Context, tenant, sandboxID string, port int) (net.Conn, error)

	// Background processes (see sandbox.Service.StartProcess). ProcessOutput
	// calls onChunk from one goroutine, in order, before it returns.
	StartProcess(ctx context.Context, tenant, sandboxID string, req sandbox.CommandRequest) (sandbox.Process, error)
	ListProcesses(ctx context.Context, tenant, sandboxID string) ([]sandbox.Process, error)
	ProcessOutput(ctx context.Context, tenant, sandboxID, procID string, offset int64, follow bool, onChunk func(sandbox.ProcessChunk)) (sandbox.ProcessOutputEnd, error)
	WriteStdin(ctx context.Context, tenant, sandboxID, procID string, data []byte, closeStdin bool) (sandbox.Process, error)
	SignalProcess(ctx context.Context, tenant, sandboxID, procID, signal string) (sandbox.Process, error)
	KillProcess(ctx context.Context, tenant, sandboxID, procID string) (sandbox.Process, error)
}

var _ Service = (*sandbox.Service)(nil)

// Limits bound what one client can make the server hold.
type Limits struct {
	// MaxBodyBytes is the largest HTTP JSON request body and the largest
	// Socket.IO payload of every event except file:write.
	MaxBodyBytes int64
	// StreamWindowBytes is how many bytes of Socket.IO packets one
	// connection may have queued but not yet handed to its transport before
	// streamed output waits (see sendWindow).
	StreamWindowBytes int64
	// MaxMessageBytes is the largest Socket.IO message (the Engine.IO
	// maxHttpBufferSize), which bounds file:write. Zero means 16 MiB; it
	// is never less than MaxBodyBytes.
	MaxMessageBytes int64
	// MaxUploadBytes is the largest file body of PUT .../files, which is
	// streamed to the service, never held whole. Zero means 10 GiB.
	MaxUploadBytes int64
	// MaxReadBytes is the largest file file:read returns (the whole
	// content is held in memory and sent in one ack). Zero means 64 MiB.
	MaxReadBytes int64
	// TransferIdle ends a chunked Socket.IO upload or download that gets
	// no request for this long (an upload is then not applied). Zero
	// means 60 s.
	TransferIdle time.Duration
}

// Defaults of the Limits fields that may be left zero.
const (
	defaultMaxMessageBytes = 16 << 20
	defaultMaxUploadBytes  = 10 << 30
	defaultMaxReadBytes    = 64 << 20
	defaultTransferIdle    = 60 * time.Second
)

// DefaultLimits returns the limits NewHandler uses: 1 MiB JSON bodies and
// stream window, 16 MiB Socket.IO messages, 10 GiB HTTP uploads, 64 MiB
// file:read, 60 s idle chunked transfers.
func DefaultLimits() Limits {
	return Limits{
		MaxBodyBytes:      1 << 20,
		StreamWindowBytes: 1 << 20,
		MaxMessageBytes:   defaultMaxMessageBytes,
		MaxUploadBytes:    defaultMaxUploadBytes,
		MaxReadBytes:      defaultMaxReadBytes,
		TransferIdle:      defaultTransferIdle,
	}
}

// withDefaults checks l and fills in the fields left zero.
func (l Limits) withDefaults() (Limits, error) {
	if l.MaxBodyBytes < 0 || l.StreamWindowBytes < 0 ||
		l.MaxMessageBytes < 0 || l.MaxUploadBytes < 0 || l.MaxReadBytes < 0 || l.TransferIdle < 0 {
		return Limits{}, errors.New("api: limits must be positive (or zero for a default)")
	}
	def := DefaultLimits()
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = def.MaxBodyBytes
	}
	if l.StreamWindowBytes == 0 {
		l.StreamWindowBytes = def.StreamWindowBytes
	}
	if l.MaxMessageBytes == 0 {
		l.MaxMessageBytes = defaultMaxMessageBytes
	}
	l.MaxMessageBytes = max(l.MaxMessageBytes, l.MaxBodyBytes)
	if l.MaxUploadBytes == 0 {
		l.MaxUploadBytes = defaultMaxUploadBytes
	}
	if l.MaxReadBytes == 0 {
		l.MaxReadBytes = defaultMaxReadBytes
	}
	if l.TransferIdle == 0 {
		l.TransferIdle = defaultTransferIdle
	}
	return l, nil
}

// Handler serves /v1/ (HTTP JSON) and /socket.io/ (Socket.IO v4). Close it
// before shutting the http.Server down: it ends Socket.IO connections
// (hijacked websockets and long polls that http.Server.Shutdown would wait
// for) and cancels their operations.
type Handler struct {
	svc     Service
	authn   auth.Authenticator
	logger  *slog.Logger
	version string
	limits  Limits
	rate    *limit.Limiter
	keys    KeyManager

	mux *http.ServeMux
	sio *socketServer

	// ctx is cancelled by Close; Socket.IO operations derive from it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the goroutines the Handler started (Socket.IO operations);
	// closing stops spawn from adding to it.
	wg        sync.WaitGroup
	spawnMu   sync.Mutex
	closing   bool
	closeOnce sync.Once
}

// NewHandler returns the handler of both transports. version is reported by
// GET /v1/health.
func NewHandler(svc Service, authn auth.Authenticator, logger *slog.Logger, version string) (*Handler, error) {
	return NewHandlerWithLimits(svc, authn, logger, version, DefaultLimits())
}

// NewHandlerWithLimits is NewHandler with explicit limits.
func NewHandlerWithLimits(svc Service, authn auth.Authenticator, logger *slog.Logger, version string, limits Limits) (*Handler, error) {
	return NewHandlerWithOptions(svc, authn, logger, version, Options{Limits: limits})
}

// KeyManager manages API keys (admin only); auth.Keys implements it.
type KeyManager interface {
	Create(ctx context.Context, caller auth.Principal, name string) (string, auth.Key, error)
	List(ctx context.Context, caller auth.Principal) ([]auth.Key, error)
	Revoke(ctx context.Context, caller auth.Principal, idOrName string) (auth.Key, error)
}

var _ KeyManager = (*auth.Keys)(nil)

// Options configure a Handler beyond its service and authenticator.
type Options struct {
	Limits Limits
	// Rate limits requests per API key; nil means no limit.
	Rate *limit.Limiter
	// Keys serves /v1/keys; nil answers those routes with unavailable.
	Keys KeyManager
}

// NewHandlerWithOptions is NewHandler with every option.
func NewHandlerWithOptions(svc Service, authn auth.Authenticator, logger *slog.Logger, version string, opts Options) (*Handler, error) {
	limits := opts.Limits
	if svc == nil || authn == nil {
		return nil, errors.New("api: a service and an authenticator are required")
	}
	limits, err := limits.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		svc:     svc,
		authn:   authn,
		logger:  logger,
		version: version,
		limits:  limits,
		rate:    opts.Rate,
		keys:    opts.Keys,
		mux:     http.NewServeMux(),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.routeHTTP(h.mux)
	h.sio = newSocketServer(h)
	h.mux.Handle("/socket.io/", h.sio.handler)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// Close disconnects every Socket.IO client, cancels their operations and
// waits for them to return. It is safe to call more than once.
func (h *Handler) Close() error {
	h.closeOnce.Do(func() {
		h.spawnMu.Lock()
		h.closing = true
		h.spawnMu.Unlock()
		h.cancel()
		h.sio.close()
		h.wg.Wait()
	})
	return nil
}

// spawn runs fn in a goroutine that Close waits for. It returns false,
// without running fn, once Close has begun.
func (h *Handler) spawn(fn func()) bool {
	h.spawnMu.Lock()
	defer h.spawnMu.Unlock()
	if h.closing {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		fn()
	}()
	return true
}

// DisconnectKey closes every Socket.IO connection made with the key (used
// when the key is revoked). Its operations in flight are cancelled.
func (h *Handler) DisconnectKey(keyID string) { h.sio.disconnectKey(keyID) }

// authenticate turns an API key into a Principal. An empty key is refused
// without asking the authenticator.
func (h *Handler) authenticate(ctx context.Context, key string) (auth.Principal, error) {
	if key == "" {
		return auth.Principal{}, errMissingKey
	}
	return h.authn.Authenticate(ctx, key)
}
