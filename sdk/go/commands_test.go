package sdbx

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

const commandsPath = "/v1/sandboxes/sb-1/commands"

func TestRunCommandStreamsInOrder(t *testing.T) {
	var body map[string]any
	c := newTestClient(t, streamHandler(t, commandsPath, &body,
		`{"type":"stdout","line":"one","timestamp":1764147600123}`,
		`{"type":"stderr","line":"warn","timestamp":1764147600124}`,
		`{"type":"progress","whatever":true}`,
		`{"type":"stdout","line":"two","timestamp":1764147600125}`,
		`{"type":"result","result":{"exitCode":3,"stdout":["one","two"],"stderr":["warn"],"durationMs":5,"truncated":true}}`,
		`{"type":"stdout","line":"after the result is ignored"}`,
	))
	var got []string
	var stamps []time.Time
	res, err := c.RunCommand(t.Context(), "sb-1",
		Command{Args: []string{"sh", "-c", "x"}, Env: map[string]string{"A": "1"}, Cwd: "/tmp", Timeout: 1500 * time.Millisecond},
		OnStdout(func(l OutputLine) { got = append(got, l.Stream+":"+l.Line); stamps = append(stamps, l.Timestamp) }),
		OnStderr(func(l OutputLine) { got = append(got, l.Stream+":"+l.Line); stamps = append(stamps, l.Timestamp) }),
	)
	if err != nil {
		t.Fatalf("RunCommand: %v", err)
	}
	if want := []string{"stdout:one", "stderr:warn", "stdout:two"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("callbacks = %q, want %q", got, want)
	}
	if !stamps[0].Equal(time.UnixMilli(1764147600123)) || !stamps[2].Equal(time.UnixMilli(1764147600125)) {
		t.Fatalf("timestamps = %v", stamps)
	}
	want := &CommandResult{ExitCode: 3, Stdout: []string{"one", "two"}, Stderr: []string{"warn"}, DurationMs: 5, Truncated: true}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("result = %+v, want %+v", res, want)
	}
	wantBody := map[string]any{"args": []any{"sh", "-c", "x"}, "envs": map[string]any{"A": "1"}, "cwd": "/tmp", "timeoutMs": float64(1500)}
	if !reflect.DeepEqual(body, wantBody) {
		t.Fatalf("request body = %v, want %v", body, wantBody)
	}
}

func TestRunCommandShellFormBody(t *testing.T) {
	var body map[string]any
	c := newTestClient(t, streamHandler(t, commandsPath, &body, `{"type":"result","result":{"exitCode":0,"stdout":[],"stderr":[],"durationMs":1}}`))
	if _, err := c.RunCommand(t.Context(), "sb-1", Command{Command: "echo hi | wc -c"}); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"command": "echo hi | wc -c"}; !reflect.DeepEqual(body, want) {
		t.Fatalf("request body = %v, want %v", body, want)
	}
}

// TestRunCommandDeliversLinesBeforeTheEnd checks that a line reaches its
// callback while the server still holds the rest of the response back.
func TestRunCommandDeliversLinesBeforeTheEnd(t *testing.T) {
	seen := make(chan struct{})
	c := newTestClient(t, earlyLineHandler(seen, `{"type":"result","result":{"exitCode":0,"stdout":["early"],"stderr":[],"durationMs":1}}`))
	res, err := c.RunCommand(t.Context(), "sb-1", Command{Command: "x"},
		OnStdout(func(l OutputLine) {
			if l.Line == "early" {
				close(seen)
			}
		}))
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("RunCommand = %+v, %v", res, err)
	}
}

func TestRunCommandFailures(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   func(t *testing.T, err error)
	}{
		{"timeout event", streamHandler(t, commandsPath, nil,
			`{"type":"stdout","line":"partial","timestamp":1}`,
			`{"type":"error","error":{"code":"timeout","message":"command: timed out after 1s"}}`),
			func(t *testing.T, err error) {
				var te *TimeoutError
				if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) || te.StatusCode != 408 || te.Message != "command: timed out after 1s" {
					t.Fatalf("err = %v (%T), want TimeoutError", err, err)
				}
			}},
		{"conflict event", streamHandler(t, commandsPath, nil, `{"type":"error","error":{"code":"conflict","message":"sandbox sb-1: terminated"}}`),
			func(t *testing.T, err error) {
				var se *SandboxError
				if !errors.As(err, &se) || !errors.Is(err, ErrConflict) || se.SandboxID != "sb-1" {
					t.Fatalf("err = %v (%T), want SandboxError conflict", err, err)
				}
			}},
		{"unavailable event", streamHandler(t, commandsPath, nil, `{"type":"error","error":{"code":"unavailable","message":"agent gone"}}`),
			func(t *testing.T, err error) {
				var e *Error
				if !errors.As(err, &e) || !errors.Is(err, ErrUnavailable) || e.StatusCode != 503 {
					t.Fatalf("err = %v (%T), want Error unavailable", err, err)
				}
			}},
		{"stream ends without result", streamHandler(t, commandsPath, nil, `{"type":"stdout","line":"x","timestamp":1}`),
			func(t *testing.T, err error) {
				var ce *ConnectionError
				if !errors.As(err, &ce) || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "before the command's result") {
					t.Fatalf("err = %v (%T), want ConnectionError", err, err)
				}
			}},
		{"malformed line", streamHandler(t, commandsPath, nil, `{"type":"stdout","line":`+"\n"+`}`),
			func(t *testing.T, err error) {
				if !errors.Is(err, ErrInternal) {
					t.Fatalf("err = %v (%T), want ErrInternal", err, err)
				}
			}},
		{"error before the stream", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, 400, "invalid_argument", "cwd: must be an absolute path")
		}, func(t *testing.T, err error) {
			var se *SandboxError
			if !errors.As(err, &se) || !errors.Is(err, ErrInvalidArgument) || se.StatusCode != 400 || se.Message != "cwd: must be an absolute path" {
				t.Fatalf("err = %v (%T), want SandboxError invalid_argument", err, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, tt.handler)
			res, err := c.RunCommand(t.Context(), "sb-1", Command{Command: "x"})
			if err == nil {
				t.Fatalf("RunCommand = %+v, want an error", res)
			}
			tt.check(t, err)
		})
	}
}

func TestRunCommandPlainJSONFallback(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"exitCode": 1, "stdout": []string{"a", "b"}, "stderr": []string{"c"}, "durationMs": 2})
	}))
	var got []string
	cb := func(l OutputLine) { got = append(got, fmt.Sprintf("%s:%s", l.Stream, l.Line)) }
	res, err := c.RunCommand(t.Context(), "sb-1", Command{Command: "x"}, OnStdout(cb), OnStderr(cb))
	if err != nil || res.ExitCode != 1 {
		t.Fatalf("RunCommand = %+v, %v", res, err)
	}
	if want := []string{"stdout:a", "stdout:b", "stderr:c"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("replayed = %q, want %q", got, want)
	}
}

func TestRunCommandClientDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c := newTestClient(t, stallHandler(release), func(cfg *Config) { cfg.Timeout = 20 * time.Millisecond })
	_, err := c.RunCommand(t.Context(), "sb-1", Command{Command: "sleep 100", Timeout: 30 * time.Millisecond})
	var te *TimeoutError
	if !errors.As(err, &te) || !strings.Contains(te.Message, "no response within 50ms") {
		t.Fatalf("err = %v (%T), want TimeoutError after command timeout + Timeout", err, err)
	}
}
