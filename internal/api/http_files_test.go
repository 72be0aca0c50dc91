package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// doBody sends a raw body as tenant A; a nil length sends it chunked.
func (e *env) doBody(t *testing.T, method, path string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", keyA)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// binary is content that is not UTF-8: NUL, 0xff, a lone continuation byte.
var binary = []byte{0, 1, 2, 0xff, 0xfe, 0, '\n', 0x80, 'a'}

func TestHTTPFiles(t *testing.T) {
	e := newEnv(t)
	files := "/v1/sandboxes/" + createSandbox(t, e) + "/files"

	resp := e.doBody(t, "PUT", files+"?path=/workspace/d/e/data.bin&createParents=true", bytes.NewReader(binary))
	entry := decode(t, resp)
	if resp.StatusCode != 200 || entry["name"] != "data.bin" || entry["path"] != "/workspace/d/e/data.bin" ||
		entry["type"] != "file" || entry["size"] != float64(len(binary)) || entry["mode"] != "0644" {
		t.Fatalf("write: %d %v", resp.StatusCode, entry)
	}
	if _, err := time.Parse(time.RFC3339Nano, entry["modifiedAt"].(string)); err != nil {
		t.Errorf("modifiedAt: %v", err)
	}

	resp = e.doBody(t, "GET", files+"?path=/workspace/d/e/data.bin", nil)
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, binary) {
		t.Fatalf("read: %d %q %v", resp.StatusCode, got, err)
	}
	for k, want := range map[string]string{
		"Content-Type":        "application/octet-stream",
		"Content-Length":      "9",
		"Content-Disposition": `attachment; filename=data.bin`,
	} {
		if v := resp.Header.Get(k); v != want {
			t.Errorf("%s %q, want %q", k, v, want)
		}
	}
	if resp.Header.Get("Last-Modified") == "" {
		t.Error("no Last-Modified")
	}

	resp = e.doBody(t, "HEAD", files+"?path=/workspace/d/e/data.bin", nil)
	if got, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || resp.ContentLength != 9 || len(got) != 0 {
		t.Fatalf("head: %d %d %q", resp.StatusCode, resp.ContentLength, got)
	}

	// Overwrite with an empty file; no createParents needed now.
	resp = e.doBody(t, "PUT", files+"?path=/workspace/d/e/data.bin&createParents=false", strings.NewReader(""))
	if entry := decode(t, resp); resp.StatusCode != 200 || entry["size"] != 0.0 {
		t.Fatalf("overwrite: %d %v", resp.StatusCode, entry)
	}
	resp = e.doBody(t, "GET", files+"?path=/workspace/d/e/data.bin", nil)
	if got, err := io.ReadAll(resp.Body); err != nil || resp.StatusCode != 200 || len(got) != 0 || resp.ContentLength != 0 {
		t.Fatalf("read empty: %d %d %q %v", resp.StatusCode, resp.ContentLength, got, err)
	}

	resp = e.doBody(t, "GET", files+"/list?path=/workspace/d", nil)
	list := decode(t, resp)
	if resp.StatusCode != 200 || list["path"] != "/workspace/d" || len(list["entries"].([]any)) != 1 {
		t.Fatalf("list: %d %v", resp.StatusCode, list)
	}
	if e0 := list["entries"].([]any)[0].(map[string]any); e0["name"] != "e" || e0["type"] != "dir" {
		t.Fatalf("entry %v", e0)
	}
	resp = e.doBody(t, "GET", files+"/list", nil) // the default directory
	if list := decode(t, resp); resp.StatusCode != 200 || list["path"] != "/workspace" || jsonOf(list["entries"]) == "[]" {
		t.Fatalf("default list: %d %v", resp.StatusCode, list)
	}
	resp = e.doBody(t, "GET", files+"/list?path=/workspace/d/e", nil)
	if list := decode(t, resp); jsonOf(list["entries"].([]any)[0].(map[string]any)["name"]) != `"data.bin"` {
		t.Fatalf("list of e: %v", list)
	}

	resp = e.doBody(t, "DELETE", files+"?path=/workspace/d", nil)
	if code, msg := errorOf(t, decode(t, resp)); resp.StatusCode != 409 || code != "conflict" || !strings.Contains(msg, "recursive") {
		t.Fatalf("delete non-empty: %d %s %s", resp.StatusCode, code, msg)
	}
	if resp := e.doBody(t, "DELETE", files+"?path=/workspace/d&recursive=true", nil); resp.StatusCode != 204 {
		t.Fatalf("delete recursive: %d", resp.StatusCode)
	}
	resp = e.doBody(t, "GET", files+"?path=/workspace/d/e/data.bin", nil)
	if code, _ := errorOf(t, decode(t, resp)); resp.StatusCode != 404 || code != "not_found" {
		t.Fatalf("read after delete: %d %s", resp.StatusCode, code)
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("error Content-Type %q", resp.Header.Get("Content-Type"))
	}
}

