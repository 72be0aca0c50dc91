package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/sandbox"
)

// uploadWindow is how many chunks a client may send before their acks
// (docs/protocol.md, "Chunked transfers").
const uploadWindow = 16

// emitChunk sends file:upload:chunk {uploadId, seq, data} with data as a
// binary attachment and returns the ack id.
func (c *pollClient) emitChunk(uploadID string, seq int, data []byte) int {
	c.t.Helper()
	id := c.nextAck
	c.nextAck++
	b, err := json.Marshal([]any{"file:upload:chunk", map[string]any{
		"uploadId": uploadID, "seq": seq, "data": map[string]any{"_placeholder": true, "num": 0},
	}})
	if err != nil {
		c.t.Fatal(err)
	}
	c.send("451-"+strconv.Itoa(id)+string(b), "b"+base64.StdEncoding.EncodeToString(data))
	return id
}

// chunk sends one upload chunk and returns its ack.
func (c *pollClient) chunk(uploadID string, seq int, data []byte) ack {
	c.t.Helper()
	id := c.emitChunk(uploadID, seq, data)
	return c.awaitAcks(id)[id]
}

// awaitAcks reads packets until every ack of ids has come, in any order;
// any other packet fails the test.
func (c *pollClient) awaitAcks(ids ...int) map[int]ack {
	c.t.Helper()
	acks := map[int]ack{}
	for len(acks) < len(ids) {
		p := c.next()
		i := strings.IndexByte(p, '[')
		id, err := strconv.Atoi(p[min(1, len(p)):max(i, 1)])
		var args []ack
		if !strings.HasPrefix(p, "3") || i < 0 || err != nil || json.Unmarshal([]byte(p[i:]), &args) != nil || len(args) != 1 {
			c.t.Fatalf("unexpected packet %q while waiting for acks %v", p, ids)
		}
		acks[id] = args[0]
	}
	for _, id := range ids {
		if _, ok := acks[id]; !ok {
			c.t.Fatalf("acks %v came, want %v", acks, ids)
		}
	}
	return acks
}

// beginUpload starts an upload of path and returns its id.
func beginUpload(t *testing.T, c *pollClient, sandboxID, path string) string {
	t.Helper()
	a := c.call("file:upload:begin", map[string]any{"sandboxId": sandboxID, "path": path})
	id, _ := a.Data["uploadId"].(string)
	if !a.OK || id == "" {
		t.Fatalf("file:upload:begin: %+v %+v", a, a.Error)
	}
	return id
}

// wantNoFile fails t if path exists in the sandbox.
func wantNoFile(t *testing.T, c *pollClient, sandboxID, path string) {
	t.Helper()
	if a := c.call("file:exists", map[string]any{"sandboxId": sandboxID, "path": path}); !a.OK || a.Data["exists"] != false {
		t.Fatalf("%s after the upload was aborted: %+v %+v; want no file", path, a.Data, a.Error)
	}
}

// wantEnded fails t unless the upload is gone: end answers not_found.
func wantEnded(t *testing.T, c *pollClient, uploadID string) {
	t.Helper()
	a := c.call("file:upload:end", map[string]any{"uploadId": uploadID})
	if a.OK || a.Error.Code != "not_found" || !strings.Contains(a.Error.Message, uploadID) {
		t.Fatalf("end of an aborted upload: %+v %+v; want not_found", a.Data, a.Error)
	}
}

