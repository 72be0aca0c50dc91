package api

import (
	"strconv"
	"sync"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// attachmentParser is the library's Socket.IO parser without its copy of
// binary attachments (file:upload:chunk's data). The library's decoder
// reads each attachment the engine hands it into a new buffer that it
// grows by doubling from 512 bytes: for a 4 MiB chunk, about 8 MiB
// allocated and zeroed and 8 MiB copied, a sixth of the server's CPU in an
// upload. Here the decoder gets a small marker in place of each
// attachment instead (its index, in decimal), and the engine's buffer is
// put back where the marker landed before anyone else sees the decoded
// packet. Text packets, validation and reconstruction stay the library's.
type attachmentParser struct{ parser.Parser }

func newAttachmentParser() parser.Parser { return attachmentParser{parser.NewParser()} }

func (p attachmentParser) NewDecoder() parser.Decoder {
	d := &attachmentDecoder{Decoder: p.Parser.NewDecoder()}
	// Listeners run in the order they were added, synchronously: this one
	// comes before the Socket.IO client's own.
	_ = d.On("decoded", d.restore)
	return d
}

// attachmentDecoder keeps the attachments of the packet being
// reconstructed and restores them into the decoded packet.
type attachmentDecoder struct {
	parser.Decoder

	mu      sync.Mutex
	pending []types.BufferInterface // by arrival order = placeholder num
}

// Add implements parser.Decoder. Any error ends the connection (the
// Socket.IO client closes it), so what was pending is dropped with it.
func (d *attachmentDecoder) Add(data any) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var err error
	if buf, ok := data.(types.BufferInterface); ok && parser.IsBinary(data) {
		d.pending = append(d.pending, buf)
		err = d.Decoder.Add(strconv.AppendInt(nil, int64(len(d.pending)-1), 10))
	} else {
		err = d.Decoder.Add(data)
	}
	if err != nil {
		d.pending = nil
	}
	return err
}

// restore replaces the markers in a decoded packet by the attachments. It
// runs within Add (under d.mu), when the last attachment arrived.
func (d *attachmentDecoder) restore(args ...any) {
	if len(args) == 0 || len(d.pending) == 0 {
		return
	}
	if p, ok := args[0].(*parser.Packet); ok {
		p.Data = d.replaceMarkers(p.Data)
	}
	d.pending = nil
}

func (d *attachmentDecoder) replaceMarkers(v any) any {
	switch v := v.(type) {
	case []any:
		for i := range v {
			v[i] = d.replaceMarkers(v[i])
		}
	case map[string]any:
		for k, x := range v {
			v[k] = d.replaceMarkers(x)
		}
	case types.BufferInterface:
		if i, err := strconv.Atoi(v.String()); err == nil && i >= 0 && i < len(d.pending) {
			return d.pending[i]
		}
	}
	return v
}
