package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// postJSON sends body to path as tenant A and decodes the JSON answer.
func postJSON(t *testing.T, e *env, path, body string) (int, map[string]any) {
	t.Helper()
	resp := e.do(t, "POST", path, keyA, body)
	return resp.StatusCode, decode(t, resp)
}

// ndjsonLines posts body with Accept: application/x-ndjson and returns the
// status and the decoded lines.
func ndjsonLines(t *testing.T, e *env, path, body string, onLine func(n int)) (int, []map[string]any) {
	t.Helper()
	resp := e.postNDJSON(t, path, body)
	if resp.StatusCode == 200 && resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, decodeNDJSON(t, resp.Body, onLine)
}

// decodeNDJSON reads NDJSON lines from r, calling onLine (when set) with
// the count of lines so far after each.
func decodeNDJSON(t *testing.T, r io.Reader, onLine func(n int)) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, v)
		if onLine != nil {
			onLine(len(lines))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading NDJSON: %v", err)
	}
	return lines
}

// postNDJSON posts body to path as tenant A, accepting NDJSON.
func (e *env) postNDJSON(t *testing.T, path, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", keyA)
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// jsonOf re-encodes v, for comparisons of whole values.
func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestHTTPRunCode(t *testing.T) {
	e := newEnv(t)
	id := createSandbox(t, e)
	path := "/v1/sandboxes/" + id + "/code"

	status, res := postJSON(t, e, path, `{"code":"x = 10\nprint(x)\nx"}`)
	if status != 200 {
		t.Fatalf("status %d: %v", status, res)
	}
	exec := res["execution"].(map[string]any)
	if got := jsonOf(exec["logs"]); got != `{"stderr":[],"stdout":["10"]}` {
		t.Errorf("logs %s", got)
	}
	if got := jsonOf(exec["results"]); got != `[{"isMainResult":true,"text":"10"}]` {
		t.Errorf("results %s", got)
	}
	if _, ok := exec["error"]; ok || exec["executionCount"] != 1.0 || exec["truncated"] != false {
		t.Errorf("execution %v", exec)
	}
	meta := res["metadata"].(map[string]any)
	if meta["sandboxId"] != id || meta["language"] != "python" || !strings.HasPrefix(meta["contextId"].(string), "ctx-") {
		t.Errorf("metadata %v", meta)
	}
	if _, ok := meta["durationMs"].(float64); !ok {
		t.Errorf("durationMs %v", meta["durationMs"])
	}

	// State survives in the default context; an exception is a result.
	status, res = postJSON(t, e, path, `{"code":"print(x + 1)\n1/0\nprint(2)","envs":{"K":"v"}}`)
	exec = res["execution"].(map[string]any)
	if status != 200 || jsonOf(exec["logs"].(map[string]any)["stdout"]) != `["11"]` || exec["executionCount"] != 2.0 {
		t.Fatalf("second run: %d %v", status, res)
	}
	xerr := exec["error"].(map[string]any)
	if xerr["name"] != "ZeroDivisionError" || xerr["value"] != "division by zero" || !strings.Contains(xerr["traceback"].(string), "1/0") {
		t.Errorf("error %v", xerr)
	}

	status, res = postJSON(t, e, path, `{"code":"print(os.environ[\"K\"])","envs":{"K":"from envs"}}`)
	if status != 200 || jsonOf(res["execution"].(map[string]any)["logs"]) != `{"stderr":[],"stdout":["from envs"]}` {
		t.Fatalf("envs: %d %v", status, res)
	}

	tests := []struct {
		name, path, body string
		status           int
		inMsg            string
	}{
		{"unknown sandbox", "/v1/sandboxes/sb-nope/code", `{"code":"1"}`, 404, "sb-nope"},
		{"empty code", path, `{"code":""}`, 400, "code"},
		{"unknown field", path, `{"code":"1","streamId":"s"}`, 400, `"streamId"`},
		{"timeout type", path, `{"code":"1","timeoutMs":"5"}`, 400, `"timeoutMs"`},
		{"envs value", path, `{"code":"1","envs":{"A":1}}`, 400, `"envs.A"`},
		{"context type", path, `{"code":"1","context":{}}`, 400, `"context"`},
		{"unknown context", path, `{"code":"1","context":"ctx-none"}`, 404, "ctx-none"},
		{"language", path, `{"code":"1","language":"cobol"}`, 400, "cobol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := postJSON(t, e, tt.path, tt.body)
			code, msg := errorOf(t, body)
			if status != tt.status || !strings.Contains(msg, tt.inMsg) {
				t.Fatalf("status %d code %s message %q, want %d naming %s", status, code, msg, tt.status, tt.inMsg)
			}
		})
	}
}

