package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// fakeCodeServer answers POST /v1/sandboxes/sb-1/code for the CLI's unit
// tests. The code picks the behaviour: "print" streams two lines and three
// results, "raise" a line and an exception, "slow" a line and then a
// timeout; anything else runs silently.
type fakeCodeServer struct {
	mu     sync.Mutex
	bodies []map[string]any
}

func newFakeCodeServer(t *testing.T) (*fakeCodeServer, cliEnv) {
	f := &fakeCodeServer{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, cliEnv{URL: srv.URL, APIKey: "k"}
}

func (f *fakeCodeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
	}
	if r.Header.Get("Authorization") != "Bearer k" {
		fail(401, "unauthenticated", "missing or unknown API key")
		return
	}
	if r.Method != "POST" || r.URL.Path != "/v1/sandboxes/sb-1/code" {
		fail(404, "not_found", "sandbox: not found")
		return
	}
	var body map[string]any
	json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	f.mu.Unlock()
	code, _ := body["code"].(string)
	if strings.TrimSpace(code) == "" {
		fail(400, "invalid_argument", "code is required")
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	exec := map[string]any{"logs": map[string]any{"stdout": []string{}, "stderr": []string{}}, "results": []any{}, "executionCount": 1}
	switch code {
	case "print":
		enc.Encode(map[string]any{"type": "stdout", "line": "hello", "timestamp": 1})
		enc.Encode(map[string]any{"type": "stderr", "line": "warn", "timestamp": 2})
		enc.Encode(map[string]any{"type": "display", "result": map[string]any{"text": "<Figure>", "png": "iVBORw0KGgo="}})
		enc.Encode(map[string]any{"type": "display", "result": map[string]any{"html": "<b>x</b>"}})
		enc.Encode(map[string]any{"type": "display", "result": map[string]any{"text": "30", "isMainResult": true}})
		exec["logs"] = map[string]any{"stdout": []string{"hello"}, "stderr": []string{"warn"}}
		exec["results"] = []any{map[string]any{"text": "30", "isMainResult": true}}
	case "raise":
		e := map[string]any{"name": "ZeroDivisionError", "value": "division by zero",
			"traceback": "Traceback (most recent call last):\n  Cell In[1], line 2\n    1/0\nZeroDivisionError: division by zero\n"}
		enc.Encode(map[string]any{"type": "stdout", "line": "before", "timestamp": 1})
		enc.Encode(map[string]any{"type": "exception", "error": e})
		exec["error"] = e
	case "slow":
		enc.Encode(map[string]any{"type": "stdout", "line": "started", "timestamp": 1})
		enc.Encode(map[string]any{"type": "error", "error": map[string]any{"code": "timeout",
			"message": "execution timed out after 1000 ms and was interrupted; the context's state was kept"}})
		return
	}
	enc.Encode(map[string]any{"type": "result", "result": map[string]any{"execution": exec,
		"metadata": map[string]any{"contextId": "ctx-1", "language": "python", "sandboxId": "sb-1", "durationMs": 1}}})
}

func (f *fakeCodeServer) lastBody() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) == 0 {
		return nil
	}
	return f.bodies[len(f.bodies)-1]
}

// runCLIWithStdin is runCLI with stdin.
func runCLIWithStdin(t *testing.T, env cliEnv, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{stdin: stdin, stdout: &out, stderr: &errOut, env: env}
	code := c.run(t.Context(), args[0], args[1:])
	return code, out.String(), errOut.String()
}