// TestSocketUploadChunkOutOfOrder: a chunk whose seq is behind the next
// one or past the window is refused with an error naming seq, and the
// upload is aborted: chunks waiting for their turn give up, nothing is
// written.
func TestSocketUploadChunkOutOfOrder(t *testing.T) {
	e := newEnv(t)
	c := connected(t, e)
	id := createSandbox(t, e)

	t.Run("behind", func(t *testing.T) {
		path := "/workspace/behind.bin"
		up := beginUpload(t, c, id, path)
		if a := c.chunk(up, 0, []byte("abc")); !a.OK || a.Data["received"] != 3.0 {
			t.Fatalf("chunk 0: %+v %+v", a.Data, a.Error)
		}
		a := c.chunk(up, 0, []byte("abc"))
		if a.OK || a.Error.Code != "invalid_argument" ||
			!strings.Contains(a.Error.Message, `field "seq": expected 1 to 16, got 0`) || !strings.Contains(a.Error.Message, "aborted") {
			t.Fatalf("chunk 0 again: %+v %+v; want invalid_argument naming seq and the abort", a.Data, a.Error)
		}
		wantEnded(t, c, up)
		wantNoFile(t, c, id, path)
	})

	t.Run("past the window", func(t *testing.T) {
		path := "/workspace/ahead.bin"
		up := beginUpload(t, c, id, path)
		// Chunks 1-3 wait for chunk 0, which never comes.
		waiting := []int{c.emitChunk(up, 1, []byte("b")), c.emitChunk(up, 2, []byte("c")), c.emitChunk(up, 3, []byte("d"))}
		far := c.emitChunk(up, uploadWindow, []byte("x"))
		acks := c.awaitAcks(append(waiting, far)...)
		if a := acks[far]; a.OK || a.Error.Code != "invalid_argument" ||
			!strings.Contains(a.Error.Message, fmt.Sprintf(`field "seq": expected 0 to 15, got %d`, uploadWindow)) {
			t.Fatalf("chunk %d: %+v %+v; want invalid_argument naming seq", uploadWindow, a.Data, a.Error)
		}
		// (A waiting chunk handled after the refusal finds no upload.)
		for i, w := range waiting {
			if a := acks[w]; a.OK || !(a.Error.Code == "conflict" && strings.Contains(a.Error.Message, "has ended") ||
				a.Error.Code == "not_found" && strings.Contains(a.Error.Message, "no such upload")) {
				t.Errorf("waiting chunk %d: %+v %+v; want conflict (the upload has ended) or not_found", i+1, a.Data, a.Error)
			}
		}
		wantEnded(t, c, up)
		wantNoFile(t, c, id, path)
	})
}

// gatedReader counts what the sandbox side has read of an upload, and
// reads only once open is closed (or fails when ctx, the write's, ends).
type gatedReader struct {
	ctx  context.Context
	r    io.Reader
	open chan struct{}
	read *atomic.Int64
}

func (g gatedReader) Read(p []byte) (int, error) {
	select {
	case <-g.open:
	case <-g.ctx.Done():
		return 0, g.ctx.Err()
	}
	n, err := g.r.Read(p)
	g.read.Add(int64(n))
	return n, err
}

// TestSocketUploadWindow: up to uploadWindow chunks may be in flight, in any
// order; they are written in seq order, and each is acked only once the
// sandbox has taken it.
func TestSocketUploadWindow(t *testing.T) {
	e := newEnv(t)
	c := connected(t, e)
	id := createSandbox(t, e)
	open := make(chan struct{})
	var read atomic.Int64
	e.svc.Upload = func(ctx context.Context, path string, content io.Reader) ([]byte, error) {
		return io.ReadAll(gatedReader{ctx: ctx, r: content, open: open, read: &read})
	}

	path := "/workspace/window.bin"
	up := beginUpload(t, c, id, path)
	chunk := func(seq int) []byte { return []byte(fmt.Sprintf("<%02d>", seq)) }
	// The whole window, last first.
	var ids []int
	for seq := uploadWindow - 1; seq >= 0; seq-- {
		ids = append(ids, c.emitChunk(up, seq, chunk(seq)))
	}
	// The sandbox has not read anything yet: no chunk may be acked. An
	// event sent after them is answered first.
	if a := c.call("file:exists", map[string]any{"sandboxId": id, "path": path}); !a.OK || a.Data["exists"] != false {
		t.Fatalf("exists during the upload: %+v %+v", a.Data, a.Error)
	}
	close(open)
	acks := c.awaitAcks(ids...)
	var want strings.Builder
	for seq := range uploadWindow {
		want.Write(chunk(seq))
		a := acks[ids[uploadWindow-1-seq]]
		if !a.OK || a.Data["received"] != float64(want.Len()) {
			t.Fatalf("chunk %d: %+v %+v; want received %d", seq, a.Data, a.Error, want.Len())
		}
	}
	if got := read.Load(); got != int64(want.Len()) {
		t.Errorf("the sandbox read %d bytes, want %d", got, want.Len())
	}
	a := c.call("file:upload:end", map[string]any{"uploadId": up})
	if !a.OK || a.Data["size"] != float64(want.Len()) {
		t.Fatalf("end: %+v %+v", a.Data, a.Error)
	}
	if a := c.call("file:read", map[string]any{"sandboxId": id, "path": path}); !a.OK || a.Data["content"] != want.String() {
		t.Fatalf("content %q, want the chunks in seq order %q", a.Data["content"], want.String())
	}
}

