package api

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// decodeAll feeds frames, as the engine hands them over, to a decoder of
// the attachment parser and returns the packets it decoded.
func decodeAll(t *testing.T, frames ...any) []*parser.Packet {
	t.Helper()
	d := newAttachmentParser().NewDecoder()
	defer d.Destroy()
	var got []*parser.Packet
	if err := d.On("decoded", func(args ...any) { got = append(got, args[0].(*parser.Packet)) }); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := d.Add(f); err != nil {
			t.Fatalf("Add: %v", err)
		}
	}
	return got
}

// The attachment parser decodes binary events as the library's does:
// each attachment lands where its placeholder was, with its bytes intact
// (empty ones too) and not copied, and text packets are untouched.
func TestAttachmentParser(t *testing.T) {
	big := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, 1<<19) // not a power of two
	frames := []any{
		types.NewStringBufferString(`52-["file:upload:chunk",{"seq":0,"data":{"_placeholder":true,"num":1},"other":{"_placeholder":true,"num":0}}]`),
		types.NewBytesBuffer([]byte("first")),
		types.NewBytesBuffer(big),
		types.NewStringBufferString(`2["ping",{"a":1}]`),
		types.NewStringBufferString(`51-["file:upload:chunk",{"data":{"_placeholder":true,"num":0}}]`),
		types.NewBytesBuffer(nil),
	}
	got := decodeAll(t, frames...)
	if len(got) != 3 {
		t.Fatalf("decoded %d packets, want 3", len(got))
	}
	bytesOf := func(p *parser.Packet, field string) []byte {
		t.Helper()
		args, ok := p.Data.([]any)
		if !ok || len(args) != 2 {
			t.Fatalf("packet data %#v", p.Data)
		}
		v, ok := args[1].(map[string]any)[field].(interface{ Bytes() []byte })
		if !ok {
			t.Fatalf("field %s is %T, not binary", field, args[1].(map[string]any)[field])
		}
		return v.Bytes()
	}
	if b := bytesOf(got[0], "data"); !bytes.Equal(b, big) {
		t.Errorf("data: %d bytes, want the %d sent", len(b), len(big))
	} else if &b[0] != &big[0] {
		t.Errorf("data is a copy of the engine's buffer")
	}
	if b := bytesOf(got[0], "other"); string(b) != "first" {
		t.Errorf("other = %q, want %q", b, "first")
	}
	if args, ok := got[1].Data.([]any); !ok || len(args) != 2 || args[0] != "ping" {
		t.Errorf("text packet decoded as %#v", got[1].Data)
	}
	if b := bytesOf(got[2], "data"); len(b) != 0 {
		t.Errorf("empty attachment came out as %d bytes", len(b))
	}
}

// The websocket transport does not compress: a client offering
// permessage-deflate (socket.io-client does by default) gets plain frames,
// so file chunks (often incompressible) cost no deflate on either side.
func TestSocketNoCompression(t *testing.T) {
	e := newEnv(t)
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
	conn, resp, err := (&websocket.Dialer{EnableCompression: true}).DialContext(t.Context(), url, nil)
	if err != nil {
		t.Fatalf("websocket handshake: %v", err)
	}
	defer conn.Close()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Errorf("the server negotiated %q", ext)
	}
	if _, open, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(open), "0{") {
		t.Fatalf("engine.io open packet: %q, %v", open, err)
	}
}
