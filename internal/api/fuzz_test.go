package api

import (
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