func TestHTTPFileErrors(t *testing.T) {
	e := newEnv(t)
	files := "/v1/sandboxes/" + createSandbox(t, e) + "/files"
	tests := []struct {
		method, path string
		status       int
		inMsg        string
	}{
		{"PUT", files, 400, `"path": required`},
		{"PUT", files + "?path=", 400, `"path": required`},
		{"GET", files, 400, `"path": required`},
		{"DELETE", files, 400, `"path": required`},
		{"PUT", files + "?path=/workspace/x&createParents=yes", 400, `"createParents": expected true or false, got "yes"`},
		{"PUT", files + "?path=/workspace/x&createParents=1", 400, `"createParents"`},
		{"DELETE", files + "?path=/workspace/x&recursive=TRUE", 400, `"recursive"`},
		{"PUT", files + "?path=/workspace/x&mode=0600", 400, `"mode": unknown`},
		{"GET", files + "?path=/workspace/x&recursive=true", 400, `"recursive": unknown`},
		{"GET", files + "/list?dir=/workspace", 400, `"dir": unknown`},
		{"GET", files + "?path=/a&path=/b", 400, `"path": given more than once`},
		{"GET", files + "?path=%zz", 400, "query"},
		{"PUT", files + "?path=relative.txt", 400, "absolute"},
		{"PUT", files + "?path=/workspace/missing/x.txt", 404, "/workspace/missing"},
		{"PUT", files + "?path=/workspace", 409, "directory"},
		{"GET", files + "?path=/workspace", 409, "directory"},
		{"GET", files + "?path=/workspace/none", 404, "/workspace/none"},
		{"GET", files + "/list?path=/nowhere", 404, "/nowhere"},
		{"GET", "/v1/sandboxes/sb-nope/files?path=/workspace/x", 404, "sb-nope"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+strings.TrimPrefix(tt.path, files), func(t *testing.T) {
			resp := e.doBody(t, tt.method, tt.path, strings.NewReader("content"))
			_, msg := errorOf(t, decode(t, resp))
			if resp.StatusCode != tt.status || !strings.Contains(msg, tt.inMsg) {
				t.Fatalf("%d %q, want %d naming %s", resp.StatusCode, msg, tt.status, tt.inMsg)
			}
		})
	}
	// Another tenant's sandbox does not exist for B.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", e.srv.URL+files+"/list", nil)
	req.Header.Set("X-API-Key", keyB)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("tenant b: %d", resp.StatusCode)
	}
}

// onlyReader hides every method but Read, so the client sends the body
// chunked, with no length.
type onlyReader struct{ io.Reader }