// TestRunCodeRequestMapping checks what reaches the service, on both
// transports.
func TestRunCodeRequestMapping(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var got []sandbox.RunCodeRequest
	e.svc.Code = func(ctx context.Context, req sandbox.RunCodeRequest, onEvent func(sandbox.CodeEvent)) (sandbox.ExecutionResult, error) {
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		return sandbox.ExecutionResult{}, nil
	}
	id := createSandbox(t, e)
	status, res := postJSON(t, e, "/v1/sandboxes/"+id+"/code",
		`{"code":"c","language":"javascript","context":"ctx-1","envs":{"A":"1"},"timeoutMs":1500}`)
	if status != 200 {
		t.Fatalf("status %d %v", status, res)
	}
	// An empty result still has the wire's arrays.
	if got := jsonOf(res["execution"]); got != `{"executionCount":0,"logs":{"stderr":[],"stdout":[]},"results":[],"truncated":false}` {
		t.Errorf("empty execution %s", got)
	}
	c := dialPolling(t, e)
	c.connect(`{"apiKey":"` + keyA + `"}`)
	if a, _ := c.awaitAck(c.emit("code:run", map[string]any{
		"sandboxId": id, "code": "c", "language": "javascript", "context": "ctx-1", "envs": map[string]any{"A": "1"}, "timeoutMs": 1500,
	})); !a.OK {
		t.Fatalf("code:run %+v", a.Error)
	}
	want := sandbox.RunCodeRequest{Code: "c", Language: "javascript", ContextID: "ctx-1", Env: map[string]string{"A": "1"}, Timeout: 1500 * time.Millisecond}
	if len(got) != 2 {
		t.Fatalf("%d calls", len(got))
	}
	for i, req := range got {
		if fmt.Sprint(req) != fmt.Sprint(want) {
			t.Errorf("call %d: %+v, want %+v", i, req, want)
		}
	}
}

