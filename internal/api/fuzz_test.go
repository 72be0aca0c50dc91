package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// FuzzDecodeBodies feeds arbitrary bytes to the strict decoder of every
// request body shape: it must never panic, and every refusal must be an
// invalid_argument error.
func FuzzDecodeBodies(f *testing.F) {
	for _, seed := range []string{
		`{"templateId":"python-3-11","name":"x","expiryTime":3600000,"initialEnvVars":{"A":"1"}}`,
		`{"command":"echo hi","envs":{"K":"V"},"cwd":"/workspace","timeoutMs":1000}`,
		`{"args":["python3","-c","print(1)"]}`,
		`{"code":"print(1)","language":"python","context":"ctx-1","timeoutMs":1e3}`,
		`{"jobs":[{"id":"a","code":"1","timeout":10,"priority":2}],"concurrency":4}`,
		`{"initialEnvVars":{"A":null}}`, `{"args":[1,2]}`, `[]`, `null`, `{"a":`, `{"jobs":[{"id":{}}]}`,
		"{\"name\":\"\xff\"}", `{"expiryTime":1.5}`, `{"expiryTime":-1e400}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{&createSandboxBody{}, &commandBody{}, &runCodeBody{}, &batchBody{}} {
			if err := decodeObject("request body", data, v); err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("decode %q into %T: %v is not invalid_argument", data, v, err)
			}
		}
	})
}

// FuzzDecodeFastPaths checks decodeObject's fast paths against
// encoding/json: plainObject only accepts what the full check accepts,
// objectMembers splits an object as decoding into a map does, and a
// plain string's content is its decoded value.
func FuzzDecodeFastPaths(f *testing.F) {
	for _, seed := range []string{
		`{"code":"x += 1"}`, `{"b":1,"a":[1,{"c":"}"}],"b":2}`, `{ "k" : "v\"" , "n":null,"t":true}`,
		`{"\u0061":"\u00e9"}`, "{\"k\":\"\xff\"}", `{"n":1e400}`, `{"n":-0.5e-3,"m":{}}`, `{}`, `[]`, `{"a":1}x`,
		`{"a":"é\u2028"}`, `{"a":{"b":{"c":[]}}}`, `{"a" :1 }`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = bytes.TrimSpace(data)
		if len(data) == 0 {
			return
		}
		valid := checkObject("x", data) == nil
		if plainObject(data) && !valid {
			t.Fatalf("plainObject accepts %q, which the full check refuses", data)
		}
		if !valid {
			return
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		got, err := objectMembers(data)
		if err != nil {
			t.Fatalf("objectMembers(%q): %v", data, err)
		}
		keys := sortedKeys(want)
		if len(got) != len(keys) {
			t.Fatalf("objectMembers(%q) = %d members, want %d", data, len(got), len(keys))
		}
		for i, k := range keys {
			if got[i].key != k || !bytes.Equal(got[i].raw, want[k]) {
				t.Fatalf("objectMembers(%q)[%d] = %q: %s, want %q: %s", data, i, got[i].key, got[i].raw, k, want[k])
			}
			var s string
			if isPlainString(want[k]) && (json.Unmarshal(want[k], &s) != nil || s != string(want[k][1:len(want[k])-1])) {
				t.Fatalf("plain string %s decodes to %q", want[k], s)
			}
			if want[k][0] == '{' {
				if _, err := objectMembers(want[k]); err != nil {
					t.Fatalf("objectMembers(%s): %v", want[k], err)
				}
			}
		}
	})
}
