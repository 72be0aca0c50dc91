package api

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/sandbox"
)

// sockEvent is an event the server emitted.
type sockEvent struct {
	Name string
	Data map[string]any
}

// awaitAckEvents reads packets until the ack of id, returning every event
// seen before it.
func (c *pollClient) awaitAckEvents(id int) (ack, []sockEvent) {
	c.t.Helper()
	var events []sockEvent
	prefix := "3" + strconv.Itoa(id) + "["
	for {
		p := c.next()
		switch {
		case strings.HasPrefix(p, prefix):
			var args []ack
			if err := json.Unmarshal([]byte(p[len(prefix)-1:]), &args); err != nil || len(args) != 1 {
				c.t.Fatalf("ack %q: %v", p, err)
			}
			return args[0], events
		case strings.HasPrefix(p, `2[`):
			var ev []json.RawMessage
			var se sockEvent
			if err := json.Unmarshal([]byte(p[1:]), &ev); err != nil || len(ev) != 2 ||
				json.Unmarshal(ev[0], &se.Name) != nil || json.Unmarshal(ev[1], &se.Data) != nil {
				c.t.Fatalf("event %q: %v", p, err)
			}
			events = append(events, se)
		default:
			c.t.Fatalf("unexpected packet %q", p)
		}
	}
}

// connected returns a polling client connected as tenant A.
func connected(t *testing.T, e *env) *pollClient {
	t.Helper()
	c := dialPolling(t, e)
	if got := c.connect(`{"apiKey":"` + keyA + `"}`); !strings.HasPrefix(got, `0{"sid":`) {
		t.Fatalf("connect: %q", got)
	}
	return c
}

// describe renders events compactly: name, jobId, then the line or the
// result/error.
func describe(events []sockEvent) string {
	var out []string
	for _, ev := range events {
		s := strings.TrimPrefix(ev.Name, "stream:")
		if j, ok := ev.Data["jobId"]; ok {
			s += "[" + fmt.Sprint(j) + "]"
		}
		switch ev.Name {
		case "stream:output":
			s += " " + ev.Data["stream"].(string) + " " + ev.Data["line"].(string)
		case "stream:result":
			s += " " + jsonOf(ev.Data["result"])
		case "stream:error":
			s += " " + jsonOf(ev.Data["error"])
		}
		out = append(out, s)
	}
	return strings.Join(out, "\n")
}

