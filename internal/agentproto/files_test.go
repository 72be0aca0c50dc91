package agentproto_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/sdbx/sdbx/internal/agentproto"
)

// frame builds a chunk stream of the given chunks (an empty one ends it).
func frame(chunks ...string) []byte {
	var b []byte
	for _, c := range chunks {
		hdr := make([]byte, agentproto.ChunkHeaderLen)
		agentproto.PutChunkHeader(hdr, len(c))
		b = append(append(b, hdr...), c...)
	}
	return b
}

func TestChunkReader(t *testing.T) {
	tooLarge := make([]byte, agentproto.ChunkHeaderLen)
	agentproto.PutChunkHeader(tooLarge, agentproto.MaxChunk+1)
	tests := []struct {
		name    string
		stream  []byte
		want    string
		wantErr error
	}{
		{"empty content", frame(""), "", nil},
		{"chunks", frame("hello", " ", "world\x00", ""), "hello world\x00", nil},
		{"trailing bytes stay unread", append(frame("a", ""), "NEXT"...), "a", nil},
		{"no end chunk", frame("abc"), "abc", io.ErrUnexpectedEOF},
		{"cut header", frame("abc")[:6], "ab", io.ErrUnexpectedEOF},
		{"cut payload", frame("abcdef")[:7], "abc", io.ErrUnexpectedEOF},
		{"nothing", nil, "", io.ErrUnexpectedEOF},
		{"chunk too large", tooLarge, "", agentproto.ErrChunkTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := bytes.NewReader(tt.stream)
			cr := agentproto.NewChunkReader(src)
			got, err := io.ReadAll(cr)
			if string(got) != tt.want || !errors.Is(err, tt.wantErr) && (err != nil || tt.wantErr != nil) {
				t.Errorf("got %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			if tt.wantErr == nil {
				if !cr.Done() {
					t.Error("Done is false after the end chunk")
				}
				if n, err := cr.Read(make([]byte, 8)); n != 0 || err != io.EOF {
					t.Errorf("Read after the end = %d, %v", n, err)
				}
			}
		})
	}
	// Nothing past the end chunk is consumed.
	src := bytes.NewReader(append(frame("a", ""), "NEXT"...))
	_, _ = io.ReadAll(agentproto.NewChunkReader(src))
	if rest, _ := io.ReadAll(src); string(rest) != "NEXT" {
		t.Errorf("left after the stream: %q", rest)
	}
}
