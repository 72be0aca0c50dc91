package api

import (
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
)

// attachmentParser is the library's Socket.IO parser with a cheaper path
// for binary attachments (file:upload:chunk's data). The engine hands the
// decoder each attachment as a buffer, which the library's decoder reads
// into a new buffer that it grows by doubling from 512 bytes: for a 4 MiB
// chunk that allocates and zeroes about 8 MiB and copies about 4 MiB more
// than the one copy it needs. Given the bytes as a []byte instead, it
// makes one buffer of the right size. Text packets and the decoded
// packets are the library's own.
type attachmentParser struct{ parser.Parser }

func newAttachmentParser() parser.Parser { return attachmentParser{parser.NewParser()} }

func (p attachmentParser) NewDecoder() parser.Decoder {
	return attachmentDecoder{p.Parser.NewDecoder()}
}

// attachmentDecoder passes binary data on as a []byte.
type attachmentDecoder struct{ parser.Decoder }

// Add implements parser.Decoder.
func (d attachmentDecoder) Add(data any) error {
	// Text arrives as a string buffer, which has Bytes too: only binary
	// data (what IsBinary accepts) is passed on as bytes.
	if b, ok := data.(interface{ Bytes() []byte }); ok && parser.IsBinary(data) {
		if bytes := b.Bytes(); bytes != nil {
			return d.Decoder.Add(bytes)
		}
		return d.Decoder.Add([]byte{})
	}
	return d.Decoder.Add(data)
}
