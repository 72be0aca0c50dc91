package kernel

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"
)

// markerPrefix starts every sync marker a driver writes to its stdout and
// stderr pipes: "\x00sdbx-sync:TOKEN:SEQ\n".
const markerPrefix = "\x00sdbx-sync:"

// maxMarkerTail bounds the digits and newline after a marker's prefix.
const maxMarkerTail = 24

// splitter splits a driver's stdout or stderr stream into lines of at most
// max bytes and picks out its sync markers. A marker may follow a partial
// line (output without a trailing newline): that text is returned as a
// line of its own first. A line longer than max is split, at a UTF-8
// character boundary where there is one near the limit, and never inside
// a marker.
type splitter struct {
	r      io.Reader
	max    int
	marker []byte // markerPrefix + token + ":"
	buf    []byte
	start  int // buf[start:end] is read but not yet returned
	end    int
	err    error
}

func newSplitter(r io.Reader, token string, max int) *splitter {
	m := []byte(markerPrefix + token + ":")
	return &splitter{r: r, max: max, marker: m, buf: make([]byte, 2*max+len(m)+maxMarkerTail)}
}

// errAgain is returned by a splitter's reader that has nothing to read
// right now (a non-blocking pipe that is empty). The splitter passes it on
// and keeps what it has buffered; next may be called again later.
var errAgain = errors.New("nothing to read yet")

// next returns either a line (without its newline; valid until the next
// call) or, when seq > 0, a marker. At the end of the stream it returns
// the reader's error; when the reader returns errAgain, so does next.
func (s *splitter) next() (line []byte, seq uint64, err error) {
	for {
		data := s.buf[s.start:s.end]
		nl := bytes.IndexByte(data, '\n')
		scope := data
		if nl >= 0 {
			scope = data[:nl]
		}
		if mk := bytes.Index(scope, s.marker); mk >= 0 {
			if mk > 0 {
				n := min(mk, s.max)
				if mk > s.max {
					n = runeCut(data[:s.max])
				}
				s.start += n
				return data[:n], 0, nil
			}
			if nl >= 0 {
				s.start += nl + 1
				if v, perr := strconv.ParseUint(string(data[len(s.marker):nl]), 10, 64); perr == nil && v > 0 {
					return nil, v, nil
				}
				// Not a well-formed marker: plain text after all.
				return data[:nl], 0, nil
			}
			if len(data) > len(s.marker)+maxMarkerTail || s.err != nil {
				// A marker prefix without its end: plain text.
				n := min(len(data), s.max)
				s.start += n
				return data[:n], 0, nil
			}
		} else {
			if nl >= 0 && nl <= s.max {
				s.start += nl + 1
				return data[:nl], 0, nil
			}
			p := partialMarker(data, s.marker)
			if len(data) > s.max && p != 0 {
				n := runeCut(data[:s.max])
				if p > 0 && p < n {
					n = p
				}
				s.start += n
				return data[:n], 0, nil
			}
			if s.err != nil {
				if len(data) > 0 {
					s.start = s.end
					return data, 0, nil
				}
				return nil, 0, s.err
			}
		}
		if s.end == len(s.buf) {
			copy(s.buf, data)
			s.start, s.end = 0, len(data)
		}
		n, rerr := s.r.Read(s.buf[s.end:])
		s.end += n
		if rerr == errAgain {
			if n == 0 {
				return nil, 0, errAgain
			}
		} else if rerr != nil {
			s.err = rerr
		}
	}
}

// rest returns the buffered text that has no newline yet (a partial
// line), and forgets it; nil when there is none. Used when the writer is
// known to have paused: the text is passed on as a line of its own, as
// before a marker.
func (s *splitter) rest() []byte {
	if s.start == s.end {
		return nil
	}
	data := s.buf[s.start:s.end]
	s.start, s.end = 0, 0
	return data
}

// pending reports whether a complete line is already buffered.
func (s *splitter) pending() bool {
	return bytes.IndexByte(s.buf[s.start:s.end], '\n') >= 0
}

// partialMarker returns where a marker that data ends with the beginning
// of starts, or -1.
func partialMarker(data, marker []byte) int {
	from := max(0, len(data)-len(marker)+1)
	for i := len(data) - 1; i >= from; i-- {
		if data[i] == marker[0] && bytes.HasPrefix(marker, data[i:]) {
			return i
		}
	}
	return -1
}

// runeCut returns where to split b (a full window without newline) so that
// a multi-byte UTF-8 character at its end is not cut in two.
func runeCut(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(b[i]) {
			if i > 0 && !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}
