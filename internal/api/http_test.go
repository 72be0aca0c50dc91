package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

func TestHealthNeedsNoKey(t *testing.T) {
	e := newEnv(t)
	resp := e.do(t, "GET", "/v1/health", "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	body := decode(t, resp)
	if body["status"] != "ok" || body["version"] != "v-test" {
		t.Fatalf("body %v", body)
	}
}

func TestAuthHeaders(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"bearer", map[string]string{"Authorization": "Bearer " + keyA}, 200},
		{"bearer lower-case scheme", map[string]string{"Authorization": "bearer " + keyA}, 200},
		{"x-api-key", map[string]string{"X-API-Key": keyA}, 200},
		{"no key", nil, 401},
		{"unknown bearer", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"unknown x-api-key", map[string]string{"X-API-Key": "nope"}, 401},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, 401},
		{"basic scheme", map[string]string{"Authorization": "Basic " + keyA}, 401},
		{"bearer wins over x-api-key", map[string]string{"Authorization": "Bearer nope", "X-API-Key": keyA}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", e.srv.URL+"/v1/sandboxes", nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == 401 {
				if code, msg := errorOf(t, decode(t, resp)); code != "unauthenticated" || msg == "" {
					t.Fatalf("error %q %q", code, msg)
				}
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
		})
	}
}

