package sdbx

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// newTestClient starts h on a loopback HTTP server and returns a client for
// it with fast retries.
func newTestClient(t *testing.T, h http.Handler, mod ...func(*Config)) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := Config{ServerURL: srv.URL, APIKey: "test-key", RetryDelay: time.Millisecond}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" means valid
	}{
		{"plain", Config{ServerURL: "http://127.0.0.1:3000"}, ""},
		{"https with prefix", Config{ServerURL: "https://example.test/sdbx/"}, ""},
		{"empty", Config{}, "ServerURL: must not be empty"},
		{"ftp", Config{ServerURL: "ftp://127.0.0.1"}, "scheme must be http or https"},
		{"no scheme", Config{ServerURL: "127.0.0.1:3000"}, "ServerURL"},
		{"no host", Config{ServerURL: "http://"}, "no host"},
		{"bad escape", Config{ServerURL: "http://x/%zz"}, "ServerURL"},
		{"query", Config{ServerURL: "http://x/?a=1"}, "query"},
		{"negative timeout", Config{ServerURL: "http://x", Timeout: -1}, "Timeout"},
		{"negative delay", Config{ServerURL: "http://x", RetryDelay: -1}, "RetryDelay"},
		{"key with newline", Config{ServerURL: "http://x", APIKey: "a\nb"}, "APIKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.want == "" {
				if err != nil || c == nil {
					t.Fatalf("New(%+v) = %v, %v; want a client", tt.cfg, c, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New(%+v) succeeded; want error containing %q", tt.cfg, tt.want)
			}
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New(%+v) = %v; want ErrInvalidArgument containing %q", tt.cfg, err, tt.want)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	c, err := New(Config{ServerURL: "http://x"})
	if err != nil {
		t.Fatal(err)
	}
	if c.timeout != DefaultTimeout || c.maxRetries != DefaultMaxRetries || c.retryDelay != DefaultRetryDelay {
		t.Fatalf("defaults = %v/%d/%v", c.timeout, c.maxRetries, c.retryDelay)
	}
	c, err = New(Config{ServerURL: "http://x", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if c.maxRetries != 0 {
		t.Fatalf("MaxRetries -1 gave %d retries, want 0", c.maxRetries)
	}
}

func TestRequestsCarryPathAuthAndQuery(t *testing.T) {
	type seen struct{ method, uri, auth, accept string }
	got := make(chan seen, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.RequestURI, r.Header.Get("Authorization"), r.Header.Get("Accept")}
		switch {
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		case strings.Contains(r.URL.Path, "/templates"):
			writeJSON(w, 200, map[string]any{"templates": []any{}, "total": 0, "page": 2, "pageSize": 5})
		default:
			writeJSON(w, 200, map[string]any{"id": "x"})
		}
	})
	srv := httptest.NewServer(http.StripPrefix("/prefix", h))
	defer srv.Close()
	c, err := New(Config{ServerURL: srv.URL + "/prefix/", APIKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
		want seen
	}{
		{"get sandbox escapes id", func() error { _, err := c.GetSandbox(ctx, "a/b c"); return err },
			seen{"GET", "/prefix/v1/sandboxes/a%2Fb%20c", "Bearer k1", "application/json"}},
		{"delete", func() error { return c.DeleteSandbox(ctx, "sb-1") },
			seen{"DELETE", "/prefix/v1/sandboxes/sb-1", "Bearer k1", "application/json"}},
		{"templates page", func() error { _, err := c.ListTemplates(ctx, 2, 5); return err },
			seen{"GET", "/prefix/v1/templates?page=2&pageSize=5", "Bearer k1", "application/json"}},
		{"templates defaults", func() error { _, err := c.ListTemplates(ctx, 0, 0); return err },
			seen{"GET", "/prefix/v1/templates", "Bearer k1", "application/json"}},
		{"template", func() error { _, err := c.GetTemplate(ctx, "python-3-11"); return err },
			seen{"GET", "/prefix/v1/templates/python-3-11", "Bearer k1", "application/json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err != nil {
				t.Fatalf("call: %v", err)
			}
			if s := <-got; s != tt.want {
				t.Fatalf("request = %+v, want %+v", s, tt.want)
			}
		})
	}
}

func TestEmptyAndDotIDsAreRefusedLocally(t *testing.T) {
	var hits atomic.Int32
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	for _, id := range []string{"", ".", ".."} {
		_, err := c.GetSandbox(t.Context(), id)
		var se *SandboxError
		if !errors.As(err, &se) || !errors.Is(err, ErrInvalidArgument) || !strings.Contains(se.Message, "sandboxId") {
			t.Errorf("GetSandbox(%q) = %v; want SandboxError invalid_argument naming sandboxId", id, err)
		}
		if _, err := c.GetTemplate(t.Context(), id); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("GetTemplate(%q) = %v; want ErrInvalidArgument", id, err)
		}
	}
	if err := c.DeleteSandbox(t.Context(), ""); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("DeleteSandbox(\"\") = %v", err)
	}
	if _, err := c.RunCommand(t.Context(), "", Command{Command: "true"}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("RunCommand(\"\") = %v", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("server saw %d requests, want 0", n)
	}
}

func TestCreateSandboxBodyAndDecoding(t *testing.T) {
	var body map[string]any
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/sandboxes" || r.Header.Get("Content-Type") != "application/json" {
			writeError(w, 400, "invalid_argument", "unexpected request "+r.Method+" "+r.URL.Path)
			return
		}
		body = nil
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeError(w, 400, "invalid_argument", err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"sandbox":{"id":"sb-1","name":"n","templateId":"python-3-11","status":"ready",
			"envVars":{"A":"1"},"createdAt":"2026-11-26T09:00:00.123Z","updatedAt":"2026-11-26T09:00:01Z",
			"expiresAt":"2026-11-26T10:00:00Z","futureField":1}}`)
	}))
	tests := []struct {
		name string
		opts CreateSandboxOptions
		want map[string]any
	}{
		{"minimal", CreateSandboxOptions{TemplateID: "python-3-11"},
			map[string]any{"templateId": "python-3-11"}},
		{"full", CreateSandboxOptions{TemplateID: "t", Name: "n", Expiry: time.Hour, Env: map[string]string{"A": "1"}},
			map[string]any{"templateId": "t", "name": "n", "expiryTime": float64(3600000), "initialEnvVars": map[string]any{"A": "1"}}},
		{"sub-millisecond expiry rounds up", CreateSandboxOptions{TemplateID: "t", Expiry: 1500 * time.Microsecond},
			map[string]any{"templateId": "t", "expiryTime": float64(2)}},
		{"negative expiry is sent for the server to refuse", CreateSandboxOptions{TemplateID: "t", Expiry: -time.Second},
			map[string]any{"templateId": "t", "expiryTime": float64(-1000)}},
		{"empty template id is sent for the server to refuse", CreateSandboxOptions{},
			map[string]any{"templateId": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb, err := c.CreateSandbox(t.Context(), tt.opts)
			if err != nil {
				t.Fatalf("CreateSandbox: %v", err)
			}
			gotJSON, _ := json.Marshal(body)
			wantJSON, _ := json.Marshal(tt.want)
			if string(gotJSON) != string(wantJSON) {
				t.Fatalf("body = %s, want %s", gotJSON, wantJSON)
			}
			wantCreated := time.Date(2026, 11, 26, 9, 0, 0, 123e6, time.UTC)
			if sb.ID != "sb-1" || sb.Status != StatusReady || sb.EnvVars["A"] != "1" || !sb.CreatedAt.Equal(wantCreated) ||
				sb.ExpiresAt == nil || !sb.ExpiresAt.Equal(wantCreated.Add(time.Hour-123*time.Millisecond)) {
				t.Fatalf("sandbox = %+v", sb)
			}
		})
	}
}

func TestListAndHealthDecoding(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/health":
			writeJSON(w, 200, map[string]any{"status": "ok", "version": "v9"})
		case "/v1/sandboxes":
			io.WriteString(w, `{"sandboxes":[{"id":"a","status":"ready"},{"id":"b","status":"terminated"}]}`)
		}
	}))
	h, err := c.Health(t.Context())
	if err != nil || h.Status != "ok" || h.Version != "v9" {
		t.Fatalf("Health = %+v, %v", h, err)
	}
	list, err := c.ListSandboxes(t.Context())
	if err != nil || len(list) != 2 || list[0].ID != "a" || list[1].Status != StatusTerminated {
		t.Fatalf("ListSandboxes = %+v, %v", list, err)
	}
}

func TestErrorMapping(t *testing.T) {
	type want struct {
		typ        string // "sandbox", "timeout", "ratelimit", "error"
		kind       error
		code       string
		msg        string
		status     int
		retryAfter time.Duration
	}
	tests := []struct {
		name    string
		sandbox bool // call a sandbox operation (GetSandbox) or not (GetTemplate)
		respond func(w http.ResponseWriter)
		want    want
	}{
		{"not found on sandbox", true, func(w http.ResponseWriter) { writeError(w, 404, "not_found", "sandbox sb-x: not found") },
			want{"sandbox", ErrNotFound, "not_found", "sandbox sb-x: not found", 404, 0}},
		{"not found on template", false, func(w http.ResponseWriter) { writeError(w, 404, "not_found", "template x: not found") },
			want{"error", ErrNotFound, "not_found", "template x: not found", 404, 0}},
		{"conflict", true, func(w http.ResponseWriter) { writeError(w, 409, "conflict", "sandbox sb-x: not running") },
			want{"sandbox", ErrConflict, "conflict", "sandbox sb-x: not running", 409, 0}},
		{"invalid argument", true, func(w http.ResponseWriter) { writeError(w, 400, "invalid_argument", "name: too long") },
			want{"sandbox", ErrInvalidArgument, "invalid_argument", "name: too long", 400, 0}},
		{"unauthenticated", true, func(w http.ResponseWriter) { writeError(w, 401, "unauthenticated", "no API key") },
			want{"error", ErrUnauthenticated, "unauthenticated", "no API key", 401, 0}},
		{"permission denied", false, func(w http.ResponseWriter) { writeError(w, 403, "permission_denied", "nope") },
			want{"error", ErrPermissionDenied, "permission_denied", "nope", 403, 0}},
		{"timeout", true, func(w http.ResponseWriter) { writeError(w, 408, "timeout", "took too long") },
			want{"timeout", ErrTimeout, "timeout", "took too long", 408, 0}},
		{"rate limited with retryAfterMs", false, func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 429, map[string]any{"error": map[string]any{"code": "rate_limited", "message": "slow down", "retryAfterMs": 1500}})
		}, want{"ratelimit", ErrRateLimited, "rate_limited", "slow down", 429, 1500 * time.Millisecond}},
		{"rate limited with header only", false, func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "2")
			writeError(w, 429, "rate_limited", "slow down")
		}, want{"ratelimit", ErrRateLimited, "rate_limited", "slow down", 429, 2 * time.Second}},
		{"disk full", true, func(w http.ResponseWriter) {
			writeError(w, 507, "resource_exhausted", "write /workspace/f: disk quota exceeded")
		}, want{"sandbox", ErrResourceExhausted, "resource_exhausted", "write /workspace/f: disk quota exceeded", 507, 0}},
		{"507 without JSON", false, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(507)
		}, want{"error", ErrResourceExhausted, "resource_exhausted", "GET /v1/templates/x: 507 Insufficient Storage", 507, 0}},
		{"internal", true, func(w http.ResponseWriter) { writeError(w, 500, "internal", "internal error") },
			want{"error", ErrInternal, "internal", "internal error", 500, 0}},
		{"unknown code is internal", false, func(w http.ResponseWriter) { writeError(w, 500, "exploded", "boom") },
			want{"error", ErrInternal, "exploded", "boom", 500, 0}},
		{"proxy page without JSON", true, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			io.WriteString(w, "<html>bad gateway</html>")
		}, want{"error", ErrUnavailable, "unavailable", "GET /v1/sandboxes/sb-x: 502 Bad Gateway", 502, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tt.respond(w) }),
				func(cfg *Config) { cfg.MaxRetries = -1 })
			var err error
			if tt.sandbox {
				_, err = c.GetSandbox(t.Context(), "sb-x")
			} else {
				_, err = c.GetTemplate(t.Context(), "x")
			}
			if err == nil {
				t.Fatal("call succeeded; want an error")
			}
			if !errors.Is(err, tt.want.kind) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.want.kind)
			}
			for _, other := range []error{ErrNotFound, ErrInvalidArgument, ErrUnauthenticated, ErrPermissionDenied,
				ErrRateLimited, ErrResourceExhausted, ErrTimeout, ErrConflict, ErrUnavailable, ErrInternal} {
				if other != tt.want.kind && errors.Is(err, other) {
					t.Errorf("error also matches %v", other)
				}
			}
			if err.Error() != tt.want.msg {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.want.msg)
			}
			var base *Error
			if !errors.As(err, &base) || base.Code != tt.want.code || base.StatusCode != tt.want.status {
				t.Errorf("as *Error = %+v, want code %q status %d", base, tt.want.code, tt.want.status)
			}
			var (
				se *SandboxError
				te *TimeoutError
				re *RateLimitError
			)
			gotTyp := "error"
			switch {
			case errors.As(err, &se):
				gotTyp = "sandbox"
				if se.SandboxID != "sb-x" {
					t.Errorf("SandboxID = %q", se.SandboxID)
				}
			case errors.As(err, &te):
				gotTyp = "timeout"
			case errors.As(err, &re):
				gotTyp = "ratelimit"
				if re.RetryAfter != tt.want.retryAfter {
					t.Errorf("RetryAfter = %v, want %v", re.RetryAfter, tt.want.retryAfter)
				}
			}
			if gotTyp != tt.want.typ {
				t.Errorf("error type %T (%s), want %s", err, gotTyp, tt.want.typ)
			}
		})
	}
}

func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		name       string
		call       func(c *Client, ctx context.Context) error
		failures   int // how many leading requests fail
		failStatus int
		failCode   string
		maxRetries int
		wantReqs   int32
		wantOK     bool
	}{
		{"GET retried on 503", getSB, 2, 503, "unavailable", 3, 3, true},
		{"GET retried on 429", getSB, 1, 429, "rate_limited", 3, 2, true},
		{"GET gives up after MaxRetries", getSB, 10, 503, "unavailable", 2, 3, false},
		{"GET never retried with MaxRetries -1", getSB, 1, 503, "unavailable", -1, 1, false},
		{"GET not retried on 404", getSB, 1, 404, "not_found", 3, 1, false},
		{"GET not retried on 500", getSB, 1, 500, "internal", 3, 1, false},
		{"GET not retried on 507", getSB, 1, 507, "resource_exhausted", 3, 1, false},
		{"DELETE retried on 503", func(c *Client, ctx context.Context) error { return c.DeleteSandbox(ctx, "sb-1") },
			1, 503, "unavailable", 3, 2, true},
		{"create never retried", func(c *Client, ctx context.Context) error {
			_, err := c.CreateSandbox(ctx, CreateSandboxOptions{TemplateID: "t"})
			return err
		}, 1, 503, "unavailable", 3, 1, false},
		{"command never retried", func(c *Client, ctx context.Context) error {
			_, err := c.RunCommand(ctx, "sb-1", Command{Command: "true"})
			return err
		}, 1, 429, "rate_limited", 3, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if int(n.Add(1)) <= tt.failures {
					if tt.failStatus == 429 {
						w.Header().Set("Retry-After", "0")
					}
					writeError(w, tt.failStatus, tt.failCode, "failure")
					return
				}
				switch r.Method {
				case http.MethodDelete:
					w.WriteHeader(204)
				case http.MethodPost:
					writeJSON(w, 201, map[string]any{"sandbox": map[string]any{"id": "sb-1"}})
				default:
					writeJSON(w, 200, map[string]any{"id": "sb-1"})
				}
			}), func(cfg *Config) { cfg.MaxRetries = tt.maxRetries })
			err := tt.call(c, t.Context())
			if (err == nil) != tt.wantOK {
				t.Fatalf("err = %v, want ok=%v", err, tt.wantOK)
			}
			if got := n.Load(); got != tt.wantReqs {
				t.Fatalf("server saw %d requests, want %d", got, tt.wantReqs)
			}
		})
	}
}

func getSB(c *Client, ctx context.Context) error {
	_, err := c.GetSandbox(ctx, "sb-1")
	return err
}

// dropFirst closes the connection without an answer for the first n
// requests, then serves next.
func dropFirst(n int32, count *atomic.Int32, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if count.Add(1) <= n {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		next(w, r)
	}
}

func TestRetryOnConnectionFailure(t *testing.T) {
	var n atomic.Int32
	c := newTestClient(t, dropFirst(2, &n, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": "sb-1"})
	}))
	sb, err := c.GetSandbox(t.Context(), "sb-1")
	if err != nil || sb.ID != "sb-1" {
		t.Fatalf("GetSandbox = %+v, %v", sb, err)
	}
	if n.Load() != 3 {
		t.Fatalf("requests = %d, want 3", n.Load())
	}
}

func TestDeleteAfterLostResponseTreatsNotFoundAsDone(t *testing.T) {
	var n atomic.Int32
	c := newTestClient(t, dropFirst(1, &n, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 404, "not_found", "sandbox sb-1: not found")
	}))
	if err := c.DeleteSandbox(t.Context(), "sb-1"); err != nil {
		t.Fatalf("DeleteSandbox = %v, want nil after a lost first response", err)
	}
	// Without a lost response, not found is reported.
	if err := c.DeleteSandbox(t.Context(), "sb-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteSandbox = %v, want ErrNotFound", err)
	}
}

func TestPostNotRetriedOnConnectionFailure(t *testing.T) {
	var n atomic.Int32
	c := newTestClient(t, dropFirst(1, &n, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 201, map[string]any{"sandbox": map[string]any{"id": "sb-1"}})
	}))
	_, err := c.CreateSandbox(t.Context(), CreateSandboxOptions{TemplateID: "t"})
	var ce *ConnectionError
	if !errors.As(err, &ce) || !errors.Is(err, ErrUnavailable) || ce.Code != CodeUnavailable {
		t.Fatalf("CreateSandbox = %v (%T), want ConnectionError", err, err)
	}
	if n.Load() != 1 {
		t.Fatalf("requests = %d, want 1", n.Load())
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := New(Config{ServerURL: "http://" + addr, RetryDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Health(t.Context())
	var ce *ConnectionError
	var ne net.Error
	if !errors.As(err, &ce) || !errors.Is(err, ErrUnavailable) || !errors.As(err, &ne) {
		t.Fatalf("Health = %v (%T), want ConnectionError wrapping a net.Error", err, err)
	}
	if !strings.Contains(err.Error(), "GET /v1/health") {
		t.Fatalf("message %q does not name the operation", err)
	}
}

func TestContextCancelAndTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}), func(cfg *Config) { cfg.Timeout = 50 * time.Millisecond })

	_, err := c.GetSandbox(t.Context(), "sb-1")
	var te *TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetSandbox past Timeout = %v (%T), want TimeoutError", err, err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = c.GetSandbox(ctx, "sb-1")
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("GetSandbox with cancelled ctx = %v, want context.Canceled only", err)
	}
}
