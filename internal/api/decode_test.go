package api

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
)

func TestDecodeObject(t *testing.T) {
	okTests := []struct {
		in   string
		want runPayload
	}{
		{`{}`, runPayload{}},
		{` {"sandboxId":"sb-1"} `, runPayload{SandboxID: "sb-1"}},
		{`{"sandboxId":null,"args":null}`, runPayload{}},
		{`{"streamId":"s","args":["a","b"],"envs":{"K":"V"},"timeoutMs":5}`,
			runPayload{StreamID: ptr("s"), Args: []string{"a", "b"}, Envs: map[string]string{"K": "V"}, TimeoutMs: 5}},
		{`{"streamId":""}`, runPayload{StreamID: ptr("")}},
		{`{"timeoutMs":1e3}`, runPayload{TimeoutMs: 1000}},
	}
	for _, tt := range okTests {
		var got runPayload
		if err := decodeObject("payload", []byte(tt.in), &got); err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.in, got, tt.want)
		}
	}

	errTests := []struct{ in, want string }{
		{`{"sandboxid":"x"}`, `unknown field "sandboxid"`},
		{`{"b":1,"a":2}`, `unknown field "a"`}, // the first in sorted order
		{`{"sandboxId":true}`, `field "sandboxId": expected a string, got a boolean`},
		{`{"args":"ls"}`, `field "args": expected an array of strings, got a string`},
		{`{"args":["ls",null]}`, `field "args[1]": expected a string, got null`},
		{`{"envs":{"A":{}}}`, `field "envs.A": expected a string, got an object`},
		{`{"timeoutMs":-1.25}`, `field "timeoutMs": expected an integer, got number -1.25`},
		{`{"timeoutMs":99999999999999999999}`, `field "timeoutMs": expected an integer, got number 99999999999999999999 (out of range)`},
		{`{"streamId":7}`, `field "streamId": expected a string, got a number`},
		{`{"sandboxId":"x"`, `payload: malformed JSON`},
		{`{"sandboxId":"x"}}`, `payload: unexpected data after the JSON object`},
		{`"x"`, `payload: expected a JSON object, got a string`},
		{`   `, `payload: empty`},
	}
	for _, tt := range errTests {
		var got runPayload
		err := decodeObject("payload", []byte(tt.in), &got)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.HasPrefix(errdefs.Message(err), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.in, err, tt.want)
		}
	}
}

// TestDecodeNested: objects inside arrays follow the top-level rules.
func TestDecodeNested(t *testing.T) {
	var got batchBody
	err := decodeObject("payload", []byte(`{"jobs":[{"id":"a","code":"1","timeout":1e3,"context":null}],"concurrency":2}`), &got)
	want := batchBody{Jobs: []batchJobJSON{{ID: "a", Code: "1", Timeout: 1000}}, Concurrency: 2}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v (%v), want %+v", got, err, want)
	}
	errTests := []struct{ in, want string }{
		{`{"jobs":[{"id":"a"},{"ID":"b"}]}`, `unknown field "jobs[1].ID"`},
		{`{"jobs":[{"id":"a","timeout":"1"}]}`, `field "jobs[0].timeout": expected an integer, got a string`},
		{`{"jobs":[[]]}`, `field "jobs[0]": expected an object, got an array`},
		{`{"jobs":[null]}`, `field "jobs[0]": expected an object, got null`},
		{`{"jobs":{}}`, `field "jobs": expected an array of objects, got an object`},
	}
	for _, tt := range errTests {
		var got batchBody
		err := decodeObject("payload", []byte(tt.in), &got)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || errdefs.Message(err) != tt.want+": invalid argument" {
			t.Errorf("%s: error %v, want %q", tt.in, err, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestMsDuration(t *testing.T) {
	tests := []struct {
		ms   int64
		want time.Duration
	}{
		{0, 0},
		{1500, 1500 * time.Millisecond},
		{-5, -5 * time.Millisecond},
		{math.MaxInt64, math.MaxInt64},
		{math.MinInt64, math.MinInt64},
	}
	for _, tt := range tests {
		if got := msDuration(tt.ms); got != tt.want {
			t.Errorf("msDuration(%d) = %v, want %v", tt.ms, got, tt.want)
		}
	}
}

func TestRetryAfterRounding(t *testing.T) {
	tests := []struct {
		d       time.Duration
		ms, sec int64
	}{
		{0, 0, 0},
		{time.Microsecond, 1, 1},
		{999 * time.Millisecond, 999, 1},
		{time.Second, 1000, 1},
		{time.Second + time.Nanosecond, 1001, 2},
	}
	for _, tt := range tests {
		we := toWireError(&errdefs.RateLimitError{Msg: "x", RetryAfter: tt.d})
		if we.Code != "rate_limited" || we.RetryAfterMs == nil || *we.RetryAfterMs != tt.ms {
			t.Errorf("%v: %+v, want %d ms", tt.d, we, tt.ms)
		}
		if got := retryAfterSeconds(tt.d); got != tt.sec {
			t.Errorf("%v: Retry-After %d, want %d", tt.d, got, tt.sec)
		}
	}
	if we := toWireError(errdefs.ErrNotFound); we.RetryAfterMs != nil {
		t.Errorf("retryAfterMs on not_found: %+v", we)
	}
}

// TestDecodeFastPathsTaken checks that the usual bodies take
// decodeObject's fast paths (the fuzz test only checks that the fast
// paths accept nothing wrong, which a fast path that never applied would
// also pass).
func TestDecodeFastPathsTaken(t *testing.T) {
	for _, body := range []string{
		`{"code":"x += 1"}`, `{"code":"print(1)","language":"python","envs":{"A":"1"},"timeout":5000}`,
		`{"cmd":"ls","args":["-l","/tmp"],"n":-0.5e-3,"m":{},"t":true,"z":null}`,
	} {
		if !plainObject([]byte(body)) {
			t.Errorf("plainObject(%q) = false, want the fast path", body)
		}
	}
	for _, body := range []string{`[]`, `{"n":1e400}`, `{"a":1}x`, `{"a":}`} {
		if plainObject([]byte(body)) {
			t.Errorf("plainObject(%q) = true, want the full check", body)
		}
	}
	for _, lit := range []string{`"x += 1"`, `"é"`, `""`} {
		if !isPlainString([]byte(lit)) {
			t.Errorf("isPlainString(%s) = false, want true", lit)
		}
	}
	for _, lit := range []string{`"a\"b"`, `"\u0061"`, "\"\xff\"", "\"a\tb\""} {
		if isPlainString([]byte(lit)) {
			t.Errorf("isPlainString(%q) = true, want false", lit)
		}
	}
}
