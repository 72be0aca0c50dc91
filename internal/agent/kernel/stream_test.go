package kernel

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// split runs a splitter over input and renders its items: lines as
// "l:TEXT", markers as "m:N".
func split(t *testing.T, input string, max int, oneByte bool) []string {
	t.Helper()
	var r io.Reader = strings.NewReader(input)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	s := newSplitter(r, "tok", max)
	var out []string
	for {
		line, seq, err := s.next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("next: %v", err)
			}
			return out
		}
		if seq > 0 {
			out = append(out, fmt.Sprintf("m:%d", seq))
		} else {
			out = append(out, "l:"+string(line))
		}
	}
}

func TestSplitter(t *testing.T) {
	mk := func(n int) string { return fmt.Sprintf("\x00sdbx-sync:tok:%d\n", n) }
	tests := []struct {
		name  string
		input string
		max   int
		want  []string
	}{
		{"lines", "a\nb\n", 10, []string{"l:a", "l:b"}},
		{"last line without newline", "a\nb", 10, []string{"l:a", "l:b"}},
		{"empty lines", "\n\n", 10, []string{"l:", "l:"}},
		{"marker", "a\n" + mk(1) + "b\n" + mk(2), 10, []string{"l:a", "m:1", "l:b", "m:2"}},
		{"marker after a partial line", "abc" + mk(3) + "def\n", 10, []string{"l:abc", "m:3", "l:def"}},
		{"long line split", "abcdefghij\n", 4, []string{"l:abcd", "l:efgh", "l:ij"}},
		{"long partial line before a marker", "abcdefghij" + mk(4), 4, []string{"l:abcd", "l:efgh", "l:ij", "m:4"}},
		{"marker is not split", "abcdefg" + mk(5), 8, []string{"l:abcdefg", "m:5"}},
		{"other token is text", "\x00sdbx-sync:other:1\n", 40, []string{"l:\x00sdbx-sync:other:1"}},
		{"bad number is text", "\x00sdbx-sync:tok:x\n", 40, []string{"l:\x00sdbx-sync:tok:x"}},
		{"unfinished marker at EOF", "\x00sdbx-sync:tok:7", 40, []string{"l:\x00sdbx-sync:tok:7"}},
		{"utf-8 not cut", "ééé\n", 5, []string{"l:éé", "l:é"}},
	}
	for _, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/onebyte=%v", tt.name, oneByte), func(t *testing.T) {
				if got := split(t, tt.input, tt.max, oneByte); !slices.Equal(got, tt.want) {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			})
		}
	}
}

func TestSplitterPending(t *testing.T) {
	s := newSplitter(strings.NewReader("a\nb\nc"), "tok", 10)
	if _, _, err := s.next(); err != nil {
		t.Fatal(err)
	}
	if !s.pending() {
		t.Error("pending = false with a full line buffered")
	}
	s.next()
	if s.pending() {
		t.Error("pending = true with only a partial line buffered")
	}
}

// chunkReader returns its chunks one per Read, then errAgain, like an
// empty non-blocking pipe.
type chunkReader struct{ chunks []string }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, errAgain
	}
	n := copy(p, r.chunks[0])
	r.chunks = r.chunks[1:]
	return n, nil
}

// On an empty pipe next returns errAgain and keeps a partial line; rest
// hands it over once, and reading goes on after it.
func TestSplitterAgainRest(t *testing.T) {
	r := &chunkReader{chunks: []string{"a\npart"}}
	s := newSplitter(r, "tok", 10)
	if line, _, err := s.next(); err != nil || string(line) != "a" {
		t.Fatalf("next = %q, %v; want the line a", line, err)
	}
	if line, _, err := s.next(); err != errAgain {
		t.Fatalf("next = %q, %v; want errAgain with a partial line buffered", line, err)
	}
	if got := s.rest(); string(got) != "part" {
		t.Fatalf("rest = %q, want the partial line", got)
	}
	if got := s.rest(); got != nil {
		t.Fatalf("second rest = %q, want nil", got)
	}
	r.chunks = []string{"b\n"}
	if line, _, err := s.next(); err != nil || string(line) != "b" {
		t.Fatalf("next after rest = %q, %v; want the line b", line, err)
	}
}