func TestSandboxLifecycle(t *testing.T) {
	e := newEnv(t)

	resp := e.do(t, "POST", "/v1/sandboxes", keyA,
		`{"templateId":"python-3-11","name":"proj","expiryTime":3600000,"initialEnvVars":{"DEBUG":"true"}}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: status %d: %v", resp.StatusCode, decode(t, resp))
	}
	created := decode(t, resp)["sandbox"].(map[string]any)
	id := created["id"].(string)
	if created["name"] != "proj" || created["templateId"] != "python-3-11" || created["status"] != "ready" {
		t.Fatalf("created %v", created)
	}
	if created["envVars"].(map[string]any)["DEBUG"] != "true" {
		t.Fatalf("envVars %v", created["envVars"])
	}
	created0, _ := time.Parse(time.RFC3339Nano, created["createdAt"].(string))
	expires, err := time.Parse(time.RFC3339Nano, created["expiresAt"].(string))
	if err != nil || expires.Sub(created0) != time.Hour {
		t.Fatalf("expiresAt %v (createdAt %v): %v", created["expiresAt"], created["createdAt"], err)
	}
	if !strings.HasSuffix(created["createdAt"].(string), "Z") {
		t.Errorf("createdAt not UTC: %v", created["createdAt"])
	}
	if _, ok := created["error"]; !ok {
		t.Error(`"error" field missing`)
	}

	resp = e.do(t, "GET", "/v1/sandboxes/"+id, keyA, "")
	if got := decode(t, resp); resp.StatusCode != 200 || got["id"] != id {
		t.Fatalf("get: %d %v", resp.StatusCode, got)
	}

	resp = e.do(t, "GET", "/v1/sandboxes", keyA, "")
	list := decode(t, resp)["sandboxes"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["id"] != id {
		t.Fatalf("list %v", list)
	}

	// Another tenant sees nothing of it.
	resp = e.do(t, "GET", "/v1/sandboxes", keyB, "")
	if list := decode(t, resp)["sandboxes"]; fmt.Sprint(list) != "[]" {
		t.Fatalf("tenant b lists %v", list)
	}
	resp = e.do(t, "GET", "/v1/sandboxes/"+id, keyB, "")
	if code, _ := errorOf(t, decode(t, resp)); resp.StatusCode != 404 || code != "not_found" {
		t.Fatalf("tenant b get: %d %s", resp.StatusCode, code)
	}

	resp = e.do(t, "POST", "/v1/sandboxes/"+id+"/commands", keyA, `{"command":"echo \"$DEBUG\"; echo err >&2; exit 4"}`)
	res := decode(t, resp)
	if resp.StatusCode != 200 || res["exitCode"] != 4.0 ||
		fmt.Sprint(res["stdout"]) != "[true]" || fmt.Sprint(res["stderr"]) != "[err]" || res["truncated"] != false {
		t.Fatalf("command: %d %v", resp.StatusCode, res)
	}

	resp = e.do(t, "DELETE", "/v1/sandboxes/"+id, keyA, "")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	resp = e.do(t, "GET", "/v1/sandboxes/"+id, keyA, "")
	code, msg := errorOf(t, decode(t, resp))
	if resp.StatusCode != 404 || code != "not_found" || !strings.Contains(msg, id) {
		t.Fatalf("get after delete: %d %s %s", resp.StatusCode, code, msg)
	}
}

func TestTemplates(t *testing.T) {
	e := newEnv(t)
	resp := e.do(t, "GET", "/v1/templates", keyA, "")
	page := decode(t, resp)
	if resp.StatusCode != 200 || page["page"] != 1.0 || page["pageSize"] != 10.0 || page["total"] != 1.0 {
		t.Fatalf("page %d %v", resp.StatusCode, page)
	}
	tpl := page["templates"].([]any)[0].(map[string]any)
	for _, k := range []string{"id", "name", "language", "version", "description", "dependencies", "defaultEnvVars", "defaultCwd", "status", "builtIn", "createdAt"} {
		if _, ok := tpl[k]; !ok {
			t.Errorf("template lacks %q: %v", k, tpl)
		}
	}
	if fmt.Sprint(tpl["dependencies"]) != "[]" {
		t.Errorf("dependencies %v, want []", tpl["dependencies"])
	}

	resp = e.do(t, "GET", "/v1/templates?page=2&pageSize=1", keyA, "")
	page = decode(t, resp)
	if page["page"] != 2.0 || page["pageSize"] != 1.0 || fmt.Sprint(page["templates"]) != "[]" {
		t.Fatalf("page 2: %v", page)
	}

	resp = e.do(t, "GET", "/v1/templates?page=abc", keyA, "")
	if code, msg := errorOf(t, decode(t, resp)); resp.StatusCode != 400 || code != "invalid_argument" || !strings.Contains(msg, `"page"`) {
		t.Fatalf("bad page: %d %s %s", resp.StatusCode, code, msg)
	}
	resp = e.do(t, "GET", "/v1/templates?pageSize=1000", keyA, "")
	if code, _ := errorOf(t, decode(t, resp)); resp.StatusCode != 400 || code != "invalid_argument" {
		t.Fatalf("pageSize 1000: %d %s", resp.StatusCode, code)
	}

	resp = e.do(t, "GET", "/v1/templates/python-3-11", keyA, "")
	if got := decode(t, resp); resp.StatusCode != 200 || got["id"] != "python-3-11" || got["version"] != "3.11.2" {
		t.Fatalf("get: %d %v", resp.StatusCode, got)
	}
	resp = e.do(t, "GET", "/v1/templates/nope", keyA, "")
	if resp.StatusCode != 404 {
		t.Fatalf("unknown template: %d", resp.StatusCode)
	}
}

func TestRoutingErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/v1/nothing", 404, "not_found", ""},
		{"GET", "/", 404, "not_found", ""},
		{"DELETE", "/v1/templates", 405, "invalid_argument", "GET, HEAD, POST"},
		{"GET", "/v1/sandboxes/sb-1/code", 405, "invalid_argument", "POST"},
		{"GET", "/v1/sandboxes/sb-1/batch", 405, "invalid_argument", "POST"},
		{"DELETE", "/v1/sandboxes/sb-1/contexts", 405, "invalid_argument", "GET, HEAD, POST"},
		{"GET", "/v1/contexts/ctx-1", 405, "invalid_argument", "DELETE"},
		{"POST", "/v1/sandboxes/sb-1/files", 405, "invalid_argument", "GET, HEAD, PUT, DELETE"},
		{"PUT", "/v1/sandboxes/sb-1/files/list", 405, "invalid_argument", "GET, HEAD"},
		{"GET", "/v1/contexts", 404, "not_found", ""},
		{"PUT", "/v1/sandboxes/sb-1", 405, "invalid_argument", "GET, HEAD, DELETE"},
		{"GET", "/v1/sandboxes/sb-1/commands", 405, "invalid_argument", "POST"},
		{"POST", "/v1/health", 405, "invalid_argument", "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp := e.do(t, tt.method, tt.path, keyA, "")
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if code, _ := errorOf(t, decode(t, resp)); code != tt.code {
				t.Fatalf("code %q, want %q", code, tt.code)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Fatalf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestBadBodies(t *testing.T) {
	e := newEnvLimits(t, Limits{MaxBodyBytes: 1024, StreamWindowBytes: 1 << 20})
	tests := []struct {
		name, path, body string
		want             []string // substrings of the message
	}{
		{"malformed", "/v1/sandboxes", `{"templateId":`, []string{"malformed JSON"}},
		{"empty", "/v1/sandboxes", ``, []string{"empty"}},
		{"array", "/v1/sandboxes", `[1]`, []string{"expected a JSON object", "array"}},
		{"null", "/v1/sandboxes", `null`, []string{"expected a JSON object", "null"}},
		{"trailing data", "/v1/sandboxes", `{"templateId":"python-3-11"} {}`, []string{"after the JSON object"}},
		{"unknown field", "/v1/sandboxes", `{"templateId":"python-3-11","bogus":1}`, []string{`"bogus"`, "unknown field"}},
		{"field name case", "/v1/sandboxes", `{"TemplateId":"python-3-11"}`, []string{`"TemplateId"`}},
		{"wrong type", "/v1/sandboxes", `{"templateId":5}`, []string{`"templateId"`, "expected a string", "got a number"}},
		{"fraction", "/v1/sandboxes", `{"templateId":"python-3-11","expiryTime":1.5}`, []string{`"expiryTime"`, "integer", "1.5"}},
		{"overflow", "/v1/sandboxes", `{"templateId":"python-3-11","expiryTime":1e30}`, []string{`"expiryTime"`, "out of range"}},
		{"env value type", "/v1/sandboxes", `{"templateId":"python-3-11","initialEnvVars":{"A":"x","B":true}}`, []string{`"initialEnvVars.B"`, "expected a string", "boolean"}},
		{"env null value", "/v1/sandboxes", `{"templateId":"python-3-11","initialEnvVars":{"A":null}}`, []string{`"initialEnvVars.A"`, "null"}},
		{"env not object", "/v1/sandboxes", `{"templateId":"python-3-11","initialEnvVars":["A"]}`, []string{`"initialEnvVars"`, "object of strings"}},
		{"too large", "/v1/sandboxes", `{"templateId":"` + strings.Repeat("x", 2000) + `"}`, []string{"larger than 1024 bytes"}},
		{"args element type", "/v1/sandboxes/sb-1/commands", `{"args":["ls",1]}`, []string{`"args[1]"`, "expected a string"}},
		{"timeout type", "/v1/sandboxes/sb-1/commands", `{"command":"ls","timeoutMs":"5"}`, []string{`"timeoutMs"`, "integer"}},
		{"command unknown field", "/v1/sandboxes/sb-1/commands", `{"command":"ls","streamId":"x"}`, []string{`"streamId"`, "unknown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do(t, "POST", tt.path, keyA, tt.body)
			code, msg := errorOf(t, decode(t, resp))
			if resp.StatusCode != 400 || code != "invalid_argument" {
				t.Fatalf("status %d code %q (%s)", resp.StatusCode, code, msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
	if n := e.svc.Sandboxes(); n != 0 {
		t.Fatalf("a bad request created %d sandboxes", n)
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err        error
		status     int
		code       string
		retryAfter string // Retry-After header
		retryMs    any    // retryAfterMs in the body
	}{
		{errdefs.ErrNotFound, 404, "not_found", "", nil},
		{errdefs.ErrInvalidArgument, 400, "invalid_argument", "", nil},
		{errdefs.ErrUnauthenticated, 401, "unauthenticated", "", nil},
		{errdefs.ErrPermissionDenied, 403, "permission_denied", "", nil},
		{errdefs.ErrTimeout, 408, "timeout", "", nil},
		{errdefs.ErrConflict, 409, "conflict", "", nil},
		{errdefs.ErrUnavailable, 503, "unavailable", "", nil},
		{errdefs.ErrInternal, 500, "internal", "", nil},
		{errors.New("no kind at all"), 500, "internal", "", nil},
		{&errdefs.RateLimitError{Msg: "too many sandboxes", RetryAfter: 1500 * time.Millisecond}, 429, "rate_limited", "2", 1500.0},
		{&errdefs.RateLimitError{Msg: "slow down", RetryAfter: 2 * time.Second}, 429, "rate_limited", "2", 2000.0},
		{fmt.Errorf("quota: %w", errdefs.ErrRateLimited), 429, "rate_limited", "0", 0.0},
		{fmt.Errorf("write /workspace/f: disk quota exceeded: %w", errdefs.ErrResourceExhausted), 507, "resource_exhausted", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.code+" "+tt.err.Error(), func(t *testing.T) {
			e := newEnv(t)
			// The cause of every error carries a secret that must not leak
			// when the error is internal.
			e.svc.Fail = func(op, id string) error {
				return fmt.Errorf("sandbox %s (at /var/lib/secret-path): %w", id, tt.err)
			}
			resp := e.do(t, "GET", "/v1/sandboxes/sb-7", keyA, "")
			body := decode(t, resp)
			code, msg := errorOf(t, body)
			if resp.StatusCode != tt.status || code != tt.code {
				t.Fatalf("status %d code %q, want %d %q", resp.StatusCode, code, tt.status, tt.code)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if got := body["error"].(map[string]any)["retryAfterMs"]; got != tt.retryMs {
				t.Errorf("retryAfterMs %v, want %v", got, tt.retryMs)
			}
			if tt.code == "internal" {
				if msg != "internal error" {
					t.Errorf("internal message leaks: %q", msg)
				}
				if log := e.log.String(); !strings.Contains(log, "secret-path") || !strings.Contains(log, "sandbox_id=sb-7") {
					t.Errorf("internal error not logged with its cause and sandbox_id: %s", log)
				}
			} else if !strings.Contains(msg, "sb-7") {
				t.Errorf("message %q does not name the sandbox", msg)
			}
		})
	}
}

// streamReq starts a streamed command request and returns the response.
func streamReq(t *testing.T, ctx context.Context, e *env, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/v1/sandboxes/"+createSandbox(t, e)+"/commands", strings.NewReader(body))
	req.Header.Set("X-API-Key", keyA)
	req.Header.Set("Accept", "application/json, application/x-ndjson")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func createSandbox(t *testing.T, e *env) string {
	t.Helper()
	resp := e.do(t, "POST", "/v1/sandboxes", keyA, `{"templateId":"python-3-11"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d", resp.StatusCode)
	}
	return decode(t, resp)["sandbox"].(map[string]any)["id"].(string)
}

func out(stream, line string) sandbox.Output {
	return sandbox.Output{Stream: stream, Line: line, Timestamp: time.UnixMilli(1764147600123)}
}

func TestNDJSONStream(t *testing.T) {
	e := newEnv(t)
	read := make(chan struct{})
	e.svc.Run = func(ctx context.Context, req sandbox.CommandRequest, onOutput func(sandbox.Output)) (sandbox.CommandResult, error) {
		onOutput(out("stdout", "hello"))
		// The next line is produced only once the client has read the
		// first: the first line must have been flushed on its own.
		select {
		case <-read:
		case <-ctx.Done():
			return sandbox.CommandResult{}, ctx.Err()
		}
		onOutput(out("stderr", "warning"))
		onOutput(out("stdout", "bye"))
		return sandbox.CommandResult{Stdout: []string{"hello", "bye"}, Stderr: []string{"warning"}, DurationMs: 5}, nil
	}
	resp := streamReq(t, t.Context(), e, `{"command":"ignored"}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) == 1 {
			close(read)
		}
	}
	want := []string{
		`{"type":"stdout","line":"hello","timestamp":1764147600123}`,
		`{"type":"stderr","line":"warning","timestamp":1764147600123}`,
		`{"type":"stdout","line":"bye","timestamp":1764147600123}`,
		`{"type":"result","result":{"exitCode":0,"stdout":["hello","bye"],"stderr":["warning"],"durationMs":5,"truncated":false}}`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestNDJSONErrors(t *testing.T) {
	t.Run("after output: an error line", func(t *testing.T) {
		e := newEnv(t)
		e.svc.Run = func(ctx context.Context, req sandbox.CommandRequest, onOutput func(sandbox.Output)) (sandbox.CommandResult, error) {
			onOutput(out("stdout", "working"))
			return sandbox.CommandResult{}, fmt.Errorf("command ran past 1s: %w", errdefs.ErrTimeout)
		}
		resp := streamReq(t, t.Context(), e, `{"command":"x"}`)
		sc := bufio.NewScanner(resp.Body)
		var lines []map[string]any
		for sc.Scan() {
			var v map[string]any
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, v)
		}
		if resp.StatusCode != 200 || len(lines) != 2 || lines[1]["type"] != "error" {
			t.Fatalf("status %d lines %v", resp.StatusCode, lines)
		}
		if code, msg := errorOf(t, lines[1]); code != "timeout" || !strings.Contains(msg, "ran past") {
			t.Fatalf("error line %v", lines[1])
		}
	})
	t.Run("before output: an ordinary error", func(t *testing.T) {
		e := newEnv(t)
		resp := e.postNDJSON(t, "/v1/sandboxes/sb-nope/commands", `{"command":"x"}`)
		if code, _ := errorOf(t, decode(t, resp)); resp.StatusCode != 404 || code != "not_found" {
			t.Fatalf("status %d code %s", resp.StatusCode, code)
		}
	})
	t.Run("silent command: a single result line", func(t *testing.T) {
		e := newEnv(t)
		resp := streamReq(t, t.Context(), e, `{"command":"exit 7"}`)
		sc := bufio.NewScanner(resp.Body)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		if resp.StatusCode != 200 || len(lines) != 1 || !strings.Contains(lines[0], `"exitCode":7`) {
			t.Fatalf("status %d lines %q", resp.StatusCode, lines)
		}
	})
}

func TestClientDisconnectCancelsCommand(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			e := newEnv(t)
			started := make(chan struct{})
			cancelled := make(chan struct{})
			e.svc.Run = func(ctx context.Context, req sandbox.CommandRequest, onOutput func(sandbox.Output)) (sandbox.CommandResult, error) {
				onOutput(out("stdout", "started"))
				close(started)
				<-ctx.Done()
				close(cancelled)
				return sandbox.CommandResult{}, ctx.Err()
			}
			id := createSandbox(t, e)
			ctx, cancel := context.WithCancel(t.Context())
			req, _ := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/v1/sandboxes/"+id+"/commands", strings.NewReader(`{"command":"sleep 1000"}`))
			req.Header.Set("X-API-Key", keyA)
			if stream {
				req.Header.Set("Accept", "application/x-ndjson")
			}
			done := make(chan error, 1)
			go func() {
				resp, err := e.srv.Client().Do(req)
				if err == nil {
					// The first line arrives while the command runs.
					_, err = bufio.NewReader(resp.Body).ReadString('\n')
					resp.Body.Close()
				}
				done <- err
			}()
			<-started
			if stream {
				if err := <-done; err != nil {
					t.Fatalf("first line: %v", err)
				}
			}
			cancel()
			<-cancelled // the service saw its context end
			if !stream {
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Fatalf("request error %v", err)
				}
			}
		})
	}
}
