package sdbx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const entryJSON = `{"name":"b.txt","path":"/workspace/a/b.txt","type":"file","size":10,"mode":"0644","modifiedAt":"2026-11-26T09:00:00.5Z","new":1}`

// gatedReader yields first, then waits for gate before yielding rest: a
// client that buffered the whole body before sending would never get past
// the gate.
type gatedReader struct {
	first, rest []byte
	gate        <-chan struct{}
	state       int
}

func (g *gatedReader) Read(p []byte) (int, error) {
	switch g.state {
	case 0:
		g.state++
		return copy(p, g.first), nil
	case 1:
		select {
		case <-g.gate:
		case <-time.After(10 * time.Second):
			return 0, errors.New("the server never saw the first part: the body was not streamed")
		}
		g.state++
		return copy(p, g.rest), nil
	}
	return 0, io.EOF
}

func TestWriteFileStreamsTheBody(t *testing.T) {
	gotFirst := make(chan struct{})
	type seen struct {
		method, uri, ctype string
		length             int64
		body               string
	}
	got := make(chan seen, 1)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, first); err != nil {
			writeError(w, 400, "invalid_argument", err.Error())
			return
		}
		close(gotFirst)
		rest, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.RequestURI, r.Header.Get("Content-Type"), r.ContentLength, string(first) + string(rest)}
		io.WriteString(w, entryJSON)
	}))
	e, err := c.WriteFile(t.Context(), "sb-1", "/workspace/a/b.txt",
		&gatedReader{first: []byte("part1"), rest: []byte("part2"), gate: gotFirst}, CreateParents())
	if err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	want := seen{"PUT", "/v1/sandboxes/sb-1/files?createParents=true&path=%2Fworkspace%2Fa%2Fb.txt", "application/octet-stream", -1, "part1part2"}
	if s := <-got; s != want {
		t.Fatalf("request = %+v, want %+v", s, want)
	}
	wantEntry := FileEntry{Name: "b.txt", Path: "/workspace/a/b.txt", Type: FileTypeFile, Size: 10, Mode: "0644",
		ModifiedAt: time.Date(2026, 11, 26, 9, 0, 0, 5e8, time.UTC)}
	if !reflect.DeepEqual(*e, wantEntry) {
		t.Fatalf("entry = %+v, want %+v", *e, wantEntry)
	}
}

func TestWriteFileSendsKnownLengths(t *testing.T) {
	type seen struct {
		length int64
		body   string
		query  string
	}
	got := make(chan seen, 1)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.ContentLength, string(b), r.URL.RawQuery}
		io.WriteString(w, entryJSON)
	}))
	f, err := os.Create(filepath.Join(t.TempDir(), "local"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("skip-file content"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(5, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content io.Reader
		want    seen
	}{
		{"bytes reader", bytes.NewReader([]byte("abc")), seen{3, "abc", "path=%2Fx"}},
		{"strings reader", strings.NewReader("hello"), seen{5, "hello", "path=%2Fx"}},
		{"buffer", bytes.NewBufferString("buf"), seen{3, "buf", "path=%2Fx"}},
		{"file from its offset", f, seen{12, "file content", "path=%2Fx"}},
		{"empty", strings.NewReader(""), seen{0, "", "path=%2Fx"}},
		{"nil is empty", nil, seen{0, "", "path=%2Fx"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.WriteFile(t.Context(), "sb-1", "/x", tt.content); err != nil {
				t.Fatal(err)
			}
			if s := <-got; s != tt.want {
				t.Fatalf("server saw %+v, want %+v", s, tt.want)
			}
		})
	}
	// The caller's file is left open.
	if _, err := f.Stat(); err != nil {
		t.Fatalf("the file was closed: %v", err)
	}
}

type failingReader struct {
	sent bool
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(p, "some bytes"), nil
	}
	return 0, r.err
}

func TestWriteFileFailures(t *testing.T) {
	var busyHits atomic.Int32
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("path") == "/busy" {
			busyHits.Add(1)
		}
		_, err := io.ReadAll(r.Body)
		switch {
		case err != nil:
			writeError(w, 400, "invalid_argument", "request body: could not be read to its end")
		case r.URL.Query().Get("path") == "/busy":
			writeError(w, 503, "unavailable", "agent unreachable")
		case r.URL.Query().Get("path") == "/workspace":
			writeError(w, 409, "conflict", "write /workspace: is a directory")
		default:
			writeError(w, 400, "invalid_argument", `write "rel": path must be absolute`)
		}
	}))
	ctx := t.Context()

	boom := errors.New("disk on fire")
	_, err := c.WriteFile(ctx, "sb-1", "/x", &failingReader{err: boom})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "reading content") {
		t.Fatalf("reader failure = %v, want it wrapped", err)
	}

	if _, err := c.WriteFile(ctx, "sb-1", "/busy", strings.NewReader("x")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("503 = %v", err)
	}
	if n := busyHits.Load(); n != 1 {
		t.Fatalf("PUT was sent %d times, want 1 (never retried)", n)
	}

	_, err = c.WriteFile(ctx, "sb-1", "/workspace", strings.NewReader("x"))
	var se *SandboxError
	if !errors.As(err, &se) || !errors.Is(err, ErrConflict) || se.SandboxID != "sb-1" {
		t.Fatalf("directory = %v (%T), want SandboxError conflict", err, err)
	}
	if _, err := c.WriteFile(ctx, "sb-1", "rel", strings.NewReader("x")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("relative = %v", err)
	}
}

