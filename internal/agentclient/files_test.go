package agentclient_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sdbx/sdbx/internal/agent"
	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// fileAgent is an in-process agent whose file root is a temporary
// directory, served on a unix socket.
type fileAgent struct {
	client *agentclient.Client
	sock   string
	root   string // host path of the agent's "/"
	stop   func()
}

func startFileAgent(tb testing.TB, root string) *fileAgent {
	tb.Helper()
	dir, err := os.MkdirTemp("", "sdbx-files-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if root == "" {
		root = filepath.Join(dir, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := agent.New(agent.Options{FileRoot: root, Reap: agent.ReapChildren, DefaultCwd: root})
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("Serve: %v", err)
			}
		})
	}
	tb.Cleanup(stop)
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}
	return &fileAgent{client: agentclient.New(dial), sock: sock, root: root, stop: stop}
}

// pattern is a reader of n deterministic pseudo-random bytes that hashes
// what it hands out, without holding them.
type pattern struct {
	n, off int64
	seed   uint64
	sum    hash.Hash
	read   int64
}

func newPattern(n int64, seed uint64) *pattern {
	return &pattern{n: n, seed: seed, sum: sha256.New()}
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		x := uint64(p.off+int64(i))*0x9E3779B97F4A7C15 ^ p.seed
		b[i] = byte(x>>32) ^ byte(x>>7)
	}
	p.off += int64(len(b))
	p.read += int64(len(b))
	p.sum.Write(b)
	return len(b), nil
}

func wantAgentErr(t *testing.T, err, kind error, msg string) {
	t.Helper()
	var ae *agentclient.AgentError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T): want an *AgentError", err, err)
	}
	if !errors.Is(err, kind) {
		t.Errorf("error %q: kind %s, want %v", err, errdefs.Code(err), kind)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not say %q", err, msg)
	}
}

func TestFileRoundTrips(t *testing.T) {
	fa := startFileAgent(t, "")
	c, ctx := fa.client, t.Context()
	tests := []struct {
		name, path string
		data       []byte
	}{
		{"empty", "/w/empty", nil},
		{"text", "/w/hello.py", []byte("print('hello')\n")},
		{"NUL bytes", "/w/nul.bin", []byte("\x00a\x00\x00b\xff\x00")},
		{"unicode name", "/w/données/файл 🎉.txt", []byte("ünïcödé")},
		{"exactly one chunk", "/w/chunk", bytes.Repeat([]byte{7}, agentproto.ChunkSize)},
		{"chunk and a byte", "/w/chunk1", bytes.Repeat([]byte{8}, agentproto.ChunkSize+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := c.WriteFile(ctx, agentproto.FileRequest{Path: tt.path, CreateParents: true}, bytes.NewReader(tt.data))
			if err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			if e.Path != tt.path || e.Type != agentproto.FileTypeFile || e.Size != int64(len(tt.data)) || e.Mode != "0644" {
				t.Errorf("entry = %+v", e)
			}
			re, r, err := c.ReadFile(ctx, tt.path)
			if err != nil {
				t.Fatalf("ReadFile: %v", err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("read back %d bytes, %v; want %d bytes", len(got), err, len(tt.data))
			}
			if re != e {
				t.Errorf("read entry %+v, write entry %+v", re, e)
			}
			host, _ := os.ReadFile(filepath.Join(fa.root, tt.path))
			if !bytes.Equal(host, tt.data) {
				t.Errorf("file on disk differs")
			}
		})
	}

	if e, err := c.WriteFile(ctx, agentproto.FileRequest{Path: "/w/nil"}, nil); err != nil || e.Size != 0 {
		t.Errorf("WriteFile with nil content = %+v, %v", e, err)
	}
	if err := c.RemoveFile(ctx, "/w/nil", false); err != nil {
		t.Fatal(err)
	}
	e, err := c.MakeDir(ctx, agentproto.FileRequest{Path: "/w/new/deep", CreateParents: true, Mode: 0o700})
	if err != nil || e.Type != agentproto.FileTypeDir || e.Mode != "0700" {
		t.Fatalf("MakeDir = %+v, %v", e, err)
	}
	st, err := c.StatFile(ctx, "/w/hello.py")
	if err != nil || st.Name != "hello.py" || st.Size != int64(len("print('hello')\n")) {
		t.Errorf("StatFile = %+v, %v", st, err)
	}
	e, err = c.MoveFile(ctx, agentproto.FileRequest{Path: "/w/hello.py", To: "/w/new/deep/moved.py"})
	if err != nil || e.Path != "/w/new/deep/moved.py" || e.Size != st.Size {
		t.Errorf("MoveFile = %+v, %v", e, err)
	}
	for p, want := range map[string]bool{"/w/hello.py": false, "/w/new/deep/moved.py": true, "/w": true} {
		if ok, err := c.FileExists(ctx, p); err != nil || ok != want {
			t.Errorf("FileExists(%s) = %v, %v; want %v", p, ok, err, want)
		}
	}
	list, err := c.ListFiles(ctx, "/w")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name+":"+e.Type)
	}
	want := []string{"chunk:file", "chunk1:file", "données:dir", "empty:file", "new:dir", "nul.bin:file"}
	if !slices.Equal(names, want) {
		t.Errorf("ListFiles = %q, want %q", names, want)
	}
	empty, err := c.ListFiles(ctx, "/w/new/deep/..")
	if err != nil || len(empty) != 1 || empty[0].Path != "/w/new/deep" {
		t.Errorf("ListFiles(/w/new/deep/..) = %+v, %v", empty, err)
	}
	if err := c.RemoveFile(ctx, "/w/new", false); err == nil {
		t.Error("removing a non-empty directory without recursive succeeded")
	}
	if err := c.RemoveFile(ctx, "/w/new", true); err != nil {
		t.Errorf("RemoveFile recursive: %v", err)
	}
	if _, err := os.Stat(filepath.Join(fa.root, "w/new")); !os.IsNotExist(err) {
		t.Errorf("/w/new still there: %v", err)
	}
}

