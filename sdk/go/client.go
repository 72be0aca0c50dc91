package sdbx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultTimeout    = 60 * time.Second
	DefaultMaxRetries = 3
	DefaultRetryDelay = time.Second
)

const (
	// maxRetryDelay caps the exponential backoff between two attempts.
	maxRetryDelay = 30 * time.Second
	// maxResponseBytes bounds a JSON response body read into memory.
	maxResponseBytes = 64 << 20
	// maxErrorBytes bounds an error response body.
	maxErrorBytes = 64 << 10
	userAgent     = "sdbx-go-sdk"
)

// Config configures a Client. Only ServerURL is required.
type Config struct {
	// APIKey is sent as "Authorization: Bearer <key>". Every call except
	// Health needs it.
	APIKey string
	// ServerURL is the server's base URL, e.g. "http://127.0.0.1:3000"
	// (http or https; a path prefix is kept).
	ServerURL string
	// Timeout bounds each call, retries included (default 60s). RunCommand
	// and RunCode are bounded by the run's own timeout plus Timeout instead,
	// RunBatch by its jobs' timeouts plus Timeout; for WriteFile and
	// ReadFile, Timeout bounds only the wait for the answer, not the
	// transfer.
	Timeout time.Duration
	// MaxRetries is how often a failed call that is safe to repeat (GET,
	// DELETE) is retried after a connection failure, 503 or 429
	// (default 3; negative: never). Creating a sandbox or a context,
	// running a command, code or a batch, and writing a file are never
	// retried.
	MaxRetries int
	// RetryDelay is the wait before the first retry; it doubles on each
	// further retry, up to 30s (default 1s). A 429's Retry-After wins when
	// it is longer.
	RetryDelay time.Duration
	// Logger receives debug logs of requests and warnings about retries
	// (default: discard).
	Logger *slog.Logger
	// HTTPClient sends the requests (default: a client using
	// http.DefaultTransport). Its own Timeout, if any, also applies.
	HTTPClient *http.Client
}

// Client talks to one sdbx server over HTTP. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	apiKey     string
	timeout    time.Duration
	maxRetries int
	retryDelay time.Duration
	log        *slog.Logger
	http       *http.Client
}

// New returns a Client for cfg. It fails when ServerURL is not an http or
// https URL; it does not contact the server (see Health).
func New(cfg Config) (*Client, error) {
	if cfg.ServerURL == "" {
		return nil, &Error{Code: CodeInvalidArgument, Message: "ServerURL: must not be empty"}
	}
	u, err := url.Parse(cfg.ServerURL)
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("ServerURL %q: %v", cfg.ServerURL, err)}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("ServerURL %q: scheme must be http or https", cfg.ServerURL)}
	}
	if u.Host == "" {
		return nil, &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("ServerURL %q: no host", cfg.ServerURL)}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("ServerURL %q: must not have a query, fragment or user info", cfg.ServerURL)}
	}
	if strings.ContainsAny(cfg.APIKey, "\r\n") {
		return nil, &Error{Code: CodeInvalidArgument, Message: "APIKey: must not contain a line break"}
	}
	if cfg.Timeout < 0 {
		return nil, &Error{Code: CodeInvalidArgument, Message: "Timeout: must not be negative"}
	}
	if cfg.RetryDelay < 0 {
		return nil, &Error{Code: CodeInvalidArgument, Message: "RetryDelay: must not be negative"}
	}
	c := &Client{
		base:       u,
		apiKey:     cfg.APIKey,
		timeout:    cfg.Timeout,
		maxRetries: cfg.MaxRetries,
		retryDelay: cfg.RetryDelay,
		log:        cfg.Logger,
		http:       cfg.HTTPClient,
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.retryDelay == 0 {
		c.retryDelay = DefaultRetryDelay
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	return c, nil
}

// request describes one API call.
type request struct {
	method string
	// path holds the segments after /v1, unescaped.
	path  []string
	query url.Values
	body  any
	// content, when set, is sent raw as the body instead of JSON (file
	// uploads), with contentLength when it is not negative.
	content       io.Reader
	contentLength int64
	// accept is the Accept header (default application/json).
	accept string
	// header holds further request headers (a WebSocket upgrade's).
	header http.Header
	// kind and sandboxID pick the typed error of a failure.
	kind      opKind
	sandboxID string
}

func (r *request) op() string { return r.method + " /v1/" + strings.Join(r.path, "/") }

func (r *request) idempotent() bool {
	return r.method == http.MethodGet || r.method == http.MethodDelete
}

// url returns the request's URL under base, escaping each path segment.
func (c *Client) url(r *request) string {
	u := *c.base
	escaped := make([]string, 0, len(r.path)+1)
	raw := make([]string, 0, len(r.path)+1)
	escaped = append(escaped, "v1")
	raw = append(raw, "v1")
	for _, seg := range r.path {
		escaped = append(escaped, url.PathEscape(seg))
		raw = append(raw, seg)
	}
	prefix := strings.TrimSuffix(u.EscapedPath(), "/")
	u.RawPath = prefix + "/" + strings.Join(escaped, "/")
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + strings.Join(raw, "/")
	u.RawQuery = r.query.Encode()
	return u.String()
}

// call performs r with the client's timeout and retry policy and decodes a
// successful JSON response into out (if out is not nil).
func (c *Client) call(ctx context.Context, r *request, out any) error {
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("%s: encode request: %v", r.op(), err)}
		}
	}
	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.retry(ctx, callCtx, r, c.timeout, func() error { return c.attempt(callCtx, r, body, out) })
}