// slowReader yields its bytes after a delay.
type slowReader struct {
	delay time.Duration
	done  bool
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	time.Sleep(r.delay)
	r.done = true
	return copy(p, "late"), nil
}

// TestWriteFileTimeoutStartsAfterTheContent checks that Config.Timeout
// bounds only the wait for the answer, not the transfer.
func TestWriteFileTimeoutStartsAfterTheContent(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		if r.URL.Query().Get("path") == "/hang" {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		io.WriteString(w, entryJSON)
	}), func(cfg *Config) { cfg.Timeout = 30 * time.Millisecond })

	// The content takes longer than Timeout to arrive; that is fine.
	if _, err := c.WriteFile(t.Context(), "sb-1", "/slow", &slowReader{delay: 100 * time.Millisecond}); err != nil {
		t.Fatalf("slow content: %v", err)
	}
	_, err := c.WriteFile(t.Context(), "sb-1", "/hang", strings.NewReader("x"))
	var te *TimeoutError
	if !errors.As(err, &te) || !strings.Contains(te.Message, "no response within 30ms") {
		t.Fatalf("server that never answers = %v (%T), want TimeoutError", err, err)
	}
}

func TestReadFileStreams(t *testing.T) {
	clientRead := make(chan struct{})
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "GET" || r.RequestURI != "/v1/sandboxes/sb-1/files?path=%2Fw%2Fdata+1.bin" {
			writeError(w, 404, "not_found", "no route "+r.RequestURI)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="data 1.bin"`)
		w.Header().Set("Last-Modified", "Thu, 26 Nov 2026 09:00:00 GMT")
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "\x00\x01\x02\x00\xff")
		http.NewResponseController(w).Flush()
		select {
		case <-clientRead:
			io.WriteString(w, "tail!")
		case <-time.After(10 * time.Second):
		}
	}))
	f, err := c.ReadFile(t.Context(), "sb-1", "/w/data 1.bin")
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	defer f.Close()
	if f.Name != "data 1.bin" || f.Size != 10 || !f.ModifiedAt.Equal(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("reader = name %q size %d modified %v", f.Name, f.Size, f.ModifiedAt)
	}
	head := make([]byte, 5)
	if _, err := io.ReadFull(f, head); err != nil || string(head) != "\x00\x01\x02\x00\xff" {
		t.Fatalf("first bytes = %q, %v", head, err)
	}
	close(clientRead)
	rest, err := io.ReadAll(f)
	if err != nil || string(rest) != "tail!" {
		t.Fatalf("rest = %q, %v", rest, err)
	}
}

func TestReadFileBrokenTransfer(t *testing.T) {
	for _, sized := range []bool{true, false} {
		t.Run(fmt.Sprintf("content-length %v", sized), func(t *testing.T) {
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if sized {
					w.Header().Set("Content-Length", "100")
				}
				io.WriteString(w, "only ten b")
				http.NewResponseController(w).Flush()
				panic(http.ErrAbortHandler)
			}))
			f, err := c.ReadFile(t.Context(), "sb-1", "/x")
			if err != nil {
				t.Fatalf("ReadFile: %v", err)
			}
			defer f.Close()
			data, err := io.ReadAll(f)
			var ce *ConnectionError
			if !errors.As(err, &ce) || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("ReadAll = %q, %v (%T); want a ConnectionError", data, err, err)
			}
		})
	}
}

func TestReadFileRetriesAndErrors(t *testing.T) {
	var hits atomic.Int32
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		switch r.URL.Query().Get("path") {
		case "/flaky":
			if n == 1 {
				writeError(w, 503, "unavailable", "agent unreachable")
				return
			}
			io.WriteString(w, "ok")
			http.NewResponseController(w).Flush() // chunked: no length
		case "/dir":
			writeError(w, 409, "conflict", "read /dir: is a directory")
		default:
			writeError(w, 404, "not_found", "read /missing: no such file")
		}
	}))
	f, err := c.ReadFile(t.Context(), "sb-1", "/flaky")
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(data) != "ok" || hits.Load() != 2 {
		t.Fatalf("content = %q, %v after %d requests; want ok after a retry", data, err, hits.Load())
	}
	// Without Content-Length and Content-Disposition.
	if f.Size != -1 || f.Name != "flaky" {
		t.Fatalf("size %d name %q", f.Size, f.Name)
	}

	_, err = c.ReadFile(t.Context(), "sb-1", "/missing")
	var se *SandboxError
	if !errors.As(err, &se) || !errors.Is(err, ErrNotFound) || se.Message != "read /missing: no such file" {
		t.Fatalf("missing = %v (%T)", err, err)
	}
	if _, err := c.ReadFile(t.Context(), "sb-1", "/dir"); !errors.Is(err, ErrConflict) {
		t.Fatalf("dir = %v", err)
	}
}

func TestReadFileCloseStopsTheTransfer(t *testing.T) {
	stopped := make(chan struct{})
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(stopped)
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	f, err := c.ReadFile(t.Context(), "sb-1", "/endless")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(f, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the server kept sending after Close")
	}
	if _, err := f.Read(make([]byte, 10)); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Read after Close = %v, want fs.ErrClosed", err)
	}
}

func TestReadFileCancel(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithCancel(t.Context())
	f, err := c.ReadFile(ctx, "sb-1", "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.ReadFull(f, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.ReadAll(f)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout) {
		t.Fatalf("read after cancel = %v (%T), want context.Canceled only", err, err)
	}
}

func TestDeleteAndListFiles(t *testing.T) {
	var (
		mu   sync.Mutex
		uris []string
	)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		uris = append(uris, r.Method+" "+r.RequestURI)
		mu.Unlock()
		switch r.Method {
		case "DELETE":
			w.WriteHeader(204)
		case "GET":
			io.WriteString(w, `{"path":"/workspace","entries":[`+entryJSON+`,{"name":"d","path":"/workspace/d","type":"dir"}]}`)
		}
	}))
	ctx := t.Context()
	if err := c.DeleteFile(ctx, "sb-1", "/w/a b", false); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteFile(ctx, "sb-1", "/w/dir", true); err != nil {
		t.Fatal(err)
	}
	l, err := c.ListFiles(ctx, "sb-1", "")
	if err != nil || l.Path != "/workspace" || len(l.Entries) != 2 || l.Entries[1].Type != FileTypeDir || l.Entries[0].Size != 10 {
		t.Fatalf("ListFiles = %+v, %v", l, err)
	}
	if _, err := c.ListFiles(ctx, "sb-1", "/tmp"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"DELETE /v1/sandboxes/sb-1/files?path=%2Fw%2Fa+b",
		"DELETE /v1/sandboxes/sb-1/files?path=%2Fw%2Fdir&recursive=true",
		"GET /v1/sandboxes/sb-1/files/list",
		"GET /v1/sandboxes/sb-1/files/list?path=%2Ftmp",
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(uris, want) {
		t.Fatalf("requests = %q, want %q", uris, want)
	}
}

func TestStatMakeDirMoveAndExists(t *testing.T) {
	var (
		mu   sync.Mutex
		reqs []string
	)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, strings.TrimSpace(r.Method+" "+r.RequestURI+" "+string(body)))
		mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/files/exists"):
			io.WriteString(w, `{"exists":`+fmt.Sprint(r.URL.Query().Get("path") == "/w/yes")+`}`)
		case strings.HasSuffix(r.URL.Path, "/files/mkdir"):
			w.WriteHeader(201)
			io.WriteString(w, `{"name":"d","path":"/w/d","type":"dir","size":0,"mode":"0755"}`)
		case strings.Contains(string(body), `"to":"/w/taken"`):
			writeError(w, 409, "conflict", "destination /w/taken: already exists")
		default:
			io.WriteString(w, entryJSON)
		}
	}))
	ctx := t.Context()
	e, err := c.StatFile(ctx, "sb-1", "/w/a b")
	if err != nil || e.Name != "b.txt" || e.Size != 10 || e.Type != FileTypeFile || e.ModifiedAt.IsZero() {
		t.Fatalf("StatFile = %+v, %v", e, err)
	}
	if e, err = c.MakeDir(ctx, "sb-1", "/w/d", true); err != nil || e.Type != FileTypeDir || e.Path != "/w/d" {
		t.Fatalf("MakeDir -p = %+v, %v", e, err)
	}
	if _, err = c.MakeDir(ctx, "sb-1", "/w/d", false); err != nil {
		t.Fatal(err)
	}
	if e, err = c.MoveFile(ctx, "sb-1", "/w/x", "/w/y", false); err != nil || e.Path != "/workspace/a/b.txt" {
		t.Fatalf("MoveFile = %+v, %v", e, err)
	}
	if _, err = c.MoveFile(ctx, "sb-1", "/w/x", "/w/y", true); err != nil {
		t.Fatal(err)
	}
	_, err = c.MoveFile(ctx, "sb-1", "/w/x", "/w/taken", false)
	var se *SandboxError
	if !errors.Is(err, ErrConflict) || !errors.As(err, &se) || se.SandboxID != "sb-1" || !strings.Contains(err.Error(), "/w/taken") {
		t.Fatalf("MoveFile onto an existing entry = %v (%T)", err, err)
	}
	for p, want := range map[string]bool{"/w/yes": true, "/w/no": false} {
		if ok, err := c.FileExists(ctx, "sb-1", p); err != nil || ok != want {
			t.Fatalf("FileExists(%s) = %v, %v", p, ok, err)
		}
	}
	want := []string{
		"GET /v1/sandboxes/sb-1/files/stat?path=%2Fw%2Fa+b",
		`POST /v1/sandboxes/sb-1/files/mkdir {"path":"/w/d","parents":true}`,
		`POST /v1/sandboxes/sb-1/files/mkdir {"path":"/w/d"}`,
		`POST /v1/sandboxes/sb-1/files/move {"from":"/w/x","to":"/w/y"}`,
		`POST /v1/sandboxes/sb-1/files/move {"from":"/w/x","to":"/w/y","overwrite":true}`,
		`POST /v1/sandboxes/sb-1/files/move {"from":"/w/x","to":"/w/taken"}`,
	}
	mu.Lock()
	defer mu.Unlock()
	got := reqs[:len(want)]
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("requests = %q, want %q", got, want)
	}
	if len(reqs) != len(want)+2 || !strings.HasPrefix(reqs[len(want)], "GET /v1/sandboxes/sb-1/files/exists?path=%2Fw%2F") {
		t.Fatalf("exists requests = %q", reqs[len(want):])
	}
}

func TestFileOpErrors(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("path") {
		case "rel":
			writeError(w, 400, "invalid_argument", "path \"rel\": must be absolute")
		case "/none":
			writeError(w, 404, "not_found", "file /none")
		default:
			io.WriteString(w, `{}`) // an exists answer without "exists"
		}
	}))
	ctx := t.Context()
	if _, err := c.StatFile(ctx, "sb-1", "/none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("StatFile of a missing path = %v", err)
	}
	if _, err := c.FileExists(ctx, "sb-1", "rel"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("FileExists of a relative path = %v", err)
	}
	if _, err := c.FileExists(ctx, "sb-1", "/x"); err == nil || !strings.Contains(err.Error(), `"exists"`) {
		t.Fatalf("FileExists without an answer = %v", err)
	}
	for name, call := range map[string]func() error{
		"StatFile":   func() error { _, err := c.StatFile(ctx, "", "/x"); return err },
		"MakeDir":    func() error { _, err := c.MakeDir(ctx, "", "/x", false); return err },
		"MoveFile":   func() error { _, err := c.MoveFile(ctx, "", "/x", "/y", false); return err },
		"FileExists": func() error { _, err := c.FileExists(ctx, "", "/x"); return err },
	} {
		if err := call(); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "sandboxId") {
			t.Errorf("%s with an empty id = %v", name, err)
		}
	}
}