func TestHTTPRunCodeStream(t *testing.T) {
	e := newEnv(t)
	read := make(chan struct{})
	ts := time.UnixMilli(1764147600123)
	e.svc.Code = func(ctx context.Context, req sandbox.RunCodeRequest, onEvent func(sandbox.CodeEvent)) (sandbox.ExecutionResult, error) {
		onEvent(sandbox.CodeEvent{Type: sandbox.CodeStdout, Line: "Loading data...", Timestamp: ts})
		select { // the first line must have been flushed on its own
		case <-read:
		case <-ctx.Done():
			return sandbox.ExecutionResult{}, ctx.Err()
		}
		onEvent(sandbox.CodeEvent{Type: sandbox.CodeDisplay, Result: sandbox.Result{"text": "<Figure>", "png": "iVBOR"}})
		onEvent(sandbox.CodeEvent{Type: "unknown-kind", Line: "dropped"})
		onEvent(sandbox.CodeEvent{Type: sandbox.CodeStderr, Line: "", Timestamp: ts})
		onEvent(sandbox.CodeEvent{Type: sandbox.CodeException, Error: &sandbox.ExecutionError{Name: "ValueError", Value: "bad", Traceback: "tb"}})
		return sandbox.ExecutionResult{
			Execution: sandbox.Execution{
				Logs:    sandbox.Logs{Stdout: []string{"Loading data..."}, Stderr: []string{""}},
				Results: []sandbox.Result{{"text": "<Figure>", "png": "iVBOR"}},
				Error:   &sandbox.ExecutionError{Name: "ValueError", Value: "bad", Traceback: "tb"}, ExecutionCount: 1,
			},
			Metadata: sandbox.ExecutionMetadata{DurationMs: 3, ContextID: "ctx-1", Language: "python", SandboxID: "sb-1"},
		}, nil
	}
	status, lines := ndjsonLines(t, e, "/v1/sandboxes/"+createSandbox(t, e)+"/code", `{"code":"x"}`, func(n int) {
		if n == 1 {
			close(read)
		}
	})
	want := []string{
		`{"line":"Loading data...","timestamp":1764147600123,"type":"stdout"}`,
		`{"result":{"png":"iVBOR","text":"\u003cFigure\u003e"},"type":"display"}`,
		`{"line":"","timestamp":1764147600123,"type":"stderr"}`,
		`{"error":{"name":"ValueError","traceback":"tb","value":"bad"},"type":"exception"}`,
		`{"result":{"execution":{"error":{"name":"ValueError","traceback":"tb","value":"bad"},"executionCount":1,"logs":{"stderr":[""],"stdout":["Loading data..."]},"results":[{"png":"iVBOR","text":"\u003cFigure\u003e"}],"truncated":false},"metadata":{"contextId":"ctx-1","durationMs":3,"language":"python","sandboxId":"sb-1"}},"type":"result"}`,
	}
	var got []string
	for _, l := range lines {
		got = append(got, jsonOf(l))
	}
	if status != 200 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("status %d lines:\n%s\nwant:\n%s", status, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHTTPRunCodeStreamErrors(t *testing.T) {
	t.Run("timeout after output: an error line", func(t *testing.T) {
		e := newEnv(t)
		status, lines := ndjsonLines(t, e, "/v1/sandboxes/"+createSandbox(t, e)+"/code",
			`{"code":"print(\"started\")\ntime.sleep(1000)","timeoutMs":50}`, nil)
		if status != 200 || len(lines) != 2 || lines[0]["line"] != "started" {
			t.Fatalf("status %d lines %v", status, lines)
		}
		if code, msg := errorOf(t, lines[1]); lines[1]["type"] != "error" || code != "timeout" || !strings.Contains(msg, "survived") {
			t.Fatalf("last line %v", lines[1])
		}
	})
	t.Run("timeout before output: an ordinary error", func(t *testing.T) {
		e := newEnv(t)
		status, lines := ndjsonLines(t, e, "/v1/sandboxes/"+createSandbox(t, e)+"/code",
			`{"code":"time.sleep(1000)","timeoutMs":50}`, nil)
		if status != 408 || len(lines) != 1 {
			t.Fatalf("status %d lines %v", status, lines)
		}
		if code, _ := errorOf(t, lines[0]); code != "timeout" {
			t.Fatalf("error %v", lines[0])
		}
	})
	t.Run("silent run: one result line", func(t *testing.T) {
		e := newEnv(t)
		status, lines := ndjsonLines(t, e, "/v1/sandboxes/"+createSandbox(t, e)+"/code", `{"code":"x = 1"}`, nil)
		if status != 200 || len(lines) != 1 || lines[0]["type"] != "result" {
			t.Fatalf("status %d lines %v", status, lines)
		}
	})
}

func TestHTTPContexts(t *testing.T) {
	e := newEnv(t)
	id := createSandbox(t, e)
	base := "/v1/sandboxes/" + id

	resp := e.do(t, "POST", base+"/contexts", keyA, "") // every field optional
	plain := decode(t, resp)
	if resp.StatusCode != 201 || plain["language"] != "python" || plain["cwd"] != "/workspace" ||
		jsonOf(plain["envVars"]) != "{}" || plain["default"] != false || plain["sandboxId"] != id {
		t.Fatalf("create: %d %v", resp.StatusCode, plain)
	}
	if !strings.HasSuffix(plain["createdAt"].(string), "Z") {
		t.Errorf("createdAt %v", plain["createdAt"])
	}
	status, cc := postJSON(t, e, base+"/contexts", `{"language":"python","cwd":"/tmp","envs":{"A":"1"}}`)
	if status != 201 || cc["cwd"] != "/tmp" || jsonOf(cc["envVars"]) != `{"A":"1"}` {
		t.Fatalf("create with options: %d %v", status, cc)
	}
	ctxID := cc["id"].(string)

	status, res := postJSON(t, e, base+"/code", `{"code":"y = 5","context":"`+ctxID+`"}`)
	if status != 200 || res["metadata"].(map[string]any)["contextId"] != ctxID {
		t.Fatalf("run in context: %d %v", status, res)
	}
	_, res = postJSON(t, e, base+"/code", `{"code":"print(y)","context":"`+ctxID+`"}`)
	if got := jsonOf(res["execution"].(map[string]any)["logs"]); got != `{"stderr":[],"stdout":["5"]}` {
		t.Fatalf("state in context: %s", got)
	}
	_, res = postJSON(t, e, base+"/code", `{"code":"print(y)"}`) // the default context is another
	if xerr, _ := res["execution"].(map[string]any)["error"].(map[string]any); xerr["name"] != "NameError" {
		t.Fatalf("default context sees y: %v", res)
	}

	resp = e.do(t, "GET", base+"/contexts", keyA, "")
	list := decode(t, resp)["contexts"].([]any)
	if resp.StatusCode != 200 || len(list) != 3 { // two created, one default
		t.Fatalf("list: %d %v", resp.StatusCode, list)
	}
	if resp := e.do(t, "GET", base+"/contexts", keyB, ""); resp.StatusCode != 404 {
		t.Fatalf("tenant b lists: %d", resp.StatusCode)
	}
	if resp := e.do(t, "DELETE", "/v1/contexts/"+ctxID, keyB, ""); resp.StatusCode != 404 {
		t.Fatalf("tenant b deletes: %d", resp.StatusCode)
	}
	if resp := e.do(t, "DELETE", "/v1/contexts/"+ctxID, keyA, ""); resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	resp = e.do(t, "DELETE", "/v1/contexts/"+ctxID, keyA, "")
	if code, msg := errorOf(t, decode(t, resp)); resp.StatusCode != 404 || code != "not_found" || !strings.Contains(msg, ctxID) {
		t.Fatalf("delete again: %d %s %s", resp.StatusCode, code, msg)
	}

	for _, body := range []string{`{"lang":"python"}`, `{"envs":["A"]}`, `[]`} {
		status, res := postJSON(t, e, base+"/contexts", body)
		if code, _ := errorOf(t, res); status != 400 || code != "invalid_argument" {
			t.Errorf("%s: %d %v", body, status, res)
		}
	}
	if status, _ := postJSON(t, e, "/v1/sandboxes/sb-nope/contexts", `{}`); status != 404 {
		t.Errorf("unknown sandbox: %d", status)
	}
}

func TestHTTPBatch(t *testing.T) {
	e := newEnv(t)
	path := "/v1/sandboxes/" + createSandbox(t, e) + "/batch"
	body := `{"jobs":[
		{"id":"a","code":"print(\"a1\")\nprint(\"a2\")"},
		{"id":"b","code":"print(\"b1\")\n1/0","timeout":10000},
		{"id":"c","code":"print(1)\n2","priority":5,"language":"python"}],"concurrency":2,"envs":{"K":"V"}}`

	status, res := postJSON(t, e, path, body)
	if status != 200 {
		t.Fatalf("status %d %v", status, res)
	}
	results := res["results"].([]any)
	if len(results) != 3 {
		t.Fatalf("results %v", results)
	}
	for i, want := range []struct {
		id, err string
		ok      bool
		stdout  string
	}{
		{"a", "", true, `["a1","a2"]`},
		{"b", "ZeroDivisionError: division by zero", false, `["b1"]`},
		{"c", "", true, `["1"]`},
	} {
		r := results[i].(map[string]any)
		errText, _ := r["error"].(string)
		exec, _ := r["execution"].(map[string]any)
		if r["jobId"] != want.id || r["success"] != want.ok || errText != want.err || exec == nil ||
			jsonOf(exec["logs"].(map[string]any)["stdout"]) != want.stdout {
			t.Errorf("result %d: %v", i, r)
		}
		if _, ok := r["duration"].(float64); !ok {
			t.Errorf("result %d: duration %v", i, r["duration"])
		}
	}
	if n := e.svc.Contexts(); n != 0 {
		t.Errorf("%d contexts left behind by jobs without a context", n)
	}

	status, lines := ndjsonLines(t, e, path, body, nil)
	if status != 200 || len(lines) == 0 {
		t.Fatalf("stream: %d %v", status, lines)
	}
	last := lines[len(lines)-1]
	if last["type"] != "result" || len(last["result"].(map[string]any)["results"].([]any)) != 3 {
		t.Fatalf("last line %v", last)
	}
	perJob := map[string][]string{}
	for _, l := range lines[:len(lines)-1] {
		job, _ := l["jobId"].(string)
		desc := fmt.Sprint(l["type"])
		if l["type"] == "stdout" {
			desc += ":" + l["line"].(string)
		}
		perJob[job] = append(perJob[job], desc)
	}
	if fmt.Sprint(perJob) != "map[a:[stdout:a1 stdout:a2] b:[stdout:b1 exception] c:[stdout:1]]" {
		t.Fatalf("events per job %v", perJob)
	}

	tests := []struct{ body, inMsg string }{
		{`{"jobs":[{"id":"a","code":"1","timeout":"5"}]}`, `"jobs[0].timeout"`},
		{`{"jobs":[{"id":"a","code":"1"},{"id":"b","code":"1","bogus":1}]}`, `unknown field "jobs[1].bogus"`},
		{`{"jobs":[{"id":"a","code":"1","Code":"2"}]}`, `"jobs[0].Code"`},
		{`{"jobs":[null]}`, `"jobs[0]": expected an object, got null`},
		{`{"jobs":["print(1)"]}`, `"jobs[0]": expected an object, got a string`},
		{`{"jobs":{"id":"a"}}`, `"jobs": expected an array of objects`},
		{`{"jobs":[{"id":"a","code":"1","priority":1.5}]}`, `"jobs[0].priority"`},
		{`{"jobs":[]}`, "jobs"},
		{`{"jobs":[{"id":"a","code":"1"},{"id":"a","code":"2"}]}`, `jobs[1].id`},
		{`{"jobs":[{"id":"a","code":"1"}],"concurrency":17}`, "concurrency"},
	}
	for _, tt := range tests {
		status, res := postJSON(t, e, path, tt.body)
		if code, msg := errorOf(t, res); status != 400 || code != "invalid_argument" || !strings.Contains(msg, tt.inMsg) {
			t.Errorf("%s: %d %s %q, want naming %s", tt.body, status, code, msg, tt.inMsg)
		}
	}
}

// TestBatchJobMapping checks job fields reach the service: timeout in ms,
// context, language.
func TestBatchJobMapping(t *testing.T) {
	e := newEnv(t)
	id := createSandbox(t, e)
	status, cc := postJSON(t, e, "/v1/sandboxes/"+id+"/contexts", `{"language":"javascript"}`)
	if status != 201 {
		t.Fatalf("context: %d", status)
	}
	var mu sync.Mutex
	var got []sandbox.RunCodeRequest
	e.svc.Code = func(ctx context.Context, req sandbox.RunCodeRequest, onEvent func(sandbox.CodeEvent)) (sandbox.ExecutionResult, error) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, req)
		return sandbox.ExecutionResult{}, fmt.Errorf("code ran past %s: %w", req.Timeout, errdefs.ErrTimeout)
	}
	status, res := postJSON(t, e, "/v1/sandboxes/"+id+"/batch",
		`{"jobs":[{"id":"j","code":"c","timeout":2500,"language":"javascript","context":"`+cc["id"].(string)+`"}],"envs":{"E":"1"}}`)
	if status != 200 || len(got) != 1 {
		t.Fatalf("%d %v (%d calls)", status, res, len(got))
	}
	want := sandbox.RunCodeRequest{Code: "c", Language: "javascript", ContextID: cc["id"].(string), Env: map[string]string{"E": "1"}, Timeout: 2500 * time.Millisecond}
	if fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Errorf("request %+v, want %+v", got[0], want)
	}
	// A job that fails with an operation error has no execution.
	if r := jsonOf(res["results"]); !strings.Contains(r, `"execution":null`) || !strings.Contains(r, `"success":false`) || !strings.Contains(r, "ran past 2.5s") {
		t.Errorf("results %s", r)
	}
}

