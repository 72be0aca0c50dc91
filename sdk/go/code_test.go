package sdbx

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// streamHandler answers POST path with the given NDJSON lines, flushing
// after each one, and records the request body.
func streamHandler(t *testing.T, path string, body *map[string]any, lines ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != path {
			writeError(w, 404, "not_found", "no route "+r.Method+" "+r.URL.Path)
			return
		}
		if got := r.Header.Get("Accept"); got != "application/x-ndjson" {
			writeError(w, 400, "invalid_argument", "Accept = "+got)
			return
		}
		if body != nil {
			*body = nil
			if err := json.NewDecoder(r.Body).Decode(body); err != nil {
				writeError(w, 400, "invalid_argument", err.Error())
				return
			}
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		rc := http.NewResponseController(w)
		for _, l := range lines {
			io.WriteString(w, l+"\n")
			rc.Flush()
		}
	}
}

// earlyLineHandler streams a stdout line "early", then holds the response
// until seen is closed (the client got the line) and ends it with result.
func earlyLineHandler(seen <-chan struct{}, result string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, `{"type":"stdout","line":"early","timestamp":1}`+"\n")
		http.NewResponseController(w).Flush()
		select {
		case <-seen:
			io.WriteString(w, result+"\n")
		case <-time.After(10 * time.Second):
			io.WriteString(w, `{"type":"error","error":{"code":"internal","message":"the client never saw the early line"}}`+"\n")
		}
	}
}

// stallHandler starts an NDJSON response and sends nothing more until the
// client goes away or release is closed.
func stallHandler(release <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
}

const codePath = "/v1/sandboxes/sb-1/code"

func TestRunCodeStreamsEventsInOrder(t *testing.T) {
	var body map[string]any
	c := newTestClient(t, streamHandler(t, codePath, &body,
		`{"type":"stdout","line":"Hello from sandbox!","timestamp":1764147600123}`,
		`{"type":"stderr","line":"warn","timestamp":1764147600124}`,
		`{"type":"display","result":{"text":"<Figure>","png":"iVBORw0KGgo=","futureMime":"x","extra":{"k":1}}}`,
		`{"type":"progress","whatever":true}`,
		`{"type":"exception","error":{"name":"ValueError","value":"bad","traceback":"Traceback\nValueError: bad"}}`,
		`{"type":"result","result":{"execution":{"logs":{"stdout":["Hello from sandbox!"],"stderr":["warn"]},
			"results":[{"text":"<Figure>","png":"iVBORw0KGgo="},{"text":"30","html":"<b>30</b>","json":{"a":[1]},"data":{"application/x-y":"z"},"isMainResult":true,"newField":[1,2]}],
			"error":{"name":"ValueError","value":"bad","traceback":"Traceback\nValueError: bad"},"executionCount":3,"truncated":true,"more":1},
			"metadata":{"durationMs":2,"contextId":"ctx-1","language":"python","sandboxId":"sb-1","host":"h"}}}`,
		`{"type":"stdout","line":"after the result is ignored"}`,
	))
	var got []string
	var stamps []time.Time
	line := func(l OutputLine) { got = append(got, l.Stream+":"+l.Line); stamps = append(stamps, l.Timestamp) }
	res, err := c.RunCode(t.Context(), "sb-1", "print('x')",
		Language(LanguagePython), InContext("ctx-1"), Env(map[string]string{"A": "1"}), Timeout(1500*time.Microsecond),
		OnStdout(line), OnStderr(line),
		OnResult(func(r Result) { got = append(got, "result:"+r.Text+":"+strings.Join(r.Formats(), ",")) }),
		OnError(func(e ExecutionError) { got = append(got, "error:"+e.Name+":"+e.Value) }),
	)
	if err != nil {
		t.Fatalf("RunCode: %v", err)
	}
	want := []string{"stdout:Hello from sandbox!", "stderr:warn", "result:<Figure>:image/png,text/plain", "error:ValueError:bad"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("callbacks = %q, want %q", got, want)
	}
	if !stamps[0].Equal(time.UnixMilli(1764147600123)) {
		t.Fatalf("timestamp = %v", stamps[0])
	}
	wantBody := map[string]any{"code": "print('x')", "language": "python", "context": "ctx-1", "envs": map[string]any{"A": "1"}, "timeoutMs": float64(2)}
	if !reflect.DeepEqual(body, wantBody) {
		t.Fatalf("request body = %v, want %v", body, wantBody)
	}
	ex := res.Execution
	if !reflect.DeepEqual(ex.Logs, Logs{Stdout: []string{"Hello from sandbox!"}, Stderr: []string{"warn"}}) ||
		ex.ExecutionCount != 3 || !ex.Truncated || ex.Error == nil || ex.Error.Traceback != "Traceback\nValueError: bad" {
		t.Fatalf("execution = %+v", ex)
	}
	if len(ex.Results) != 2 || ex.Results[0].PNG != "iVBORw0KGgo=" || ex.Results[0].IsMainResult {
		t.Fatalf("results = %+v", ex.Results)
	}
	main := ex.Results[1]
	if main.Text != "30" || main.HTML != "<b>30</b>" || string(main.JSON) != `{"a":[1]}` || !main.IsMainResult ||
		string(main.Data["application/x-y"]) != `"z"` {
		t.Fatalf("main result = %+v", main)
	}
	if f := main.Formats(); !reflect.DeepEqual(f, []string{"text/html", "application/json", "text/plain", "application/x-y"}) {
		t.Fatalf("Formats = %q", f)
	}
	if res.Metadata != (ExecutionMetadata{DurationMs: 2, ContextID: "ctx-1", Language: "python", SandboxID: "sb-1"}) ||
		res.Metadata.Duration() != 2*time.Millisecond {
		t.Fatalf("metadata = %+v", res.Metadata)
	}
	// The JSON form is the wire form: it decodes back to the same value.
	data, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var again ExecutionResult
	if err := json.Unmarshal(data, &again); err != nil || !reflect.DeepEqual(&again, res) {
		t.Fatalf("round trip = %+v, %v", again, err)
	}
}

