package sdbx

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// A minimal WebSocket client (RFC 6455) for the terminal endpoint: the
// opening handshake goes through the client's http.Client (which hands
// back the connection after 101), then whole messages are read and
// written; pings are answered.

const (
	wsText   = 1
	wsBinary = 2
	wsClose  = 8
	wsPing   = 9
	wsPong   = 10
	// wsMaxMessage bounds a message the server sends.
	wsMaxMessage = 16 << 20
)

// wsGUID is the handshake's fixed GUID (RFC 6455 section 1.3).
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// wsConn is an open WebSocket.
type wsConn struct {
	rw io.ReadWriteCloser
	br *bufio.Reader

	writeMu sync.Mutex
}

// dialWS opens a WebSocket to r (a GET); errors are the SDK's typed errors
// of the server's answer.
func (c *Client) dialWS(ctx context.Context, r *request) (*wsConn, error) {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	r.header = http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {key},
	}
	resp, err := c.send(ctx, r, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, c.contextError(ctx, r.op(), c.timeout)
		}
		return nil, err
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if resp.StatusCode != http.StatusSwitchingProtocols || !ok {
		resp.Body.Close()
		return nil, &Error{Code: CodeInternal, Message: fmt.Sprintf("%s: the server did not switch to WebSocket (%s)", r.op(), resp.Status)}
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	if resp.Header.Get("Sec-Websocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		rw.Close()
		return nil, &Error{Code: CodeInternal, Message: r.op() + ": bad Sec-WebSocket-Accept in the server's answer"}
	}
	return &wsConn{rw: rw, br: bufio.NewReaderSize(rw, 32*1024)}, nil
}

// write sends one message of type op (masked, as a client must).
func (w *wsConn) write(op byte, payload []byte) error {
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	hdr := make([]byte, 0, 14)
	hdr = append(hdr, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xFFFF:
		hdr = append(hdr, 0x80|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	buf := make([]byte, len(hdr)+len(payload))
	copy(buf, hdr)
	for i, b := range payload {
		buf[len(hdr)+i] = b ^ mask[i%4]
	}
	_, err := w.rw.Write(buf)
	return err
}

// errWSClosed is returned by read once the server closed the WebSocket.
var errWSClosed = errors.New("websocket closed")

// read returns the next text or binary message; it answers pings and
// returns errWSClosed after a close frame.
func (w *wsConn) read() (op byte, msg []byte, err error) {
	for {
		fin, fop, payload, err := w.frame()
		if err != nil {
			return 0, nil, err
		}
		switch fop {
		case wsPing:
			if err := w.write(wsPong, payload); err != nil {
				return 0, nil, err
			}
			continue
		case wsPong:
			continue
		case wsClose:
			_ = w.write(wsClose, payload)
			return 0, nil, errWSClosed
		case 0: // a continuation without a start
			return 0, nil, errors.New("websocket: unexpected continuation frame")
		}
		op, msg = fop, payload
		for !fin {
			var cop byte
			var more []byte
			fin, cop, more, err = w.frame()
			if err != nil {
				return 0, nil, err
			}
			if cop != 0 {
				return 0, nil, errors.New("websocket: interleaved frame in a fragmented message")
			}
			if len(msg)+len(more) > wsMaxMessage {
				return 0, nil, errors.New("websocket: message too large")
			}
			msg = append(msg, more...)
		}
		return op, msg, nil
	}
}

// frame reads one frame.
func (w *wsConn) frame() (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		return false, 0, nil, err
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0F
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(w.br, b[:]); err != nil {
			return false, 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(w.br, b[:]); err != nil {
			return false, 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > wsMaxMessage {
		return false, 0, nil, errors.New("websocket: frame too large")
	}
	var mask []byte
	if h[1]&0x80 != 0 {
		mask = make([]byte, 4)
		if _, err := io.ReadFull(w.br, mask); err != nil {
			return false, 0, nil, err
		}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(w.br, payload); err != nil {
		return false, 0, nil, err
	}
	if mask != nil {
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
	}
	return fin, op, payload, nil
}

func (w *wsConn) close() error { return w.rw.Close() }
