package agent

import (
	"strconv"
	"unicode/utf8"

	"github.com/sdbx/sdbx/internal/agentproto"
)

// appendEvent appends ev as one JSON line to b. It writes what
// encoding/json would (omitting empty fields), without reflection: output
// streaming spends most of its time encoding events. Invalid UTF-8 becomes
// U+FFFD.
func appendEvent(b []byte, ev agentproto.Event) []byte {
	b = append(b, `{"t":`...)
	b = appendString(b, ev.Type)
	if ev.Data != "" {
		b = append(b, `,"d":`...)
		b = appendString(b, ev.Data)
	}
	if ev.TS != 0 {
		b = append(b, `,"ts":`...)
		b = strconv.AppendInt(b, ev.TS, 10)
	}
	if ev.Pid != 0 {
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, int64(ev.Pid), 10)
	}
	if ev.ExitCode != 0 {
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(ev.ExitCode), 10)
	}
	if ev.TimedOut {
		b = append(b, `,"timedOut":true`...)
	}
	if ev.Version != "" {
		b = append(b, `,"version":`...)
		b = appendString(b, ev.Version)
	}
	if ev.ErrCode != "" {
		b = append(b, `,"err":`...)
		b = appendString(b, ev.ErrCode)
	}
	if ev.Message != "" {
		b = append(b, `,"msg":`...)
		b = appendString(b, ev.Message)
	}
	if ev.Exists {
		b = append(b, `,"exists":true`...)
	}
	if ev.KeepAlive {
		b = append(b, `,"keepAlive":true`...)
	}
	return append(b, '}', '\n')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