func TestRunCodeMinimalBodyAndEmptyResult(t *testing.T) {
	var body map[string]any
	c := newTestClient(t, streamHandler(t, codePath, &body,
		`{"type":"result","result":{"execution":{"logs":{},"executionCount":1},"metadata":{}}}`))
	res, err := c.RunCode(t.Context(), "sb-1", "x = 1")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"code": "x = 1"}; !reflect.DeepEqual(body, want) {
		t.Fatalf("body = %v, want %v", body, want)
	}
	// Missing lists decode as empty, never nil.
	if res.Execution.Logs.Stdout == nil || res.Execution.Logs.Stderr == nil || res.Execution.Results == nil || res.Execution.Error != nil {
		t.Fatalf("execution = %#v", res.Execution)
	}
}

func TestRunCodeFailures(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   func(t *testing.T, err error)
	}{
		{"timeout after output", streamHandler(t, codePath, nil,
			`{"type":"stdout","line":"started","timestamp":1}`,
			`{"type":"error","error":{"code":"timeout","message":"execution timed out after 1000 ms and was interrupted; the context's state was kept"}}`),
			func(t *testing.T, err error) {
				var te *TimeoutError
				if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) || te.StatusCode != 408 ||
					!strings.Contains(te.Message, "state was kept") {
					t.Fatalf("err = %v (%T), want TimeoutError saying the state was kept", err, err)
				}
			}},
		{"timeout before output", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, 408, "timeout", "execution timed out after 5 ms and was interrupted; the context was restarted and its state was lost")
		}, func(t *testing.T, err error) {
			var te *TimeoutError
			if !errors.As(err, &te) || !strings.Contains(te.Message, "state was lost") {
				t.Fatalf("err = %v (%T), want TimeoutError", err, err)
			}
		}},
		{"bad input", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, 400, "invalid_argument", "code is required")
		}, func(t *testing.T, err error) {
			var se *SandboxError
			if !errors.As(err, &se) || !errors.Is(err, ErrInvalidArgument) || se.SandboxID != "sb-1" || se.Message != "code is required" {
				t.Fatalf("err = %v (%T), want SandboxError invalid_argument", err, err)
			}
		}},
		{"unknown context", streamHandler(t, codePath, nil,
			`{"type":"error","error":{"code":"not_found","message":"context ctx-x: not found in sandbox sb-1"}}`),
			func(t *testing.T, err error) {
				if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "ctx-x") {
					t.Fatalf("err = %v, want ErrNotFound naming the context", err)
				}
			}},
		{"stream ends without result", streamHandler(t, codePath, nil, `{"type":"stdout","line":"x","timestamp":1}`),
			func(t *testing.T, err error) {
				var ce *ConnectionError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), "before the final result") {
					t.Fatalf("err = %v (%T), want ConnectionError", err, err)
				}
			}},
		{"result without result", streamHandler(t, codePath, nil, `{"type":"result"}`),
			func(t *testing.T, err error) {
				if !errors.Is(err, ErrInternal) {
					t.Fatalf("err = %v, want ErrInternal", err)
				}
			}},
		{"malformed display", streamHandler(t, codePath, nil, `{"type":"display","result":"not an object"}`),
			func(t *testing.T, err error) {
				if !errors.Is(err, ErrInternal) || !strings.Contains(err.Error(), "display") {
					t.Fatalf("err = %v, want ErrInternal naming the display event", err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, tt.handler)
			res, err := c.RunCode(t.Context(), "sb-1", "x")
			if err == nil {
				t.Fatalf("RunCode = %+v, want an error", res)
			}
			tt.check(t, err)
		})
	}
}

