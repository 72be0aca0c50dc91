package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

func TestSocketFiles(t *testing.T) {
	e := newEnv(t)
	c := connected(t, e)
	id := createSandbox(t, e)

	a := c.call("file:write", map[string]any{"sandboxId": id, "path": "/workspace/p/hello.txt", "content": "héllo\nworld", "createParents": true})
	if !a.OK || a.Data["name"] != "hello.txt" || a.Data["path"] != "/workspace/p/hello.txt" || a.Data["type"] != "file" || a.Data["size"] != 12.0 {
		t.Fatalf("write utf8: %+v %+v", a, a.Error)
	}
	a = c.call("file:read", map[string]any{"sandboxId": id, "path": "/workspace/p/hello.txt"})
	if !a.OK || jsonOf(a.Data) != `{"content":"héllo\nworld","encoding":"utf8","size":12}` {
		t.Fatalf("read utf8: %+v %+v", a, a.Error)
	}

	b64 := base64.StdEncoding.EncodeToString(binary)
	a = c.call("file:write", map[string]any{"sandboxId": id, "path": "/workspace/p/data.bin", "content": b64, "encoding": "base64"})
	if !a.OK || a.Data["size"] != float64(len(binary)) {
		t.Fatalf("write base64: %+v %+v", a, a.Error)
	}
	a = c.call("file:read", map[string]any{"sandboxId": id, "path": "/workspace/p/data.bin", "encoding": "base64"})
	if !a.OK || a.Data["content"] != b64 || a.Data["encoding"] != "base64" || a.Data["size"] != float64(len(binary)) {
		t.Fatalf("read base64: %+v %+v", a, a.Error)
	}
	// Unpadded base64 is accepted too.
	a = c.call("file:write", map[string]any{"sandboxId": id, "path": "/workspace/p/two", "content": "AAE", "encoding": "base64"})
	if !a.OK || a.Data["size"] != 2.0 {
		t.Fatalf("unpadded base64: %+v %+v", a, a.Error)
	}
	a = c.call("file:write", map[string]any{"sandboxId": id, "path": "/workspace/p/empty", "content": ""})
	if !a.OK || a.Data["size"] != 0.0 {
		t.Fatalf("empty file: %+v %+v", a, a.Error)
	}

	a = c.call("file:list", map[string]any{"sandboxId": id, "path": "/workspace/p"})
	var names []string
	for _, en := range a.Data["entries"].([]any) {
		names = append(names, en.(map[string]any)["name"].(string))
	}
	if !a.OK || a.Data["path"] != "/workspace/p" || strings.Join(names, ",") != "data.bin,empty,hello.txt,two" {
		t.Fatalf("list: %+v", a)
	}
	a = c.call("file:list", map[string]any{"sandboxId": id})
	if !a.OK || a.Data["path"] != "/workspace" {
		t.Fatalf("default list: %+v", a)
	}

	a = c.call("file:delete", map[string]any{"sandboxId": id, "path": "/workspace/p/hello.txt"})
	if !a.OK || len(a.Data) != 0 {
		t.Fatalf("delete: %+v", a)
	}
	tests := []struct {
		event   string
		payload map[string]any
		code    string
		inMsg   string
	}{
		{"file:read", map[string]any{"sandboxId": id, "path": "/workspace/p/hello.txt"}, "not_found", "hello.txt"},
		{"file:read", map[string]any{"sandboxId": id, "path": "/workspace/p/data.bin"}, "invalid_argument", `encoding "base64"`},
		{"file:read", map[string]any{"sandboxId": id, "path": "/workspace/p/data.bin", "encoding": "latin1"}, "invalid_argument", `"encoding"`},
		{"file:read", map[string]any{"sandboxId": id, "path": "/workspace/p"}, "conflict", "directory"},
		{"file:read", map[string]any{"sandboxId": id}, "invalid_argument", `"path"`},
		{"file:read", map[string]any{"path": "/x"}, "invalid_argument", `"sandboxId"`},
		{"file:write", map[string]any{"sandboxId": id, "path": "/workspace/x"}, "invalid_argument", `"content": required`},
		{"file:write", map[string]any{"sandboxId": id, "path": "/workspace/x", "content": 5}, "invalid_argument", `"content": expected a string`},
		{"file:write", map[string]any{"sandboxId": id, "path": "/workspace/x", "content": "%%%", "encoding": "base64"}, "invalid_argument", `"content": not valid base64`},
		{"file:write", map[string]any{"sandboxId": id, "path": "/workspace/x", "content": "x", "encoding": "utf-16"}, "invalid_argument", `"encoding"`},
		{"file:write", map[string]any{"sandboxId": id, "path": "/workspace/x", "content": "x", "createParents": "true"}, "invalid_argument", `"createParents"`},
		{"file:write", map[string]any{"sandboxId": id, "path": "x.txt", "content": "x"}, "invalid_argument", "absolute"},
		{"file:write", map[string]any{"sandboxId": id, "path": "/workspace/none/x", "content": "x"}, "not_found", "/workspace/none"},
		{"file:delete", map[string]any{"sandboxId": id, "path": "/workspace/p"}, "conflict", "recursive"},
		{"file:delete", map[string]any{"sandboxId": id, "path": "/workspace/p", "recursive": 1}, "invalid_argument", `"recursive"`},
		{"file:list", map[string]any{"sandboxId": id, "path": "/workspace/p/two"}, "conflict", "not a directory"},
		{"file:list", map[string]any{"sandboxId": id, "dir": "/"}, "invalid_argument", `"dir"`},
		{"file:list", map[string]any{"sandboxId": "sb-none"}, "not_found", "sb-none"},
	}
	for i, tt := range tests {
		t.Run(strconv.Itoa(i)+" "+tt.event, func(t *testing.T) {
			a := c.call(tt.event, tt.payload)
			if a.OK || a.Error.Code != tt.code || !strings.Contains(a.Error.Message, tt.inMsg) {
				t.Fatalf("ack %+v %+v, want %s naming %s", a, a.Error, tt.code, tt.inMsg)
			}
		})
	}
	a = c.call("file:delete", map[string]any{"sandboxId": id, "path": "/workspace/p", "recursive": true})
	if !a.OK {
		t.Fatalf("recursive delete: %+v", a.Error)
	}
	if a = c.call("file:list", map[string]any{"sandboxId": id, "path": "/workspace/p"}); a.OK || a.Error.Code != "not_found" {
		t.Fatalf("list after delete: %+v", a)
	}
}