func TestHTTPUploadLimits(t *testing.T) {
	e := newEnvLimits(t, Limits{MaxBodyBytes: 1024, StreamWindowBytes: 1 << 20, MaxUploadBytes: 64 << 10})
	files := "/v1/sandboxes/" + createSandbox(t, e) + "/files"

	// Far past the JSON body limit, within the upload limit.
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<10) // 64 KiB exactly
	resp := e.doBody(t, "PUT", files+"?path=/workspace/big", onlyReader{bytes.NewReader(big)})
	if entry := decode(t, resp); resp.StatusCode != 200 || entry["size"] != float64(len(big)) {
		t.Fatalf("64 KiB upload: %d %v", resp.StatusCode, entry)
	}
	resp = e.doBody(t, "GET", files+"?path=/workspace/big", nil)
	if got, _ := io.ReadAll(resp.Body); !bytes.Equal(got, big) {
		t.Fatalf("read back %d bytes", len(got))
	}

	tooBig := append(big, 'x')
	for name, body := range map[string]io.Reader{
		"with Content-Length": bytes.NewReader(tooBig),
		"chunked":             onlyReader{bytes.NewReader(tooBig)},
	} {
		t.Run(name, func(t *testing.T) {
			resp := e.doBody(t, "PUT", files+"?path=/workspace/toobig", body)
			if code, msg := errorOf(t, decode(t, resp)); resp.StatusCode != 400 || code != "invalid_argument" || !strings.Contains(msg, "larger than 65536 bytes") {
				t.Fatalf("%d %s %q", resp.StatusCode, code, msg)
			}
			if resp := e.doBody(t, "GET", files+"?path=/workspace/toobig", nil); resp.StatusCode != 404 {
				t.Fatalf("a refused upload left a file: %d", resp.StatusCode)
			}
		})
	}
}

// TestHTTPUploadStreams shows the body reaches the service while the
// client is still sending it: the client sends the rest only once the
// service has read the first part.
func TestHTTPUploadStreams(t *testing.T) {
	e := newEnv(t)
	files := "/v1/sandboxes/" + createSandbox(t, e) + "/files"
	first := make(chan struct{})
	e.svc.Upload = func(ctx context.Context, path string, r io.Reader) ([]byte, error) {
		head := make([]byte, 5)
		if _, err := io.ReadFull(r, head); err != nil {
			return nil, err
		}
		close(first)
		rest, err := io.ReadAll(r)
		return append(head, rest...), err
	}
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte("first"))
		<-first
		_, _ = pw.Write([]byte(" and the rest"))
		_ = pw.Close()
	}()
	resp := e.doBody(t, "PUT", files+"?path=/workspace/s.txt", pr)
	if entry := decode(t, resp); resp.StatusCode != 200 || entry["size"] != 18.0 {
		t.Fatalf("%d %v", resp.StatusCode, entry)
	}
}

// blockingReader yields head, then waits for release before rest (or
// fails with err instead of the rest).
type blockingReader struct {
	head, rest []byte
	release    chan struct{}
	err        error
	state      int
}

func (b *blockingReader) Read(p []byte) (int, error) {
	switch b.state {
	case 0:
		n := copy(p, b.head)
		b.head = b.head[n:]
		if len(b.head) == 0 {
			b.state = 1
		}
		return n, nil
	case 1:
		<-b.release
		if b.err != nil {
			return 0, b.err
		}
		b.state = 2
		fallthrough
	default:
		if len(b.rest) == 0 {
			return 0, io.EOF
		}
		n := copy(p, b.rest)
		b.rest = b.rest[n:]
		return n, nil
	}
}

func (b *blockingReader) Close() error { return nil }

// TestHTTPDownloadStreams reads the start of a file while the service has
// not produced the rest yet.
func TestHTTPDownloadStreams(t *testing.T) {
	e := newEnv(t)
	head := bytes.Repeat([]byte("h"), 256<<10)
	r := &blockingReader{head: head, rest: []byte("tail"), release: make(chan struct{})}
	e.svc.Open = func(ctx context.Context, path string) (sandbox.FileEntry, io.ReadCloser, error) {
		return sandbox.FileEntry{Name: "f", Path: path, Type: sandbox.FileTypeFile, Size: int64(len(head) + 4)}, r, nil
	}
	resp := e.doBody(t, "GET", "/v1/sandboxes/"+createSandbox(t, e)+"/files?path=/workspace/f", nil)
	got := make([]byte, len(head))
	if _, err := io.ReadFull(resp.Body, got); err != nil || !bytes.Equal(got, head) {
		t.Fatalf("head: %v", err)
	}
	close(r.release)
	if rest, err := io.ReadAll(resp.Body); err != nil || string(rest) != "tail" {
		t.Fatalf("rest %q: %v", rest, err)
	}
}