// TestRunCodeDeliversLinesBeforeTheEnd checks that a line reaches its
// callback while the server still holds the rest of the response back.
func TestRunCodeDeliversLinesBeforeTheEnd(t *testing.T) {
	seen := make(chan struct{})
	c := newTestClient(t, earlyLineHandler(seen, `{"type":"result","result":{"execution":{"logs":{"stdout":["early"]}},"metadata":{}}}`))
	_, err := c.RunCode(t.Context(), "sb-1", "x", OnStdout(func(l OutputLine) {
		if l.Line == "early" {
			close(seen)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
}

func TestCodeCallsAreNotRetried(t *testing.T) {
	var hits atomic.Int32
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		writeError(w, 503, "unavailable", "agent unreachable")
	}))
	if _, err := c.RunCode(t.Context(), "sb-1", "x"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("RunCode = %v", err)
	}
	if _, err := c.RunBatch(t.Context(), "sb-1", []BatchJob{{ID: "a", Code: "x"}}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("RunBatch = %v", err)
	}
	if _, err := c.CreateContext(t.Context(), "sb-1", ContextOptions{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("CreateContext = %v", err)
	}
	if n := hits.Load(); n != 3 {
		t.Fatalf("server saw %d requests, want 3 (no retries)", n)
	}
}

func TestRunCodePlainJSONFallback(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{
			"execution": map[string]any{"logs": map[string]any{"stdout": []string{"a"}, "stderr": []string{"b"}},
				"results": []any{map[string]any{"text": "1", "isMainResult": true}},
				"error":   map[string]any{"name": "E", "value": "v", "traceback": "tb"}},
			"metadata": map[string]any{"contextId": "ctx-1"},
		})
	}))
	var got []string
	res, err := c.RunCode(t.Context(), "sb-1", "x",
		OnStdout(func(l OutputLine) { got = append(got, "out:"+l.Line) }),
		OnStderr(func(l OutputLine) { got = append(got, "err:"+l.Line) }),
		OnResult(func(r Result) { got = append(got, "result:"+r.Text) }),
		OnError(func(e ExecutionError) { got = append(got, "error:"+e.Name) }),
	)
	if err != nil || res.Metadata.ContextID != "ctx-1" {
		t.Fatalf("RunCode = %+v, %v", res, err)
	}
	if want := []string{"out:a", "err:b", "result:1", "error:E"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("replayed = %q, want %q", got, want)
	}
}

func TestRunCodeClientDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c := newTestClient(t, stallHandler(release), func(cfg *Config) { cfg.Timeout = 20 * time.Millisecond })
	_, err := c.RunCode(t.Context(), "sb-1", "while True: pass", Timeout(30*time.Millisecond))
	var te *TimeoutError
	if !errors.As(err, &te) || !strings.Contains(te.Message, "no response within 50ms") {
		t.Fatalf("err = %v (%T), want TimeoutError after the run's timeout + Timeout", err, err)
	}
}

func TestRunBatch(t *testing.T) {
	var body map[string]any
	c := newTestClient(t, streamHandler(t, "/v1/sandboxes/sb-1/batch", &body,
		`{"type":"stdout","jobId":"b","line":"b1","timestamp":1}`,
		`{"type":"stdout","jobId":"a","line":"a1","timestamp":2}`,
		`{"type":"exception","jobId":"c","error":{"name":"ZeroDivisionError","value":"division by zero","traceback":"tb"}}`,
		`{"type":"stderr","jobId":"a","line":"a2","timestamp":3}`,
		`{"type":"result","result":{"results":[
			{"jobId":"a","success":true,"duration":12,"execution":{"logs":{"stdout":["a1"],"stderr":["a2"]},"results":[],"executionCount":1}},
			{"jobId":"b","success":true,"duration":3,"execution":{"logs":{"stdout":["b1"],"stderr":[]},"results":[],"executionCount":1}},
			{"jobId":"c","success":false,"error":"ZeroDivisionError: division by zero","duration":4,"execution":{"logs":{"stdout":[],"stderr":[]},"results":[],"error":{"name":"ZeroDivisionError","value":"division by zero","traceback":"tb"},"executionCount":1}},
			{"jobId":"d","success":false,"error":"execution timed out","duration":1000,"execution":null}]}}`,
	))
	var lines []string
	cb := func(l OutputLine) { lines = append(lines, l.JobID+":"+l.Stream+":"+l.Line) }
	results, err := c.RunBatch(t.Context(), "sb-1", []BatchJob{
		{ID: "a", Code: "print('a1')"},
		{ID: "b", Code: "print('b1')", Priority: 5, Timeout: 10 * time.Second},
		{ID: "c", Code: "1/0", Language: "python"},
		{ID: "d", Code: "while True: pass", Context: "ctx-1", Timeout: time.Second},
	}, Concurrency(2), Env(map[string]string{"K": "V"}), OnStdout(cb), OnStderr(cb))
	if err != nil {
		t.Fatalf("RunBatch: %v", err)
	}
	wantBody := map[string]any{
		"jobs": []any{
			map[string]any{"id": "a", "code": "print('a1')"},
			map[string]any{"id": "b", "code": "print('b1')", "priority": float64(5), "timeout": float64(10000)},
			map[string]any{"id": "c", "code": "1/0", "language": "python"},
			map[string]any{"id": "d", "code": "while True: pass", "context": "ctx-1", "timeout": float64(1000)},
		},
		"concurrency": float64(2),
		"envs":        map[string]any{"K": "V"},
	}
	if !reflect.DeepEqual(body, wantBody) {
		t.Fatalf("body = %v, want %v", body, wantBody)
	}
	if want := []string{"b:stdout:b1", "a:stdout:a1", "a:stderr:a2"}; !reflect.DeepEqual(lines, want) {
		t.Fatalf("lines = %q, want %q", lines, want)
	}
	var ids []string
	for _, r := range results {
		ids = append(ids, r.JobID)
	}
	if !reflect.DeepEqual(ids, []string{"a", "b", "c", "d"}) {
		t.Fatalf("job order = %q", ids)
	}
	if !results[0].Success || results[0].Duration() != 12*time.Millisecond || results[0].Execution.Logs.Stdout[0] != "a1" {
		t.Fatalf("a = %+v", results[0])
	}
	if results[2].Success || results[2].Execution.Error.Name != "ZeroDivisionError" || results[2].Error != "ZeroDivisionError: division by zero" {
		t.Fatalf("c = %+v", results[2])
	}
	if results[3].Execution != nil || results[3].Error == "" {
		t.Fatalf("d = %+v", results[3])
	}
}