// TestSocketFileReadLimit: file:read holds at most MaxReadBytes, whatever
// the entry claims.
func TestSocketFileReadLimit(t *testing.T) {
	e := newEnvLimits(t, Limits{MaxBodyBytes: 1 << 20, StreamWindowBytes: 1 << 20, MaxReadBytes: 1000})
	c := connected(t, e)
	id := createSandbox(t, e)
	for _, size := range []int{1000, 1001} {
		a, _ := c.awaitAckEvents(c.emit("file:write", map[string]any{"sandboxId": id, "path": "/workspace/f" + strconv.Itoa(size), "content": strings.Repeat("x", size)}))
		if !a.OK {
			t.Fatalf("write %d: %+v", size, a.Error)
		}
	}
	if a, _ := c.awaitAckEvents(c.emit("file:read", map[string]any{"sandboxId": id, "path": "/workspace/f1000"})); !a.OK || a.Data["size"] != 1000.0 {
		t.Fatalf("read at the limit: %+v", a.Error)
	}
	a, _ := c.awaitAckEvents(c.emit("file:read", map[string]any{"sandboxId": id, "path": "/workspace/f1001"}))
	if a.OK || a.Error.Code != "invalid_argument" || !strings.Contains(a.Error.Message, "1000 bytes") ||
		!strings.Contains(a.Error.Message, "GET /v1/sandboxes/"+id+"/files?path=%2Fworkspace%2Ff1001") {
		t.Fatalf("read past the limit: %+v", a.Error)
	}

	// An entry that understates its size is still cut off.
	e.svc.Open = func(ctx context.Context, path string) (sandbox.FileEntry, io.ReadCloser, error) {
		return sandbox.FileEntry{Path: path, Type: sandbox.FileTypeOther},
			io.NopCloser(strings.NewReader(strings.Repeat("y", 5000))), nil
	}
	a, _ = c.awaitAckEvents(c.emit("file:read", map[string]any{"sandboxId": id, "path": "/dev/zero"}))
	if a.OK || a.Error.Code != "invalid_argument" {
		t.Fatalf("read of an unsized stream: %+v", a)
	}
}