func TestHTTPCreateTemplate(t *testing.T) {
	e := newEnv(t)
	status, tpl := postJSON(t, e, "/v1/templates", `{"name":"Custom ML Stack","language":"python","version":"3.11",
		"dockerImage":"python:3.11-slim","dependencies":["pandas"],"installCommand":"pip install -r requirements.txt",
		"defaultEnvVars":{"ML_ENV":"production"}}`)
	if status != 201 || tpl["status"] != "building" || tpl["name"] != "Custom ML Stack" ||
		jsonOf(tpl["dependencies"]) != `["pandas"]` || jsonOf(tpl["defaultEnvVars"]) != `{"ML_ENV":"production"}` {
		t.Fatalf("create: %d %v", status, tpl)
	}
	resp := e.do(t, "GET", "/v1/templates/"+tpl["id"].(string), keyA, "")
	if got := decode(t, resp); resp.StatusCode != 200 || got["id"] != tpl["id"] {
		t.Fatalf("get: %d %v", resp.StatusCode, got)
	}

	tests := []struct{ body, inMsg string }{
		{`{"name":"x","language":"python","dependencies":"pandas"}`, `"dependencies"`},
		{`{"name":"x","language":"python","dependencies":["a",null]}`, `"dependencies[1]"`},
		{`{"name":"x","language":"python","defaultEnv":{}}`, `"defaultEnv"`},
		{`{"language":"python"}`, "name"},
		{`{"name":"x","language":"cobol"}`, "cobol"},
	}
	for _, tt := range tests {
		status, res := postJSON(t, e, "/v1/templates", tt.body)
		if code, msg := errorOf(t, res); status != 400 || code != "invalid_argument" || !strings.Contains(msg, tt.inMsg) {
			t.Errorf("%s: %d %s %q", tt.body, status, code, msg)
		}
	}
}