func TestContexts(t *testing.T) {
	type seen struct{ method, uri, body string }
	var (
		mu      sync.Mutex
		reqs    []seen
		deletes atomic.Int32
	)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, seen{r.Method, r.RequestURI, string(b)})
		mu.Unlock()
		switch {
		case r.Method == "POST":
			writeJSON(w, 201, map[string]any{"id": "ctx-1", "sandboxId": "sb-1", "language": "python", "cwd": "/work",
				"envVars": map[string]string{"A": "1"}, "createdAt": "2026-11-26T09:00:00Z", "default": false, "future": true})
		case r.Method == "GET":
			io.WriteString(w, `{"contexts":[{"id":"ctx-0","default":true},{"id":"ctx-1"}]}`)
		case r.Method == "DELETE" && deletes.Add(1) == 1:
			writeError(w, 503, "unavailable", "busy")
		case r.Method == "DELETE":
			w.WriteHeader(204)
		}
	}))
	ctx := t.Context()
	cc, err := c.CreateContext(ctx, "sb-1", ContextOptions{Language: "python", Cwd: "/work", Env: map[string]string{"A": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := CodeContext{ID: "ctx-1", SandboxID: "sb-1", Language: "python", Cwd: "/work", EnvVars: map[string]string{"A": "1"},
		CreatedAt: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	if !reflect.DeepEqual(*cc, want) {
		t.Fatalf("context = %+v, want %+v", *cc, want)
	}
	if _, err := c.CreateContext(ctx, "sb-1", ContextOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListContexts(ctx, "sb-1")
	if err != nil || len(list) != 2 || !list[0].Default || list[1].ID != "ctx-1" {
		t.Fatalf("ListContexts = %+v, %v", list, err)
	}
	// DELETE is safe to repeat: the 503 is retried.
	if err := c.DeleteContext(ctx, "ctx/1"); err != nil {
		t.Fatalf("DeleteContext: %v", err)
	}
	wantReqs := []seen{
		{"POST", "/v1/sandboxes/sb-1/contexts", `{"language":"python","cwd":"/work","envs":{"A":"1"}}`},
		{"POST", "/v1/sandboxes/sb-1/contexts", `{}`},
		{"GET", "/v1/sandboxes/sb-1/contexts", ""},
		{"DELETE", "/v1/contexts/ctx%2F1", ""},
		{"DELETE", "/v1/contexts/ctx%2F1", ""},
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(reqs, wantReqs) {
		t.Fatalf("requests = %q, want %q", reqs, wantReqs)
	}
}

func TestCodeCallsRefuseEmptyIDsLocally(t *testing.T) {
	var hits atomic.Int32
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	ctx := t.Context()
	calls := map[string]func() error{
		"RunCode":       func() error { _, err := c.RunCode(ctx, "", "x"); return err },
		"RunBatch":      func() error { _, err := c.RunBatch(ctx, ".", nil); return err },
		"CreateContext": func() error { _, err := c.CreateContext(ctx, "", ContextOptions{}); return err },
		"ListContexts":  func() error { _, err := c.ListContexts(ctx, ".."); return err },
		"DeleteContext": func() error { return c.DeleteContext(ctx, "") },
		"WriteFile":     func() error { _, err := c.WriteFile(ctx, "", "/x", strings.NewReader("")); return err },
		"ReadFile":      func() error { _, err := c.ReadFile(ctx, "", "/x"); return err },
		"DeleteFile":    func() error { return c.DeleteFile(ctx, "", "/x", false) },
		"ListFiles":     func() error { _, err := c.ListFiles(ctx, "", "/x"); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s with an empty id = %v, want ErrInvalidArgument", name, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("server saw %d requests, want 0", n)
	}
}

func TestResultDecodesPNG(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n rest")
	var r Result
	data := `{"text":"<Figure size 640x480 with 1 Axes>","png":"` + base64.StdEncoding.EncodeToString(png) + `","unknown":{"deep":[1]}}`
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		t.Fatal(err)
	}
	got, err := base64.StdEncoding.DecodeString(r.PNG)
	if err != nil || string(got) != string(png) {
		t.Fatalf("PNG = %q, %v", got, err)
	}
}