// TestSocketPayloadLimits: file:write may use a whole message; other
// events are held to MaxBodyBytes; a message past MaxMessageBytes is
// refused by the transport.
func TestSocketPayloadLimits(t *testing.T) {
	e := newEnvLimits(t, Limits{MaxBodyBytes: 1024, StreamWindowBytes: 1 << 20, MaxMessageBytes: 64 << 10})
	c := connected(t, e)
	id := createSandbox(t, e)

	a, _ := c.awaitAckEvents(c.emit("file:write", map[string]any{"sandboxId": id, "path": "/workspace/big", "content": strings.Repeat("z", 32<<10)}))
	if !a.OK || a.Data["size"] != float64(32<<10) {
		t.Fatalf("32 KiB file:write: %+v", a.Error)
	}
	a, _ = c.awaitAckEvents(c.emit("code:run", map[string]any{"sandboxId": id, "code": "print(1)\n# " + strings.Repeat("z", 2000)}))
	if a.OK || a.Error.Code != "invalid_argument" || !strings.Contains(a.Error.Message, "larger than 1024 bytes") {
		t.Fatalf("2 KB code:run: %+v", a.Error)
	}

	b, _ := json.Marshal([]any{"file:write", map[string]any{"sandboxId": id, "path": "/workspace/huge", "content": strings.Repeat("z", 70<<10)}})
	resp, err := c.hc.Post(c.url(), "text/plain;charset=UTF-8", strings.NewReader("42"+strconv.Itoa(c.nextAck)+string(b)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("message past MaxMessageBytes: %d", resp.StatusCode)
	}
}

// TestSocketBinaryAttachment: a Buffer in the payload is refused with a
// pointer to base64.
func TestSocketBinaryAttachment(t *testing.T) {
	e := newEnv(t)
	c := connected(t, e)
	id := createSandbox(t, e)
	b, _ := json.Marshal([]any{"file:write", map[string]any{"sandboxId": id, "path": "/workspace/x", "content": map[string]any{"_placeholder": true, "num": 0}}})
	c.send("451-"+strconv.Itoa(c.nextAck)+string(b), "b"+base64.StdEncoding.EncodeToString([]byte{0, 1, 2}))
	a, _ := c.awaitAckEvents(c.nextAck)
	c.nextAck++
	if a.OK || a.Error.Code != "invalid_argument" || !strings.Contains(a.Error.Message, `"content"`) || !strings.Contains(a.Error.Message, "base64") {
		t.Fatalf("binary content: %+v", a.Error)
	}
}

// TestSocketFileOps covers file:stat, file:mkdir, file:move and
// file:exists.
func TestSocketFileOps(t *testing.T) {
	e := newEnv(t)
	c := connected(t, e)
	id := createSandbox(t, e)

	a := c.call("file:mkdir", map[string]any{"sandboxId": id, "path": "/workspace/a/b", "parents": true})
	if !a.OK || a.Data["path"] != "/workspace/a/b" || a.Data["type"] != "dir" || a.Data["name"] != "b" {
		t.Fatalf("mkdir -p: %+v %+v", a, a.Error)
	}
	if a = c.call("file:mkdir", map[string]any{"sandboxId": id, "path": "/workspace/c"}); !a.OK || a.Data["path"] != "/workspace/c" {
		t.Fatalf("mkdir: %+v %+v", a, a.Error)
	}
	if a = c.call("file:write", map[string]any{"sandboxId": id, "path": "/workspace/a/b/f.txt", "content": "hello"}); !a.OK {
		t.Fatalf("write: %+v", a.Error)
	}
	a = c.call("file:stat", map[string]any{"sandboxId": id, "path": "/workspace/a/b/f.txt"})
	if !a.OK || a.Data["name"] != "f.txt" || a.Data["type"] != "file" || a.Data["size"] != 5.0 || a.Data["mode"] != "0644" {
		t.Fatalf("stat: %+v %+v", a, a.Error)
	}
	a = c.call("file:move", map[string]any{"sandboxId": id, "from": "/workspace/a/b/f.txt", "to": "/workspace/c/g.txt"})
	if !a.OK || a.Data["path"] != "/workspace/c/g.txt" || a.Data["size"] != 5.0 {
		t.Fatalf("move: %+v %+v", a, a.Error)
	}
	if a = c.call("file:exists", map[string]any{"sandboxId": id, "path": "/workspace/c/g.txt"}); !a.OK || jsonOf(a.Data) != `{"exists":true}` {
		t.Fatalf("exists: %+v %+v", a, a.Error)
	}
	if a = c.call("file:exists", map[string]any{"sandboxId": id, "path": "/workspace/a/b/f.txt"}); !a.OK || jsonOf(a.Data) != `{"exists":false}` {
		t.Fatalf("exists after move: %+v %+v", a, a.Error)
	}
	if a = c.call("file:write", map[string]any{"sandboxId": id, "path": "/workspace/c/h.txt", "content": "other"}); !a.OK {
		t.Fatalf("write: %+v", a.Error)
	}

	tests := []struct {
		event   string
		payload map[string]any
		code    string
		inMsg   string
	}{
		{"file:stat", map[string]any{"sandboxId": id, "path": "/workspace/none"}, "not_found", "/workspace/none"},
		{"file:stat", map[string]any{"sandboxId": id}, "invalid_argument", `"path": required`},
		{"file:stat", map[string]any{"path": "/workspace"}, "invalid_argument", `"sandboxId"`},
		{"file:stat", map[string]any{"sandboxId": id, "path": "rel"}, "invalid_argument", "absolute"},
		{"file:stat", map[string]any{"sandboxId": "sb-none", "path": "/workspace"}, "not_found", "sb-none"},
		{"file:exists", map[string]any{"sandboxId": id}, "invalid_argument", `"path": required`},
		{"file:exists", map[string]any{"sandboxId": id, "path": "/x", "recursive": true}, "invalid_argument", `"recursive"`},
		{"file:exists", map[string]any{"sandboxId": id, "path": "rel"}, "invalid_argument", "absolute"},
		{"file:mkdir", map[string]any{"sandboxId": id}, "invalid_argument", `"path": required`},
		{"file:mkdir", map[string]any{"sandboxId": id, "path": "/workspace/d", "parents": "true"}, "invalid_argument", `"parents"`},
		{"file:mkdir", map[string]any{"sandboxId": id, "path": "/workspace/x/y"}, "not_found", "/workspace/x"},
		{"file:mkdir", map[string]any{"sandboxId": id, "path": "/workspace/c"}, "conflict", "exists"},
		{"file:move", map[string]any{"sandboxId": id, "to": "/workspace/z"}, "invalid_argument", `"from": required`},
		{"file:move", map[string]any{"sandboxId": id, "from": "/workspace/c/g.txt"}, "invalid_argument", `"to": required`},
		{"file:move", map[string]any{"sandboxId": id, "from": "/workspace/c/g.txt", "to": "/workspace/z", "overwrite": "yes"}, "invalid_argument", `"overwrite"`},
		{"file:move", map[string]any{"sandboxId": id, "from": "/workspace/none", "to": "/workspace/z"}, "not_found", "/workspace/none"},
		{"file:move", map[string]any{"sandboxId": id, "from": "/workspace/c/g.txt", "to": "/workspace/c/h.txt"}, "conflict", "/workspace/c/h.txt"},
		{"file:move", map[string]any{"sandboxId": id, "from": "/workspace/c/g.txt", "to": "z"}, "invalid_argument", "absolute"},
	}
	for i, tt := range tests {
		t.Run(strconv.Itoa(i)+" "+tt.event, func(t *testing.T) {
			a := c.call(tt.event, tt.payload)
			if a.OK || a.Error.Code != tt.code || !strings.Contains(a.Error.Message, tt.inMsg) {
				t.Fatalf("ack %+v %+v, want %s naming %s", a, a.Error, tt.code, tt.inMsg)
			}
		})
	}
	a = c.call("file:move", map[string]any{"sandboxId": id, "from": "/workspace/c/g.txt", "to": "/workspace/c/h.txt", "overwrite": true})
	if !a.OK || a.Data["path"] != "/workspace/c/h.txt" {
		t.Fatalf("move with overwrite: %+v %+v", a, a.Error)
	}
	if a = c.call("file:read", map[string]any{"sandboxId": id, "path": "/workspace/c/h.txt"}); !a.OK || a.Data["content"] != "hello" {
		t.Fatalf("read after overwrite: %+v %+v", a, a.Error)
	}
}

// TestSocketTransferLimit: a connection has at most maxTransfers
// transfers open; ending one frees its place.
func TestSocketTransferLimit(t *testing.T) {
	e := newEnv(t)
	c := connected(t, e)
	id := createSandbox(t, e)
	if a := c.call("file:write", map[string]any{"sandboxId": id, "path": "/workspace/f", "content": "x"}); !a.OK {
		t.Fatalf("write: %+v", a.Error)
	}
	begin := map[string]any{"sandboxId": id, "path": "/workspace/f"}
	var first string
	for i := range maxTransfers {
		a := c.call("file:download:begin", begin)
		if !a.OK {
			t.Fatalf("download %d: %+v", i, a.Error)
		}
		if i == 0 {
			first, _ = a.Data["downloadId"].(string)
		}
	}
	if a := c.call("file:download:begin", begin); a.OK || a.Error.Code != "rate_limited" || !strings.Contains(a.Error.Message, "transfers open") {
		t.Fatalf("download past the limit: %+v %+v", a, a.Error)
	}
	if a := c.call("file:upload:begin", begin); a.OK || a.Error.Code != "rate_limited" {
		t.Fatalf("upload past the limit: %+v %+v", a, a.Error)
	}
	if a := c.call("file:download:end", map[string]any{"downloadId": first}); !a.OK {
		t.Fatalf("end: %+v", a.Error)
	}
	if a := c.call("file:download:begin", begin); !a.OK {
		t.Fatalf("download after one ended: %+v", a.Error)
	}
}

// TestSocketFullDisk: a write that finds the sandbox's disk full is acked
// with resource_exhausted and no retry hint, not rate_limited.
func TestSocketFullDisk(t *testing.T) {
	e := newEnv(t)
	c := connected(t, e)
	id := createSandbox(t, e)
	e.svc.Fail = func(op, _ string) error {
		if op != "WriteFile" {
			return nil
		}
		return fmt.Errorf("write /workspace/f: disk quota exceeded (the sandbox's resources.diskMb is used up; delete files to free space): %w", errdefs.ErrResourceExhausted)
	}
	a := c.call("file:write", map[string]any{"sandboxId": id, "path": "/workspace/f", "content": "x"})
	if a.OK || a.Error.Code != "resource_exhausted" || a.Error.RetryAfterMs != nil || !strings.Contains(a.Error.Message, "diskMb") {
		t.Fatalf("write on a full disk: %+v %+v", a, a.Error)
	}
}