// TestSocketTransferIdle: an upload or download without a request for
// Limits.TransferIdle is aborted: the upload writes nothing, the
// download's file is closed, and both ids are gone.
func TestSocketTransferIdle(t *testing.T) {
	limits := DefaultLimits()
	limits.TransferIdle = 200 * time.Millisecond
	e := newEnvLimits(t, limits)
	c := connected(t, e)
	id := createSandbox(t, e)

	t.Run("upload", func(t *testing.T) {
		ended := make(chan error, 1)
		e.svc.Upload = func(ctx context.Context, path string, content io.Reader) ([]byte, error) {
			b, err := io.ReadAll(content)
			ended <- err
			return b, err
		}
		path := "/workspace/idle.bin"
		up := beginUpload(t, c, id, path)
		if a := c.chunk(up, 0, []byte("abc")); !a.OK {
			t.Fatalf("chunk 0: %+v", a.Error)
		}
		select {
		case err := <-ended:
			if !errors.Is(err, errUploadAborted) || !strings.Contains(err.Error(), "no chunk for 200ms") {
				t.Fatalf("the content ended with %v, want the idle abort", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the idle upload was not aborted")
		}
		a := c.chunk(up, 1, []byte("def"))
		if a.OK || a.Error.Code != "not_found" || !strings.Contains(a.Error.Message, "no such upload") {
			t.Fatalf("chunk after the idle abort: %+v %+v; want not_found", a.Data, a.Error)
		}
		wantEnded(t, c, up)
		wantNoFile(t, c, id, path)
	})

	t.Run("download", func(t *testing.T) {
		closed := make(chan struct{})
		e.svc.Open = func(ctx context.Context, path string) (sandbox.FileEntry, io.ReadCloser, error) {
			return sandbox.FileEntry{Path: path, Type: sandbox.FileTypeFile, Size: 3},
				closeNotifier{Reader: strings.NewReader("abc"), closed: closed}, nil
		}
		a := c.call("file:download:begin", map[string]any{"sandboxId": id, "path": "/workspace/f"})
		down, _ := a.Data["downloadId"].(string)
		if !a.OK || down == "" {
			t.Fatalf("file:download:begin: %+v %+v", a.Data, a.Error)
		}
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal("the idle download's file was not closed")
		}
		a = c.call("file:download:chunk", map[string]any{"downloadId": down})
		if a.OK || a.Error.Code != "not_found" || !strings.Contains(a.Error.Message, "no such download") {
			t.Fatalf("chunk after the idle timeout: %+v %+v; want not_found", a.Data, a.Error)
		}
	})
}

// closeNotifier closes closed when it is closed.
type closeNotifier struct {
	io.Reader
	closed chan struct{}
}

func (c closeNotifier) Close() error {
	close(c.closed)
	return nil
}
