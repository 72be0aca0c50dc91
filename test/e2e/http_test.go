package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"testing"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// rawResponse is a decoded HTTP response.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// do sends a raw request to the test server. auth is "bearer", "x-api-key"
// or "" (no key).
func (e *testEnv) do(t *testing.T, method, path, auth, body string, header map[string]string) rawResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	switch auth {
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+e.srv.APIKey)
	case "x-api-key":
		req.Header.Set("X-API-Key", e.srv.APIKey)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: data}
}

// errorBody decodes {"error": {"code", "message"}}.
func errorBody(t *testing.T, r rawResponse) (code, message string) {
	t.Helper()
	var b struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil || b.Error == nil {
		t.Fatalf("status %d: body %q is not an error body (%v)", r.status, r.body, err)
	}
	return b.Error.Code, b.Error.Message
}

func mediaType(h http.Header) string {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return mt
}

func TestHTTPHealthWithoutAuth(t *testing.T) {
	e := setup(t)
	r := e.do(t, "GET", "/v1/health", "", "", nil)
	var h struct {
		Status  string `json:"status"`
		Version string `json:"version"`
	}
	if r.status != 200 || mediaType(r.header) != "application/json" || json.Unmarshal(r.body, &h) != nil || h.Status != "ok" {
		t.Fatalf("GET /v1/health = %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
}

func TestHTTPErrors(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tests := []struct {
		name         string
		method, path string
		auth, body   string
		status       int
		code         string
		msgHas       string
	}{
		{"create without auth", "POST", "/v1/sandboxes", "", `{"templateId":"python-3-11"}`, 401, "unauthenticated", ""},
		{"list without auth", "GET", "/v1/sandboxes", "", "", 401, "unauthenticated", ""},
		{"malformed JSON", "POST", "/v1/sandboxes", "bearer", `{"templateId":`, 400, "invalid_argument", ""},
		{"unknown field", "POST", "/v1/sandboxes", "bearer", `{"templateId":"python-3-11","bogus":1}`, 400, "invalid_argument", "bogus"},
		{"wrong type", "POST", "/v1/sandboxes", "bearer", `{"templateId":"python-3-11","expiryTime":"soon"}`, 400, "invalid_argument", "expiryTime"},
		{"unknown sandbox", "GET", "/v1/sandboxes/sb-nope", "x-api-key", "", 404, "not_found", ""},
		{"unknown template", "GET", "/v1/templates/nope", "bearer", "", 404, "not_found", ""},
		{"page not a number", "GET", "/v1/templates?page=abc", "bearer", "", 400, "invalid_argument", "page"},
		{"negative page", "GET", "/v1/templates?page=-1", "bearer", "", 400, "invalid_argument", "page"},
		{"pageSize over 100", "GET", "/v1/templates?pageSize=101", "bearer", "", 400, "invalid_argument", "pageSize"},
		{"wrong method", "PUT", "/v1/sandboxes", "bearer", "", 405, "invalid_argument", "PUT"},
		{"unknown path", "GET", "/v1/nothing-here", "bearer", "", 404, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, tt.method, tt.path, tt.auth, tt.body, nil)
			if r.status != tt.status || mediaType(r.header) != "application/json" {
				t.Fatalf("%s %s = %d (%s) %q, want %d", tt.method, tt.path, r.status, r.header.Get("Content-Type"), r.body, tt.status)
			}
			code, msg := errorBody(t, r)
			if code != tt.code || msg == "" || !strings.Contains(msg, tt.msgHas) {
				t.Fatalf("error = %q %q, want code %q and a message containing %q", code, msg, tt.code, tt.msgHas)
			}
		})
	}
}

func TestHTTPAuthHeaders(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, auth := range []string{"bearer", "x-api-key"} {
		r := e.do(t, "GET", "/v1/sandboxes", auth, "", nil)
		var list struct {
			Sandboxes []json.RawMessage `json:"sandboxes"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &list) != nil || list.Sandboxes == nil {
			t.Fatalf("GET /v1/sandboxes with %s = %d %q", auth, r.status, r.body)
		}
	}
}

func TestHTTPCommandForms(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	path := "/v1/sandboxes/" + sb.ID + "/commands"
	body := `{"args":["sh","-c","echo a; echo b >&2; echo c; exit 2"]}`

	t.Run("plain JSON", func(t *testing.T) {
		r := e.do(t, "POST", path, "bearer", body, nil)
		var res sdbx.CommandResult
		if r.status != 200 || mediaType(r.header) != "application/json" || json.Unmarshal(r.body, &res) != nil {
			t.Fatalf("POST %s = %d %q", path, r.status, r.body)
		}
		if res.ExitCode != 2 || !reflect.DeepEqual(res.Stdout, []string{"a", "c"}) || !reflect.DeepEqual(res.Stderr, []string{"b"}) {
			t.Fatalf("result = %+v", res)
		}
	})

	t.Run("NDJSON stream", func(t *testing.T) {
		r := e.do(t, "POST", path, "bearer", body, map[string]string{"Accept": "application/x-ndjson"})
		if r.status != 200 || mediaType(r.header) != "application/x-ndjson" {
			t.Fatalf("POST %s = %d %q %q", path, r.status, r.header.Get("Content-Type"), r.body)
		}
		type event struct {
			Type      string              `json:"type"`
			Line      string              `json:"line"`
			Timestamp int64               `json:"timestamp"`
			Result    *sdbx.CommandResult `json:"result"`
		}
		var events []event
		sc := bufio.NewScanner(strings.NewReader(string(r.body)))
		for sc.Scan() {
			var ev event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
			}
			events = append(events, ev)
		}
		if len(events) != 4 {
			t.Fatalf("events = %+v, want 3 lines and a result", events)
		}
		var out, errs []string
		for _, ev := range events[:3] {
			if ev.Timestamp <= 0 {
				t.Fatalf("event %+v has no timestamp", ev)
			}
			switch ev.Type {
			case "stdout":
				out = append(out, ev.Line)
			case "stderr":
				errs = append(errs, ev.Line)
			default:
				t.Fatalf("unexpected event %+v before the result", ev)
			}
		}
		last := events[3]
		if !reflect.DeepEqual(out, []string{"a", "c"}) || !reflect.DeepEqual(errs, []string{"b"}) ||
			last.Type != "result" || last.Result == nil || last.Result.ExitCode != 2 {
			t.Fatalf("events = %+v", events)
		}
	})

	t.Run("NDJSON timeout ends with an error line", func(t *testing.T) {
		r := e.do(t, "POST", path, "bearer", `{"command":"echo x; sleep 30","timeoutMs":500}`,
			map[string]string{"Accept": "application/x-ndjson"})
		lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
		var last struct {
			Type  string `json:"type"`
			Error *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if r.status != 200 || json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil ||
			last.Type != "error" || last.Error == nil || last.Error.Code != "timeout" {
			t.Fatalf("POST %s = %d %q, want a stream ending with a timeout error", path, r.status, r.body)
		}
	})

	t.Run("bad input before the stream is an HTTP error", func(t *testing.T) {
		r := e.do(t, "POST", path, "bearer", `{"args":["true"],"cwd":"relative"}`, map[string]string{"Accept": "application/x-ndjson"})
		if r.status != 400 {
			t.Fatalf("POST %s = %d %q, want 400", path, r.status, r.body)
		}
		if code, msg := errorBody(t, r); code != "invalid_argument" || !strings.Contains(msg, "cwd") {
			t.Fatalf("error = %q %q", code, msg)
		}
	})
}
