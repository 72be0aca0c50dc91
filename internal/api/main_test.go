package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/sdbx/sdbx/internal/api/apitest"
	"github.com/sdbx/sdbx/internal/auth"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Keys of the test authenticator: two tenants.
const (
	keyA = "key-tenant-a"
	keyB = "key-tenant-b"
)

// env is a Handler with the fake service, served on 127.0.0.1.
type env struct {
	svc *apitest.Service
	h   *Handler
	srv *httptest.Server
	log *logBuf
}

func newEnv(t *testing.T) *env {
	return newEnvLimits(t, DefaultLimits())
}

func newEnvLimits(t *testing.T, limits Limits) *env {
	t.Helper()
	e := &env{svc: apitest.NewService(t.TempDir()), log: &logBuf{}}
	authn := apitest.Authenticator{
		keyA: auth.Principal{KeyID: "ka", Tenant: "tenant-a"},
		keyB: auth.Principal{KeyID: "kb", Tenant: "tenant-b"},
	}
	logger := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h, err := NewHandlerWithLimits(e.svc, authn, logger, "v-test", limits)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	e.srv = httptest.NewServer(h)
	t.Cleanup(func() {
		_ = h.Close()
		e.srv.Close()
	})
	return e
}

// do sends a request with key (if not empty) as a Bearer token.
func (e *env) do(t *testing.T, method, path, key, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// decode reads a JSON response body into a generic value.
func decode(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return v
}

// errorOf returns code and message of an {"error": {...}} body.
func errorOf(t *testing.T, body map[string]any) (code, message string) {
	t.Helper()
	eo, ok := body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %v", body)
	}
	code, _ = eo["code"].(string)
	message, _ = eo["message"].(string)
	return code, message
}

// logBuf collects log output of concurrent loggers.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