func TestSocketRunCode(t *testing.T) {
	e := newEnv(t)
	c := connected(t, e)
	id := createSandbox(t, e)

	a, events := c.awaitAckEvents(c.emit("code:run", map[string]any{
		"sandboxId": id, "streamId": "c-1",
		"code": "print(\"hello\")\nprint(\"warn\", file=sys.stderr)\ndisplay(\"fig\")\nx = 10\nx",
	}))
	if !a.OK {
		t.Fatalf("code:run: %+v", a.Error)
	}
	want := "output stdout hello\noutput stderr warn\nresult {\"text\":\"'fig'\"}"
	if got := describe(events); got != want {
		t.Fatalf("events:\n%s\nwant:\n%s", got, want)
	}
	for _, ev := range events {
		if ev.Data["streamId"] != "c-1" {
			t.Errorf("event %+v", ev)
		}
		if ev.Name == "stream:output" && ev.Data["timestamp"].(float64) < 1.6e12 {
			t.Errorf("timestamp %v", ev.Data["timestamp"])
		}
	}
	exec := a.Data["execution"].(map[string]any)
	if got := jsonOf(exec["results"]); got != `[{"text":"'fig'"},{"isMainResult":true,"text":"10"}]` {
		t.Errorf("results %s", got)
	}
	if got := jsonOf(exec["logs"]); got != `{"stderr":["warn"],"stdout":["hello"]}` {
		t.Errorf("logs %s", got)
	}

	a, events = c.awaitAckEvents(c.emit("code:run", map[string]any{"sandboxId": id, "streamId": "c-2", "code": "print(x)\n1/0"}))
	want = "output stdout 10\nerror {\"name\":\"ZeroDivisionError\",\"traceback\":\"Traceback (most recent call last):\\n  Cell In[2], line 2\\n    1/0\\nZeroDivisionError: division by zero\",\"value\":\"division by zero\"}"
	if got := describe(events); !a.OK || got != want {
		t.Fatalf("ack %+v events:\n%s\nwant:\n%s", a, got, want)
	}
	if xerr := a.Data["execution"].(map[string]any)["error"].(map[string]any); xerr["name"] != "ZeroDivisionError" {
		t.Fatalf("error %v", xerr)
	}

	// Without a streamId nothing is streamed.
	a, events = c.awaitAckEvents(c.emit("code:run", map[string]any{"sandboxId": id, "code": "print(1)"}))
	if !a.OK || len(events) != 0 {
		t.Fatalf("ack %+v events %v", a, events)
	}

	tests := []struct {
		payload map[string]any
		code    string
		inMsg   string
	}{
		{map[string]any{"code": "1"}, "invalid_argument", "sandboxId"},
		{map[string]any{"sandboxId": id, "code": "1", "streamId": ""}, "invalid_argument", "streamId"},
		{map[string]any{"sandboxId": id, "code": "1", "stream": "s"}, "invalid_argument", `"stream"`},
		{map[string]any{"sandboxId": id, "code": "1", "timeoutMs": "5"}, "invalid_argument", `"timeoutMs"`},
		{map[string]any{"sandboxId": id, "code": "1", "envs": map[string]any{"A": nil}}, "invalid_argument", `"envs.A"`},
		{map[string]any{"sandboxId": id, "code": ""}, "invalid_argument", "code"},
		{map[string]any{"sandboxId": "sb-none", "code": "1"}, "not_found", "sb-none"},
		{map[string]any{"sandboxId": id, "code": "1", "context": "ctx-none"}, "not_found", "ctx-none"},
		{map[string]any{"sandboxId": id, "code": "time.sleep(100)", "timeoutMs": 20}, "timeout", "ran past"},
	}
	for i, tt := range tests {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			a, _ := c.awaitAckEvents(c.emit("code:run", tt.payload))
			if a.OK || a.Error.Code != tt.code || !strings.Contains(a.Error.Message, tt.inMsg) {
				t.Fatalf("ack %+v %+v, want %s naming %s", a, a.Error, tt.code, tt.inMsg)
			}
		})
	}
}

// TestSocketStreamIDShared: code:run, batch:run and terminal:run draw
// their streamIds from one set per socket.
func TestSocketStreamIDShared(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	e.svc.Code = func(ctx context.Context, req sandbox.RunCodeRequest, onEvent func(sandbox.CodeEvent)) (sandbox.ExecutionResult, error) {
		onEvent(sandbox.CodeEvent{Type: sandbox.CodeStdout, Line: "running", Timestamp: time.Now()})
		select {
		case <-release:
		case <-ctx.Done():
		}
		return sandbox.ExecutionResult{}, nil
	}
	c := connected(t, e)
	id := createSandbox(t, e)
	first := c.emit("code:run", map[string]any{"sandboxId": id, "streamId": "dup", "code": "x"})
	if p := c.next(); !strings.Contains(p, `"line":"running"`) {
		t.Fatalf("packet %q", p)
	}
	for _, ev := range []struct {
		name    string
		payload map[string]any
	}{
		{"terminal:run", map[string]any{"sandboxId": id, "streamId": "dup", "command": "true"}},
		{"code:run", map[string]any{"sandboxId": id, "streamId": "dup", "code": "x"}},
		{"batch:run", map[string]any{"sandboxId": id, "streamId": "dup", "jobs": []any{map[string]any{"id": "j", "code": "x"}}}},
	} {
		a, _ := c.awaitAckEvents(c.emit(ev.name, ev.payload))
		if a.OK || a.Error.Code != "invalid_argument" || !strings.Contains(a.Error.Message, `"dup"`) {
			t.Fatalf("%s with a streamId in flight: %+v", ev.name, a.Error)
		}
	}
	close(release)
	if a, _ := c.awaitAckEvents(first); !a.OK {
		t.Fatalf("first: %+v", a.Error)
	}
	// Freed once acked.
	if a, _ := c.awaitAckEvents(c.emit("code:run", map[string]any{"sandboxId": id, "streamId": "dup", "code": "x"})); !a.OK {
		t.Fatalf("reuse after the ack: %+v", a.Error)
	}
}

