package agent

import (
	"bytes"
	"io"
	"unicode/utf8"
)

// lineReader splits a stream into lines of at most max bytes. A longer line
// is split, at a UTF-8 character boundary where there is one near the
// limit. A last line without a newline is returned at EOF. Its buffer
// starts small and grows to max+1 bytes only for long lines.
type lineReader struct {
	r     io.Reader
	max   int
	buf   []byte
	start int // buf[start:end] is read but not yet returned
	end   int
	err   error
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: r, max: max, buf: make([]byte, min(4096, max+1))}
}

// next returns the next line without its newline. The slice is valid until
// the following call. At the end of the stream it returns the reader's
// error (io.EOF, or whatever ended the reading).
func (l *lineReader) next() ([]byte, error) {
	for {
		data := l.buf[l.start:l.end]
		// A newline right after max bytes still ends the line there.
		if i := bytes.IndexByte(data[:min(len(data), l.max+1)], '\n'); i >= 0 {
			l.start += i + 1
			return data[:i], nil
		}
		if len(data) > l.max {
			n := runeCut(data[:l.max])
			l.start += n
			return data[:n], nil
		}
		if l.err != nil {
			if len(data) > 0 {
				l.start = l.end
				return data, nil
			}
			return nil, l.err
		}
		if l.end == len(l.buf) {
			if l.start > 0 {
				// Move the partial line to the front to make room.
				copy(l.buf, data)
				l.start, l.end = 0, len(data)
			} else {
				// A long line: grow, up to the max+1 bytes that tell
				// whether a newline follows max bytes.
				nb := make([]byte, min(2*len(l.buf), l.max+1))
				l.end = copy(nb, data)
				l.buf = nb
			}
		}
		n, err := l.r.Read(l.buf[l.end:])
		l.end += n
		if err != nil {
			l.err = err
		}
	}
}

// runeCut returns where to split b (a full window without newline) so
// that a multi-byte UTF-8 character at its end is not cut in two. It
// returns len(b) when b does not end inside a character (or is nothing
// but the start of one).
func runeCut(b []byte) int {
	if t := incompleteTail(b); t < len(b) {
		return len(b) - t
	}
	return len(b)
}

// incompleteTail returns the length of an incomplete UTF-8 sequence at
// the end of b (0 when b ends on a character boundary or with bytes that
// are not UTF-8 anyway).
func incompleteTail(b []byte) int {
	for k := 1; k < utf8.UTFMax && k <= len(b); k++ {
		c := b[len(b)-k]
		if utf8.RuneStart(c) {
			if c >= 0xC0 && !utf8.FullRune(b[len(b)-k:]) {
				return k
			}
			return 0
		}
	}
	return 0
}