func TestFileErrorsOverTheWire(t *testing.T) {
	fa := startFileAgent(t, "")
	c, ctx := fa.client, t.Context()
	if err := os.MkdirAll(filepath.Join(fa.root, "workspace/full/x"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := c.WriteFile(ctx, agentproto.FileRequest{Path: "/workspace"}, strings.NewReader("x"))
	wantAgentErr(t, err, errdefs.ErrConflict, "write /workspace: is a directory")
	_, err = c.WriteFile(ctx, agentproto.FileRequest{Path: "workspace/x"}, strings.NewReader("x"))
	wantAgentErr(t, err, errdefs.ErrInvalidArgument, `"workspace/x"`)
	_, err = c.WriteFile(ctx, agentproto.FileRequest{Path: "/nope/x"}, strings.NewReader("x"))
	wantAgentErr(t, err, errdefs.ErrNotFound, "parent directory does not exist")
	_, _, err = c.ReadFile(ctx, "/workspace/missing")
	wantAgentErr(t, err, errdefs.ErrNotFound, "read /workspace/missing: no such file or directory")
	_, _, err = c.ReadFile(ctx, "/workspace")
	wantAgentErr(t, err, errdefs.ErrConflict, "read /workspace: is a directory")
	_, err = c.ListFiles(ctx, "/missing")
	wantAgentErr(t, err, errdefs.ErrNotFound, "list /missing")
	err = c.RemoveFile(ctx, "/workspace/full", false)
	wantAgentErr(t, err, errdefs.ErrConflict, "remove /workspace/full: directory not empty")
	_, err = c.MakeDir(ctx, agentproto.FileRequest{Path: "/workspace/full"})
	wantAgentErr(t, err, errdefs.ErrConflict, "mkdir /workspace/full: already exists")
	_, err = c.StatFile(ctx, "/a\x00b")
	wantAgentErr(t, err, errdefs.ErrInvalidArgument, "NUL")
	_, err = c.FileExists(ctx, "")
	wantAgentErr(t, err, errdefs.ErrInvalidArgument, "path is empty")
}

// TestWriteRefusedEarly checks that a refused write does not read all of
// its (here endless) content: the agent answers first, the client stops.
func TestWriteRefusedEarly(t *testing.T) {
	fa := startFileAgent(t, "")
	if err := os.Mkdir(filepath.Join(fa.root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	content := newPattern(1<<40, 1) // a TiB: never sent whole
	_, err := fa.client.WriteFile(t.Context(), agentproto.FileRequest{Path: "/dir"}, content)
	wantAgentErr(t, err, errdefs.ErrConflict, "is a directory")
	if content.read > 64<<20 {
		t.Errorf("client read %d bytes of content after the agent refused the write", content.read)
	}
}

// failAfter fails once n bytes were read.
type failAfter struct {
	r   io.Reader
	n   int
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	n, err := f.r.Read(p[:min(len(p), f.n)])
	f.n -= n
	return n, err
}

func TestWriteContentFailsMidway(t *testing.T) {
	fa := startFileAgent(t, "")
	c, ctx := fa.client, t.Context()
	if _, err := c.WriteFile(ctx, agentproto.FileRequest{Path: "/f"}, strings.NewReader("original")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("upload interrupted")
	_, err := c.WriteFile(ctx, agentproto.FileRequest{Path: "/f"}, &failAfter{r: newPattern(8<<20, 2), n: 3 << 20, err: boom})
	if !errors.Is(err, boom) || !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("WriteFile with failing content: %v", err)
	}
	fa.stop() // waits for the agent's handlers: the aborted write is cleaned up
	b, _ := os.ReadFile(filepath.Join(fa.root, "f"))
	if string(b) != "original" {
		t.Errorf("file after aborted write = %.40q, want the original", b)
	}
	entries, _ := os.ReadDir(fa.root)
	if len(entries) != 1 {
		t.Errorf("root holds %v after an aborted write, want only f", entries)
	}
}

func TestReadCancelAndClose(t *testing.T) {
	fa := startFileAgent(t, "")
	c := fa.client
	if _, err := c.WriteFile(t.Context(), agentproto.FileRequest{Path: "/big"}, newPattern(16<<20, 3)); err != nil {
		t.Fatal(err)
	}
	// Close early.
	_, r, err := c.ReadFile(t.Context(), "/big")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := r.Read(make([]byte, 10)); err == nil {
		t.Error("Read after Close succeeded")
	}
	// Cancel the context part way.
	ctx, cancel := context.WithCancel(t.Context())
	_, r, err = c.ReadFile(ctx, "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadFull(r, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.Copy(io.Discard, r)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v, want context.Canceled", err)
	}
}

// TestReadSizeIsExact checks that a read returns exactly the size it
// announced: bytes appended after the open are left out, and a file that
// shrinks under the reader is an error rather than a short success.
func TestReadSizeIsExact(t *testing.T) {
	fa := startFileAgent(t, "")
	c := fa.client
	host := filepath.Join(fa.root, "grow")
	if err := os.WriteFile(host, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, r, err := c.ReadFile(t.Context(), "/grow")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(host, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("appended")
	f.Close()
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(b) != "0123456789" || e.Size != 10 {
		t.Errorf("read %q (%v), entry size %d; want the 10 bytes of the open", b, err, e.Size)
	}

	const size = 16 << 20
	if _, err := c.WriteFile(t.Context(), agentproto.FileRequest{Path: "/shrink"}, newPattern(size, 9)); err != nil {
		t.Fatal(err)
	}
	_, r, err = c.ReadFile(t.Context(), "/shrink")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadFull(r, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	// The agent is at most a few socket buffers ahead of this reader.
	if err := os.Truncate(filepath.Join(fa.root, "shrink"), 2<<20); err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, r)
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "shrank") {
		t.Errorf("reading a file that shrank: %v", err)
	}
}

// TestConcurrentWritesAreAtomic writes one path from several clients at
// once: the result is one of the writes, whole.
func TestConcurrentWritesAreAtomic(t *testing.T) {
	fa := startFileAgent(t, "")
	const writers, size = 6, 3 << 20
	sums := make([][32]byte, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			p := newPattern(size, uint64(i+10))
			if _, err := fa.client.WriteFile(t.Context(), agentproto.FileRequest{Path: "/same"}, p); err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
			copy(sums[i][:], p.sum.Sum(nil))
		})
	}
	wg.Wait()
	_, r, err := fa.client.ReadFile(t.Context(), "/same")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	var got [32]byte
	copy(got[:], h.Sum(nil))
	if !slices.Contains(sums, got) {
		t.Error("the file is none of the writes: a mix or a truncation")
	}
}

func TestListManyEntries(t *testing.T) {
	fa := startFileAgent(t, "")
	dir := filepath.Join(fa.root, "many")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Long names so that the listing takes several batches.
	const n = 3000
	var want []string
	for i := range n {
		name := fmt.Sprintf("%05d-%s", i, strings.Repeat("<é>", 40))
		want = append(want, name)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	list, err := fa.client.ListFiles(t.Context(), "/many")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range list {
		got = append(got, e.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %d entries, want %d in order", len(got), len(want))
	}
}

// TestLargeRoundTrip streams 64 MiB each way and checks that neither side
// held the content in memory.
func TestLargeRoundTrip(t *testing.T) {
	fa := startFileAgent(t, "")
	const size = 64 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	src := newPattern(size, 42)
	e, err := fa.client.WriteFile(t.Context(), agentproto.FileRequest{Path: "/large.bin"}, src)
	if err != nil || e.Size != size {
		t.Fatalf("WriteFile = %+v, %v", e, err)
	}
	_, r, err := fa.client.ReadFile(t.Context(), "/large.bin")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	r.Close()
	if err != nil || n != size {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	if !bytes.Equal(h.Sum(nil), src.sum.Sum(nil)) {
		t.Fatal("content read back differs")
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
		t.Errorf("a 64 MiB round trip allocated %d MiB: content is buffered somewhere", alloc>>20)
	}
}

// TestRawProtocol speaks the wire directly: framing errors and a request
// without its file field.
func TestRawProtocol(t *testing.T) {
	fa := startFileAgent(t, "")
	send := func(t *testing.T, payload []byte) agentproto.Event {
		t.Helper()
		conn, err := net.Dial("unix", fa.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write(payload); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(conn).ReadBytes('\n')
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		var ev agentproto.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	t.Run("chunk too large", func(t *testing.T) {
		req := []byte(`{"op":"file.write","file":{"path":"/x"}}` + "\n")
		req = binary.BigEndian.AppendUint32(req, agentproto.MaxChunk+1)
		ev := send(t, req)
		if ev.Type != agentproto.EventError || ev.ErrCode != "invalid_argument" || !strings.Contains(ev.Message, "chunk") {
			t.Errorf("answer = %+v", ev)
		}
	})
	t.Run("missing file field", func(t *testing.T) {
		ev := send(t, []byte(`{"op":"file.stat"}`+"\n"))
		if ev.Type != agentproto.EventError || ev.ErrCode != "invalid_argument" || !strings.Contains(ev.Message, "file") {
			t.Errorf("answer = %+v", ev)
		}
	})
	t.Run("read framing", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(fa.root, "r"), []byte("abc"), 0o644); err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("unix", fa.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, `{"op":"file.read","file":{"path":"/r"}}`+"\n")
		all, err := io.ReadAll(conn)
		if err != nil {
			t.Fatal(err)
		}
		header, rest, _ := bytes.Cut(all, []byte("\n"))
		var ev agentproto.Event
		if err := json.Unmarshal(header, &ev); err != nil || ev.Type != agentproto.EventFileEntry || ev.Entry.Size != 3 {
			t.Fatalf("header %s: %v", header, err)
		}
		want := append([]byte{0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0}, `{"t":"file.end"}`+"\n"...)
		if !bytes.Equal(rest, want) {
			t.Errorf("stream after the header = %q, want %q", rest, want)
		}
	})
}