// TestHTTPDownloadFailure: a read error before any byte was sent is an
// ordinary error; after the status line it breaks the transfer instead of
// ending it like a complete file.
func TestHTTPDownloadFailure(t *testing.T) {
	t.Run("first read", func(t *testing.T) {
		e := newEnv(t)
		e.svc.Open = func(ctx context.Context, path string) (sandbox.FileEntry, io.ReadCloser, error) {
			return sandbox.FileEntry{Name: "f", Path: path, Type: sandbox.FileTypeFile, Size: 100},
				&blockingReader{release: closedChan(), err: fmt.Errorf("agent went away: %w", errdefs.ErrUnavailable)}, nil
		}
		resp := e.doBody(t, "GET", "/v1/sandboxes/"+createSandbox(t, e)+"/files?path=/workspace/f", nil)
		if code, msg := errorOf(t, decode(t, resp)); resp.StatusCode != 503 || code != "unavailable" || !strings.Contains(msg, "/workspace/f") {
			t.Fatalf("%d %s %q", resp.StatusCode, code, msg)
		}
	})
	for _, typ := range []string{sandbox.FileTypeFile, sandbox.FileTypeOther} {
		t.Run("later read of "+typ, func(t *testing.T) {
			e := newEnv(t)
			e.svc.Open = func(ctx context.Context, path string) (sandbox.FileEntry, io.ReadCloser, error) {
				return sandbox.FileEntry{Name: "f", Path: path, Type: typ, Size: 100},
					&blockingReader{head: []byte("partial"), release: closedChan(), err: errors.New("agent went away")}, nil
			}
			resp := e.doBody(t, "GET", "/v1/sandboxes/"+createSandbox(t, e)+"/files?path=/workspace/f", nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if typ == sandbox.FileTypeOther && resp.ContentLength != -1 {
				t.Errorf("Content-Length %d for a non-regular file", resp.ContentLength)
			}
			got, err := io.ReadAll(resp.Body)
			if err == nil || string(got) != "partial" {
				t.Fatalf("transfer of %q ended with %v", got, err)
			}
		})
	}
	t.Run("file shorter than its size", func(t *testing.T) {
		e := newEnv(t)
		e.svc.Open = func(ctx context.Context, path string) (sandbox.FileEntry, io.ReadCloser, error) {
			return sandbox.FileEntry{Name: "f", Path: path, Type: sandbox.FileTypeFile, Size: 100},
				io.NopCloser(strings.NewReader("short")), nil
		}
		resp := e.doBody(t, "GET", "/v1/sandboxes/"+createSandbox(t, e)+"/files?path=/workspace/f", nil)
		if got, err := io.ReadAll(resp.Body); err == nil {
			t.Fatalf("transfer of %q ended cleanly", got)
		}
	})
}

// TestUploadBodyFailure: a body that ends early is reported as such.
func TestUploadBodyFailure(t *testing.T) {
	body := &uploadBody{r: &blockingReader{head: []byte("abc"), release: closedChan(), err: io.ErrUnexpectedEOF}}
	if _, err := io.ReadAll(body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read: %v", err)
	}
	if ferr := body.failure(10); !errors.Is(ferr, errdefs.ErrInvalidArgument) || !strings.Contains(errdefs.Message(ferr), "could not be read") {
		t.Fatalf("failure %v", ferr)
	}
	if (&uploadBody{r: strings.NewReader("x")}).failure(10) != nil {
		t.Fatal("failure without a read error")
	}
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// TestHTTPFileOps covers stat, mkdir, move and exists.
func TestHTTPFileOps(t *testing.T) {
	e := newEnv(t)
	files := "/v1/sandboxes/" + createSandbox(t, e) + "/files"
	post := func(route, body string) (*http.Response, map[string]any) {
		t.Helper()
		resp := e.doBody(t, "POST", files+route, strings.NewReader(body))
		return resp, decode(t, resp)
	}

	resp, entry := post("/mkdir", `{"path":"/workspace/a/b","parents":true}`)
	if resp.StatusCode != 201 || entry["path"] != "/workspace/a/b" || entry["type"] != "dir" || entry["name"] != "b" || entry["mode"] != "0755" {
		t.Fatalf("mkdir -p: %d %v", resp.StatusCode, entry)
	}
	if resp, entry := post("/mkdir", `{"path":"/workspace/a/b","parents":true}`); resp.StatusCode != 201 || entry["type"] != "dir" {
		t.Fatalf("mkdir -p of an existing directory: %d %v", resp.StatusCode, entry)
	}
	if resp, entry := post("/mkdir", `{"path":"/workspace/c"}`); resp.StatusCode != 201 || entry["path"] != "/workspace/c" {
		t.Fatalf("mkdir: %d %v", resp.StatusCode, entry)
	}
	if resp := e.doBody(t, "PUT", files+"?path=/workspace/a/b/f.txt", strings.NewReader("hello")); resp.StatusCode != 200 {
		t.Fatalf("write: %d", resp.StatusCode)
	}

	resp = e.doBody(t, "GET", files+"/stat?path=/workspace/a/b/f.txt", nil)
	if entry := decode(t, resp); resp.StatusCode != 200 || entry["name"] != "f.txt" || entry["type"] != "file" || entry["size"] != 5.0 {
		t.Fatalf("stat: %d %v", resp.StatusCode, entry)
	}
	resp = e.doBody(t, "GET", files+"/stat?path=/workspace/a", nil)
	if entry := decode(t, resp); resp.StatusCode != 200 || entry["type"] != "dir" {
		t.Fatalf("stat dir: %d %v", resp.StatusCode, entry)
	}

	resp, entry = post("/move", `{"from":"/workspace/a/b/f.txt","to":"/workspace/c/g.txt"}`)
	if resp.StatusCode != 200 || entry["path"] != "/workspace/c/g.txt" || entry["name"] != "g.txt" || entry["size"] != 5.0 {
		t.Fatalf("move: %d %v", resp.StatusCode, entry)
	}
	exists := func(p string) any {
		t.Helper()
		resp := e.doBody(t, "GET", files+"/exists?path="+p, nil)
		body := decode(t, resp)
		if resp.StatusCode != 200 || len(body) != 1 {
			t.Fatalf("exists %s: %d %v", p, resp.StatusCode, body)
		}
		return body["exists"]
	}
	if got := exists("/workspace/c/g.txt"); got != true {
		t.Fatalf("exists after move: %v", got)
	}
	if got := exists("/workspace/a/b/f.txt"); got != false {
		t.Fatalf("source exists after move: %v", got)
	}
	resp = e.doBody(t, "GET", files+"?path=/workspace/c/g.txt", nil)
	if got, _ := io.ReadAll(resp.Body); string(got) != "hello" {
		t.Fatalf("content after move %q", got)
	}

	// Onto an existing file: a conflict, unless overwrite.
	if resp := e.doBody(t, "PUT", files+"?path=/workspace/c/h.txt", strings.NewReader("other")); resp.StatusCode != 200 {
		t.Fatalf("write: %d", resp.StatusCode)
	}
	resp, body := post("/move", `{"from":"/workspace/c/g.txt","to":"/workspace/c/h.txt"}`)
	if code, msg := errorOf(t, body); resp.StatusCode != 409 || code != "conflict" || !strings.Contains(msg, "/workspace/c/h.txt") {
		t.Fatalf("move onto existing: %d %s %q", resp.StatusCode, code, msg)
	}
	resp, entry = post("/move", `{"from":"/workspace/c/g.txt","to":"/workspace/c/h.txt","overwrite":true}`)
	if resp.StatusCode != 200 || entry["path"] != "/workspace/c/h.txt" || entry["size"] != 5.0 {
		t.Fatalf("move with overwrite: %d %v", resp.StatusCode, entry)
	}
}

func TestHTTPFileOpErrors(t *testing.T) {
	e := newEnv(t)
	files := "/v1/sandboxes/" + createSandbox(t, e) + "/files"
	if resp := e.doBody(t, "PUT", files+"?path=/workspace/f", strings.NewReader("x")); resp.StatusCode != 200 {
		t.Fatalf("write: %d", resp.StatusCode)
	}
	tests := []struct {
		method, path, body string
		status             int
		code, inMsg        string
	}{
		{"GET", files + "/stat", "", 400, "invalid_argument", `"path": required`},
		{"GET", files + "/stat?path=/workspace/f&recursive=true", "", 400, "invalid_argument", `"recursive": unknown`},
		{"GET", files + "/stat?path=relative", "", 400, "invalid_argument", "absolute"},
		{"GET", files + "/stat?path=/workspace/none", "", 404, "not_found", "/workspace/none"},
		{"GET", files + "/exists", "", 400, "invalid_argument", `"path": required`},
		{"GET", files + "/exists?path=/a&path=/b", "", 400, "invalid_argument", `"path": given more than once`},
		{"GET", files + "/exists?path=relative", "", 400, "invalid_argument", "absolute"},
		{"GET", "/v1/sandboxes/sb-nope/files/exists?path=/workspace", "", 404, "not_found", "sb-nope"},
		{"POST", files + "/mkdir", ``, 400, "invalid_argument", "request body"},
		{"POST", files + "/mkdir", `{}`, 400, "invalid_argument", `"path": required`},
		{"POST", files + "/mkdir", `{"path":"/workspace/d","parents":"yes"}`, 400, "invalid_argument", `"parents"`},
		{"POST", files + "/mkdir", `{"path":"/workspace/d","mode":"0700"}`, 400, "invalid_argument", `unknown field "mode"`},
		{"POST", files + "/mkdir", `{"path":"d"}`, 400, "invalid_argument", "absolute"},
		{"POST", files + "/mkdir", `{"path":"/workspace/x/y"}`, 404, "not_found", "/workspace/x"},
		{"POST", files + "/mkdir", `{"path":"/workspace"}`, 409, "conflict", "exists"},
		{"POST", files + "/mkdir", `{"path":"/workspace/f","parents":true}`, 409, "conflict", "/workspace/f"},
		{"POST", files + "/move", `{"to":"/workspace/g"}`, 400, "invalid_argument", `"from": required`},
		{"POST", files + "/move", `{"from":"/workspace/f"}`, 400, "invalid_argument", `"to": required`},
		{"POST", files + "/move", `{"from":"/workspace/f","to":"/workspace/g","overwrite":1}`, 400, "invalid_argument", `"overwrite"`},
		{"POST", files + "/move", `{"from":"/workspace/f","to":"/workspace/g","path":"/x"}`, 400, "invalid_argument", `unknown field "path"`},
		{"POST", files + "/move", `{"from":"f","to":"/workspace/g"}`, 400, "invalid_argument", "absolute"},
		{"POST", files + "/move", `{"from":"/workspace/none","to":"/workspace/g"}`, 404, "not_found", "/workspace/none"},
		{"POST", files + "/move", `{"from":"/workspace/f","to":"/workspace/no/g"}`, 404, "not_found", "/workspace/no"},
		{"POST", files + "/move", `{"from":"/workspace/f","to":"/workspace"}`, 409, "conflict", "/workspace"},
		{"DELETE", files + "/stat?path=/workspace/f", "", 405, "invalid_argument", "GET, HEAD"},
		{"GET", files + "/mkdir", "", 405, "invalid_argument", "POST"},
		{"PUT", files + "/move", "", 405, "invalid_argument", "POST"},
		{"POST", files + "/exists?path=/workspace/f", "", 405, "invalid_argument", "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+strings.TrimPrefix(tt.path, files)+" "+tt.body, func(t *testing.T) {
			resp := e.doBody(t, tt.method, tt.path, strings.NewReader(tt.body))
			code, msg := errorOf(t, decode(t, resp))
			if resp.StatusCode != tt.status || code != tt.code || !strings.Contains(msg, tt.inMsg) {
				t.Fatalf("%d %s %q, want %d %s naming %s", resp.StatusCode, code, msg, tt.status, tt.code, tt.inMsg)
			}
			if tt.status == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	// The failed moves left the source in place.
	if resp := e.doBody(t, "GET", files+"/exists?path=/workspace/f", nil); decode(t, resp)["exists"] != true {
		t.Fatal("source gone after failed moves")
	}
}
