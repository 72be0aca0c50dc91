package agent

import (
	"context"
	"os"
	"sync"
	"unicode/utf8"

	"github.com/sdbx/sdbx/internal/agentproto"
)

// chunk is a piece of output.
type chunk struct {
	off    int64
	stream string
	data   []byte
}

// outputRing keeps the last limit bytes of a background process's (or a
// terminal session's) output with absolute offsets: offset 0 is the first
// byte ever added, [start, end) is what is still buffered. Readers wait
// on changed, which is closed and replaced on every change.
type outputRing struct {
	limit int

	mu      sync.Mutex
	chunks  []chunk // buffered output, in offset order
	start   int64   // offset of chunks[0] (or end when empty)
	end     int64   // offset after the last byte added
	size    int     // bytes in chunks
	done    bool    // no more output will come
	changed chan struct{}
}

func newOutputRing(limit int) *outputRing {
	return &outputRing{limit: limit, changed: make(chan struct{})}
}

// notifyLocked wakes the readers; r.mu is held.
func (r *outputRing) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// notify wakes the readers (the owner's state changed).
func (r *outputRing) notify() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notifyLocked()
}

// finish marks the output complete.
func (r *outputRing) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	r.notifyLocked()
}

// bounds returns the offsets of the buffered output.
func (r *outputRing) bounds() (start, end int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.start, r.end
}

// add appends output read from stream, dropping the oldest chunks beyond
// the limit.
func (r *outputRing) add(stream string, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.chunks = append(r.chunks, chunk{off: r.end, stream: stream, data: data})
	r.end += int64(len(data))
	r.size += len(data)
	for r.size > r.limit && len(r.chunks) > 0 {
		c := r.chunks[0]
		over := r.size - r.limit
		if over < len(c.data) {
			// Keep the chunk's tail, from a character boundary.
			for over < len(c.data) && !utf8.RuneStart(c.data[over]) && over-(r.size-r.limit) < utf8.UTFMax-1 {
				over++
			}
			r.chunks[0] = chunk{off: c.off + int64(over), stream: c.stream, data: c.data[over:]}
			r.size -= over
			break
		}
		r.chunks[0] = chunk{}
		r.chunks = r.chunks[1:]
		r.size -= len(c.data)
	}
	if len(r.chunks) > 0 {
		r.start = r.chunks[0].off
	} else {
		r.start = r.end
	}
	r.notifyLocked()
}

// since returns the buffered chunks from offset, the bytes lost before
// them, the offset after them, whether the output is complete and a
// channel closed on change.
func (r *outputRing) since(offset int64) (out []chunk, lost, next int64, done bool, changed <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if offset < r.start {
		lost = r.start - offset
		offset = r.start
	}
	for _, c := range r.chunks {
		cend := c.off + int64(len(c.data))
		if cend <= offset {
			continue
		}
		if c.off < offset {
			c = chunk{off: offset, stream: c.stream, data: c.data[offset-c.off:]}
		}
		out = append(out, c)
	}
	next = max(offset, r.end)
	return out, lost, next, r.done, r.changed
}

// readFrom adds what f yields (a pipe or a terminal's master, read
// through a pipeReader so that a read deadline ends it without losing
// what is already there) until EOF, an error or the deadline. Chunks end
// on UTF-8 character boundaries where the text allows.
func (r *outputRing) readFrom(f *os.File, stream string) {
	pr := newPipeReader(f)
	var carry []byte
	for {
		buf := make([]byte, procChunk+utf8.UTFMax)
		n := copy(buf, carry)
		m, err := pr.Read(buf[n : n+procChunk])
		n += m
		carry = nil
		if err == nil {
			// Keep an incomplete UTF-8 sequence at the end for the next
			// chunk, so that text is not split mid-character.
			k := incompleteTail(buf[:n])
			carry = append(carry, buf[n-k:n]...)
			n -= k
		}
		if n > 0 {
			r.add(stream, buf[:n:n])
		}
		if err != nil {
			return
		}
	}
}

// streamOutput writes the ring's output from offset as events, and with
// follow waits for more until the output is complete. It returns the
// offset after the last byte sent and the lost bytes not reported in an
// event.
func streamOutput(ctx context.Context, w *eventWriter, r *outputRing, offset int64, follow bool) (end, lost int64, err error) {
	for {
		chunks, l, next, done, changed := r.since(offset)
		// Bytes dropped before they could be sent (also while following a
		// process that writes faster than the client reads) are reported
		// with the next chunk.
		lost += l
		for i, c := range chunks {
			pl := &agentproto.ProcPayload{Stream: c.stream, Data: c.data, Offset: c.off, Lost: lost}
			lost = 0
			if err := writeProcEvent(w, agentproto.Event{Type: agentproto.EventProcOutput, Proc: pl}, i == len(chunks)-1); err != nil {
				return next, 0, err
			}
		}
		offset = next
		if !follow || done {
			return offset, lost, nil
		}
		select {
		case <-ctx.Done():
			return offset, 0, ctx.Err()
		case <-changed:
		}
	}
}