func TestSocketDisconnectCancelsCode(t *testing.T) {
	e := newEnv(t)
	started, cancelled := make(chan struct{}), make(chan struct{})
	e.svc.Code = func(ctx context.Context, req sandbox.RunCodeRequest, onEvent func(sandbox.CodeEvent)) (sandbox.ExecutionResult, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return sandbox.ExecutionResult{}, ctx.Err()
	}
	c := connected(t, e)
	c.emit("code:run", map[string]any{"sandboxId": createSandbox(t, e), "code": "time.sleep(1000)"})
	<-started
	c.send("41")
	<-cancelled
}

func TestSocketContexts(t *testing.T) {
	e := newEnv(t)
	c := connected(t, e)
	id := createSandbox(t, e)

	a, _ := c.awaitAckEvents(c.emit("context:create", map[string]any{"sandboxId": id, "language": "python", "cwd": "/tmp", "envs": map[string]any{"A": "1"}}))
	if !a.OK || a.Data["cwd"] != "/tmp" || a.Data["language"] != "python" || jsonOf(a.Data["envVars"]) != `{"A":"1"}` || a.Data["default"] != false {
		t.Fatalf("create: %+v %+v", a, a.Error)
	}
	ctxID := a.Data["id"].(string)
	if a, _ := c.awaitAckEvents(c.emit("code:run", map[string]any{"sandboxId": id, "context": ctxID, "code": "y = 5\nprint(os.environ[\"A\"])"})); !a.OK ||
		jsonOf(a.Data["execution"].(map[string]any)["logs"]) != `{"stderr":[],"stdout":["1"]}` {
		t.Fatalf("run in context: %+v", a)
	}
	a, _ = c.awaitAckEvents(c.emit("context:list", map[string]any{"sandboxId": id}))
	if list, _ := a.Data["contexts"].([]any); !a.OK || len(list) != 1 || list[0].(map[string]any)["id"] != ctxID {
		t.Fatalf("list: %+v", a)
	}
	a, _ = c.awaitAckEvents(c.emit("context:delete", map[string]any{"contextId": ctxID}))
	if !a.OK || len(a.Data) != 0 {
		t.Fatalf("delete: %+v", a)
	}
	a, _ = c.awaitAckEvents(c.emit("context:list", map[string]any{"sandboxId": id}))
	if !a.OK || jsonOf(a.Data["contexts"]) != "[]" {
		t.Fatalf("list after delete: %+v", a)
	}

	tests := []struct {
		event   string
		payload any
		code    string
		inMsg   string
	}{
		{"context:delete", map[string]any{"contextId": ctxID}, "not_found", ctxID},
		{"context:delete", map[string]any{}, "invalid_argument", "contextId"},
		{"context:delete", map[string]any{"contextId": ctxID, "sandboxId": id}, "invalid_argument", `"sandboxId"`},
		{"context:create", map[string]any{"language": "python"}, "invalid_argument", "sandboxId"},
		{"context:create", map[string]any{"sandboxId": id, "cwd": 5}, "invalid_argument", `"cwd"`},
		{"context:create", map[string]any{"sandboxId": id, "env": map[string]any{}}, "invalid_argument", `"env"`},
		{"context:create", map[string]any{"sandboxId": id, "language": "cobol"}, "invalid_argument", "cobol"},
		{"context:create", map[string]any{"sandboxId": "sb-none"}, "not_found", "sb-none"},
		{"context:list", nil, "invalid_argument", "sandboxId"},
		{"context:list", map[string]any{"sandboxId": "sb-none"}, "not_found", "sb-none"},
	}
	for i, tt := range tests {
		t.Run(strconv.Itoa(i)+" "+tt.event, func(t *testing.T) {
			a, _ := c.awaitAckEvents(c.emit(tt.event, tt.payload))
			if a.OK || a.Error.Code != tt.code || !strings.Contains(a.Error.Message, tt.inMsg) {
				t.Fatalf("ack %+v %+v, want %s naming %s", a, a.Error, tt.code, tt.inMsg)
			}
		})
	}
}

