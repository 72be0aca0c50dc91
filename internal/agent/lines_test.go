package agent

import (
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

func TestLineReader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		max  int
		want []string
	}{
		{"empty", "", 8, nil},
		{"one line", "abc\n", 8, []string{"abc"}},
		{"empty lines", "\n\n", 8, []string{"", ""}},
		{"partial last line", "a\nbc", 8, []string{"a", "bc"}},
		{"exactly max", "abcdefgh\n", 8, []string{"abcdefgh"}},
		{"exactly max at EOF", "abcdefgh", 8, []string{"abcdefgh"}},
		{"split long line", "abcdefghijklmnopqrs\nt\n", 8, []string{"abcdefgh", "ijklmnop", "qrs", "t"}},
		{"max then newline then more", "abcdefgh\nx", 8, []string{"abcdefgh", "x"}},
		{"max plus one", "abcdefghi\n", 8, []string{"abcdefgh", "i"}},
		// "é" is two bytes: a window ending in its first byte is cut before it.
		{"utf8 kept whole", "xéééé\n", 4, []string{"xé", "éé", "é"}},
		{"invalid utf8 cut at limit", "\xff\xff\xff\xff\xff\n", 4, []string{"\xff\xff\xff\xff", "\xff"}},
		{"lone continuation bytes", "\x80\x80\x80\x80\x80", 4, []string{"\x80\x80\x80\x80", "\x80"}},
	}
	for _, tt := range tests {
		for _, reader := range []struct {
			name string
			wrap func(io.Reader) io.Reader
		}{
			{"whole", func(r io.Reader) io.Reader { return r }},
			{"onebyte", iotest.OneByteReader},
			{"half", iotest.HalfReader},
		} {
			t.Run(tt.name+"/"+reader.name, func(t *testing.T) {
				lr := newLineReader(reader.wrap(strings.NewReader(tt.in)), tt.max)
				var got []string
				for {
					line, err := lr.next()
					if err != nil {
						if !errors.Is(err, io.EOF) {
							t.Fatalf("next: %v", err)
						}
						break
					}
					if len(line) > tt.max {
						t.Errorf("line %q longer than %d", line, tt.max)
					}
					got = append(got, string(line))
				}
				if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
					t.Errorf("lines = %q, want %q", got, tt.want)
				}
			})
		}
	}
}

func TestLineReaderLongUTF8(t *testing.T) {
	t.Parallel()
	const max = 64 * 1024
	in := "x" + strings.Repeat("é", 100000) + "\n"
	lr := newLineReader(strings.NewReader(in), max)
	var joined strings.Builder
	n := 0
	for {
		line, err := lr.next()
		if err != nil {
			break
		}
		n++
		if len(line) > max {
			t.Fatalf("line %d has %d bytes, more than %d", n, len(line), max)
		}
		if !utf8.Valid(line) {
			t.Fatalf("line %d is not valid UTF-8: a character was cut", n)
		}
		joined.Write(line)
	}
	if n != 4 {
		t.Errorf("got %d lines, want 4", n)
	}
	if joined.String()+"\n" != in {
		t.Errorf("joined lines differ from the input")
	}
}

// TestLineReaderRandom compares the reader with a plain reference on random
// ASCII input with lines around the limit, which makes the buffer grow and
// compact.
func TestLineReaderRandom(t *testing.T) {
	t.Parallel()
	const max = 5000
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		var in strings.Builder
		for range 50 {
			n := rng.IntN(3 * max)
			if rng.IntN(3) == 0 {
				n = max + rng.IntN(3) - 1
			}
			in.WriteString(strings.Repeat(string(rune('a'+rng.IntN(26))), n))
			in.WriteByte('\n')
		}
		var want []string
		for line := range strings.SplitSeq(strings.TrimSuffix(in.String(), "\n"), "\n") {
			for len(line) > max {
				want = append(want, line[:max])
				line = line[max:]
			}
			want = append(want, line)
		}
		lr := newLineReader(iotest.HalfReader(strings.NewReader(in.String())), max)
		var got []string
		for {
			line, err := lr.next()
			if err != nil {
				break
			}
			got = append(got, string(line))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: got %d lines, want %d", round, len(got), len(want))
		}
	}
}