func TestCLICode(t *testing.T) {
	f, env := newFakeCodeServer(t)
	codeFile := filepath.Join(t.TempDir(), "script.py")
	if err := os.WriteFile(codeFile, []byte("print"), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := "Traceback (most recent call last):\n  Cell In[1], line 2\n    1/0\nZeroDivisionError: division by zero\n"
	tests := []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
		wantBody map[string]any
	}{
		{"streams lines and results", "", []string{"code", "sb-1", "print"}, 0,
			"hello\n[image/png result]\n[text/html result]\n30\n", "warn\n", map[string]any{"code": "print"}},
		{"flags after the id", "", []string{"code", "sb-1", "--language", "python", "--context", "ctx-9", "--timeout", "1.5s",
			"--env", "A=1", "--env", "B=x=y", "print"}, 0,
			"hello\n[image/png result]\n[text/html result]\n30\n", "warn\n",
			map[string]any{"code": "print", "language": "python", "context": "ctx-9", "timeoutMs": float64(1500),
				"envs": map[string]any{"A": "1", "B": "x=y"}}},
		{"stdin", "print", []string{"code", "sb-1", "-"}, 0,
			"hello\n[image/png result]\n[text/html result]\n30\n", "warn\n", map[string]any{"code": "print"}},
		{"file", "", []string{"code", "-f", codeFile, "sb-1"}, 0,
			"hello\n[image/png result]\n[text/html result]\n30\n", "warn\n", map[string]any{"code": "print"}},
		{"silent", "", []string{"code", "sb-1", "x = 1"}, 0, "", "", map[string]any{"code": "x = 1"}},
		{"exception exits 1 with the traceback", "", []string{"code", "sb-1", "raise"}, 1, "before\n", tb, nil},
		{"timeout exits 124", "", []string{"code", "--timeout", "1s", "sb-1", "slow"}, 124, "started\n",
			"sdbx: execution timed out after 1000 ms and was interrupted; the context's state was kept\n", nil},
		{"server refuses empty code", "", []string{"code", "sb-1", " "}, 2, "", "sdbx: code is required\n", nil},
		{"unknown sandbox", "", []string{"code", "sb-2", "print"}, 3, "", "sdbx: sandbox: not found\n", nil},
		{"missing id", "", []string{"code"}, 2, "", "sdbx: code: missing sandbox ID (see sdbx code -h)\n", nil},
		{"missing code", "", []string{"code", "sb-1"}, 2, "",
			"sdbx: code: missing code: give it as an argument, - for stdin, or -f FILE (see sdbx code -h)\n", nil},
		{"code and file", "", []string{"code", "-f", codeFile, "sb-1", "print"}, 2, "",
			"sdbx: code: give the code either as an argument or with -f, not both\n", nil},
		{"two codes", "", []string{"code", "sb-1", "print", "(1)"}, 2, "",
			"sdbx: code: unexpected argument \"(1)\" (quote the code as one argument)\n", nil},
		{"missing file", "", []string{"code", "-f", "/nonexistent/x.py", "sb-1"}, 2, "",
			"sdbx: -f \"/nonexistent/x.py\": no such file or directory\n", nil},
		{"stdin too large", strings.Repeat("x", maxCodeBytes+1), []string{"code", "sb-1", "-"}, 2, "",
			"sdbx: code from stdin: larger than 1048576 bytes\n", nil},
		{"bad timeout", "", []string{"code", "--timeout", "-1s", "sb-1", "print"}, 2, "",
			"sdbx: --timeout \"-1s\": must not be negative\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLIWithStdin(t, env, strings.NewReader(tt.stdin), tt.args...)
			if code != tt.wantCode || out != tt.wantOut || errOut != tt.wantErr {
				t.Fatalf("code=%d out=%q err=%q\nwant %d %q %q", code, out, errOut, tt.wantCode, tt.wantOut, tt.wantErr)
			}
			if tt.wantBody != nil && !reflect.DeepEqual(f.lastBody(), tt.wantBody) {
				t.Fatalf("request body = %v, want %v", f.lastBody(), tt.wantBody)
			}
		})
	}
}

func TestCLICodeJSON(t *testing.T) {
	_, env := newFakeCodeServer(t)
	code, out, errOut := runCLIWithStdin(t, env, nil, "code", "--json", "sb-1", "print")
	if code != 0 || errOut != "" {
		t.Fatalf("code=%d err=%q", code, errOut)
	}
	var res sdbx.ExecutionResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("stdout is not one JSON result: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(res.Execution.Logs.Stdout, []string{"hello"}) || res.Metadata.ContextID != "ctx-1" ||
		len(res.Execution.Results) != 1 || res.Execution.Results[0].Text != "30" {
		t.Fatalf("result = %+v", res)
	}
}

func TestResultText(t *testing.T) {
	tests := []struct {
		r    sdbx.Result
		want string
	}{
		{sdbx.Result{Text: "<Figure>", PNG: "x"}, "[image/png result]"},
		{sdbx.Result{JPEG: "x"}, "[image/jpeg result]"},
		{sdbx.Result{Text: "<svg>", SVG: "<svg/>"}, "[image/svg+xml result]"},
		{sdbx.Result{Text: "   a  b\n0  1  2", HTML: "<table/>"}, "   a  b\n0  1  2"},
		{sdbx.Result{Markdown: "# x"}, "[text/markdown result]"},
		{sdbx.Result{}, ""},
	}
	for _, tt := range tests {
		if got := resultText(tt.r); got != tt.want {
			t.Errorf("resultText(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
	if got := tracebackText(sdbx.ExecutionError{Name: "E", Value: "v"}); got != "E: v" {
		t.Errorf("tracebackText without traceback = %q", got)
	}
}