func TestSocketBatch(t *testing.T) {
	e := newEnv(t)
	c := connected(t, e)
	id := createSandbox(t, e)
	a, events := c.awaitAckEvents(c.emit("batch:run", map[string]any{
		"sandboxId": id, "streamId": "b-1", "concurrency": 3,
		"jobs": []any{
			map[string]any{"id": "a", "code": "print(\"a1\")\nprint(\"a2\")\nprint(\"a3\")"},
			map[string]any{"id": "b", "code": "display(1)\nraise ValueError(\"bad\")", "timeout": 5000},
			map[string]any{"id": "c", "code": "print(\"c1\")", "priority": 9},
		},
	}))
	if !a.OK {
		t.Fatalf("batch:run: %+v", a.Error)
	}
	perJob := map[string][]string{}
	for _, ev := range events {
		job, ok := ev.Data["jobId"].(string)
		if !ok || ev.Data["streamId"] != "b-1" {
			t.Fatalf("event without jobId or streamId: %+v", ev)
		}
		perJob[job] = append(perJob[job], describe([]sockEvent{{Name: ev.Name, Data: ev.Data}}))
	}
	want := map[string][]string{
		"a": {"output[a] stdout a1", "output[a] stdout a2", "output[a] stdout a3"},
		"b": {`result[b] {"text":"1"}`, `error[b] {"name":"ValueError","traceback":"Traceback (most recent call last):\n  Cell In[1], line 2\n    raise ValueError(\"bad\")\nValueError: bad","value":"bad"}`},
		"c": {"output[c] stdout c1"},
	}
	if fmt.Sprint(perJob) != fmt.Sprint(want) {
		t.Fatalf("events per job:\n%v\nwant:\n%v", perJob, want)
	}
	results := a.Data["results"].([]any)
	var summary []string
	for _, r := range results {
		r := r.(map[string]any)
		summary = append(summary, fmt.Sprintf("%v %v %v", r["jobId"], r["success"], r["error"]))
	}
	if got := strings.Join(summary, "; "); got != "a true <nil>; b false ValueError: bad; c true <nil>" {
		t.Fatalf("results %s", got)
	}

	tests := []struct {
		payload map[string]any
		inMsg   string
	}{
		{map[string]any{"sandboxId": id, "jobs": []any{map[string]any{"id": "a", "code": "1", "timeout": true}}}, `"jobs[0].timeout"`},
		{map[string]any{"sandboxId": id, "jobs": []any{map[string]any{"id": "a", "code": "1", "ctx": "x"}}}, `"jobs[0].ctx"`},
		{map[string]any{"sandboxId": id, "jobs": "print(1)"}, `"jobs"`},
		{map[string]any{"sandboxId": id, "jobs": []any{}}, "jobs"},
		{map[string]any{"sandboxId": id, "jobs": []any{map[string]any{"id": "a", "code": "1"}}, "concurrency": 1.5}, `"concurrency"`},
		{map[string]any{"jobs": []any{map[string]any{"id": "a", "code": "1"}}}, "sandboxId"},
	}
	for i, tt := range tests {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			a, _ := c.awaitAckEvents(c.emit("batch:run", tt.payload))
			if a.OK || a.Error.Code != "invalid_argument" || !strings.Contains(a.Error.Message, tt.inMsg) {
				t.Fatalf("ack %+v, want naming %s", a.Error, tt.inMsg)
			}
		})
	}
}

func TestSocketCreateTemplate(t *testing.T) {
	e := newEnv(t)
	c := connected(t, e)
	a, _ := c.awaitAckEvents(c.emit("template:create", map[string]any{
		"name": "Custom", "language": "python", "dependencies": []any{"pandas"}, "defaultEnvVars": map[string]any{"ML_ENV": "prod"},
	}))
	if !a.OK || a.Data["status"] != "building" || jsonOf(a.Data["dependencies"]) != `["pandas"]` {
		t.Fatalf("create: %+v %+v", a, a.Error)
	}
	a, _ = c.awaitAckEvents(c.emit("template:get", map[string]any{"templateId": a.Data["id"]}))
	if !a.OK {
		t.Fatalf("get: %+v", a.Error)
	}
	for _, p := range []map[string]any{
		{"name": "x", "language": "python", "dependencies": []any{1}},
		{"name": "x", "language": "python", "templateId": "t"},
		{"language": "python"},
	} {
		a, _ := c.awaitAckEvents(c.emit("template:create", p))
		if a.OK || a.Error.Code != "invalid_argument" {
			t.Errorf("%v: %+v", p, a)
		}
	}
}
