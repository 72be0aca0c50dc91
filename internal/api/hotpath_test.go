package api

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sdbx/sdbx/internal/api/apitest"
	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// BenchmarkRunCodeHandler measures the server's own work for one warm
// runCode over HTTP (authentication, routing, decoding the body, encoding
// the result), with a service that answers at once:
//
//	go test ./internal/api -run '^$' -bench RunCodeHandler -benchmem
func BenchmarkRunCodeHandler(b *testing.B) {
	svc := apitest.NewService(b.TempDir())
	authn := apitest.Authenticator{keyA: auth.Principal{KeyID: "ka", Tenant: "tenant-a"}}
	h, err := NewHandler(svc, authn, nil, "v-test")
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	sb, err := svc.Create(b.Context(), "tenant-a", sandbox.CreateOptions{TemplateID: "python-3-11"})
	if err != nil {
		b.Fatal(err)
	}
	svc.Code = func(ctx context.Context, req sandbox.RunCodeRequest, onEvent func(sandbox.CodeEvent)) (sandbox.ExecutionResult, error) {
		return sandbox.ExecutionResult{
			Execution: sandbox.Execution{Logs: sandbox.Logs{Stdout: []string{}, Stderr: []string{}}, Results: []sandbox.Result{}, ExecutionCount: 42},
			Metadata:  sandbox.ExecutionMetadata{ContextID: "ctx-0123456789ab", Language: "python", SandboxID: sb.ID, DurationMs: 1},
		}, nil
	}
	path := "/v1/sandboxes/" + sb.ID + "/code"
	body := []byte(`{"code":"x += 1"}`)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+keyA)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

// TestWriteJSON checks that an answer is json.Marshal's bytes and a
// newline, and that a value that cannot be encoded becomes a 500 with
// the internal error body.
func TestWriteJSON(t *testing.T) {
	v := map[string]any{"html": "<a&b>", "n": 1.5, "s": []string{"\u2028", "\xff"}}
	rec := httptest.NewRecorder()
	writeJSON(rec, http.StatusCreated, v)
	want, _ := json.Marshal(v)
	if rec.Code != http.StatusCreated || rec.Body.String() != string(want)+"\n" || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q %q, want 201 %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body, want)
	}
	rec = httptest.NewRecorder()
	writeJSON(rec, http.StatusOK, map[string]any{"bad": math.Inf(1)})
	if rec.Code != http.StatusInternalServerError || rec.Body.String() != `{"error":{"code":"internal","message":"internal error"}}`+"\n" {
		t.Fatalf("unencodable value: %d %q", rec.Code, rec.Body)
	}
}