// retry runs attempt under r's retry policy until it succeeds, fails for
// good, or callCtx (derived from ctx, bounded by limit) ends.
func (c *Client) retry(ctx, callCtx context.Context, r *request, limit time.Duration, attempt func() error) error {
	connFailed := false
	for n := 0; ; n++ {
		err := attempt()
		if err == nil {
			return nil
		}
		if callCtx.Err() != nil {
			return c.contextError(ctx, r.op(), limit)
		}
		var ce *ConnectionError
		if errors.As(err, &ce) {
			connFailed = true
		}
		// A DELETE whose earlier attempt may have reached the server before
		// the connection broke: "not found" now means it was done.
		if r.method == http.MethodDelete && connFailed && n > 0 && errors.Is(err, ErrNotFound) {
			return nil
		}
		if !r.idempotent() || n >= c.maxRetries || !retryable(err) {
			return err
		}
		delay := c.backoff(n)
		var rl *RateLimitError
		if errors.As(err, &rl) && rl.RetryAfter > delay {
			delay = rl.RetryAfter
		}
		c.log.WarnContext(ctx, "sdbx: retrying", "op", r.op(), "attempt", n+1, "delay", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-callCtx.Done():
			t.Stop()
			return c.contextError(ctx, r.op(), limit)
		case <-t.C:
		}
	}
}

// retryable reports whether a failure of an idempotent call may be retried.
func retryable(err error) bool {
	var ce *ConnectionError
	if errors.As(err, &ce) {
		return true
	}
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode == http.StatusServiceUnavailable || e.StatusCode == http.StatusTooManyRequests
	}
	return false
}

func (c *Client) backoff(attempt int) time.Duration {
	d := c.retryDelay
	for i := 0; i < attempt && d < maxRetryDelay; i++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

// contextError is the error of a call whose context ended: the caller's
// own cancellation is returned as is (wrapped), a deadline as a
// *TimeoutError.
func (c *Client) contextError(parent context.Context, op string, limit time.Duration) error {
	switch err := parent.Err(); {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", op, err)
	case err != nil:
		return &TimeoutError{Code: CodeTimeout, Message: op + ": context deadline exceeded", cause: err}
	default:
		return &TimeoutError{Code: CodeTimeout, Message: fmt.Sprintf("%s: no response within %v", op, limit), cause: context.DeadlineExceeded}
	}
}

// attempt sends r once and decodes the response.
func (c *Client) attempt(ctx context.Context, r *request, body []byte, out any) error {
	resp, err := c.send(ctx, r, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes))
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return connectionError(r.op()+": read response", err)
	}
	if len(data) > maxResponseBytes {
		return &Error{Code: CodeInternal, Message: fmt.Sprintf("%s: response larger than %d bytes", r.op(), maxResponseBytes), StatusCode: resp.StatusCode}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &Error{Code: CodeInternal, Message: fmt.Sprintf("%s: decode response: %v", r.op(), err), StatusCode: resp.StatusCode}
	}
	return nil
}

// send sends r once. It returns the response when its status is 2xx, and
// the typed error otherwise (the body of a failed response is consumed).
func (c *Client) send(ctx context.Context, r *request, body []byte) (*http.Response, error) {
	var rd io.Reader
	switch {
	case body != nil:
		rd = bytes.NewReader(body)
	case r.content != nil:
		rd = r.content
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.url(r), rd)
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("%s: %v", r.op(), err)}
	}
	switch {
	case body != nil:
		req.Header.Set("Content-Type", "application/json")
	case r.content != nil:
		req.Header.Set("Content-Type", "application/octet-stream")
		switch {
		case r.contentLength == 0:
			req.Body, req.GetBody = http.NoBody, nil
			req.ContentLength = 0
		case r.contentLength > 0:
			req.ContentLength = r.contentLength
		}
	}
	accept := r.accept
	if accept == "" {
		accept = "application/json"
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", userAgent)
	for k, v := range r.header {
		req.Header[k] = v
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, connectionError(r.op(), err)
	}
	c.log.DebugContext(ctx, "sdbx: request", "op", r.op(), "status", resp.StatusCode, "duration", time.Since(start))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 || resp.StatusCode == http.StatusSwitchingProtocols && r.header.Get("Upgrade") != "" {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, c.responseError(r, resp)
}

// responseError decodes an error response.
func (c *Client) responseError(r *request, resp *http.Response) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	if err != nil && len(data) == 0 {
		return connectionError(r.op()+": read error response", err)
	}
	var env struct {
		Error *wireError `json:"error"`
	}
	var we wireError
	if json.Unmarshal(data, &env) == nil && env.Error != nil && env.Error.Code != "" {
		we = *env.Error
	} else {
		// Not the server's error body (a proxy's page, say).
		we.Message = fmt.Sprintf("%s: %s", r.op(), resp.Status)
	}
	if we.Message == "" {
		we.Message = fmt.Sprintf("%s: %s", r.op(), resp.Status)
	}
	return apiError(r.kind, r.sandboxID, we, resp.StatusCode, retryAfter(resp.Header.Get("Retry-After")))
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// checkID refuses sandbox and template ids that cannot name a resource.
func checkID(kind opKind, field, id string) error {
	var msg string
	switch id {
	case "":
		msg = field + ": must not be empty"
	case ".", "..":
		msg = fmt.Sprintf("%s %q: not a valid id", field, id)
	default:
		return nil
	}
	if kind == opSandbox {
		return &SandboxError{Code: CodeInvalidArgument, Message: msg, SandboxID: id}
	}
	return &Error{Code: CodeInvalidArgument, Message: msg}
}

// Health asks the server whether it is up (no API key needed).
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	if err := c.call(ctx, &request{method: http.MethodGet, path: []string{"health"}}, &h); err != nil {
		return nil, err
	}
	return &h, nil
}
