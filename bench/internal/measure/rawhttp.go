package measure

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// rawPoster sends one fixed POST over and over on one keep-alive
// HTTP/1.1 connection. The throughput measurement shares the machine's
// CPUs with the server it measures, so its client is kept lean: the
// request is encoded once, and a response is checked (status 200, no
// error in the body) without being decoded. Every response is read in
// full; anything unexpected ends the measurement with an error.
type rawPoster struct {
	conn net.Conn
	br   *bufio.Reader
	req  []byte
	body []byte // the last response body
}

// newRawPoster connects to base (http://host:port) and prepares a POST of
// body to path with key.
func newRawPoster(ctx context.Context, base, key, path string, body []byte) (*rawPoster, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", base, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("server URL %q: only http:// is supported by the throughput client", base)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, u.Host, key, len(body))
	req := append([]byte(b.String()), body...)
	return &rawPoster{conn: conn, br: bufio.NewReaderSize(conn, 16<<10), req: req}, nil
}

// post sends the request and reads its response. It fails on a status
// other than 200 or on a body that reports an error.
func (p *rawPoster) post(deadline time.Time) error {
	_ = p.conn.SetDeadline(deadline)
	if _, err := p.conn.Write(p.req); err != nil {
		return err
	}
	status, err := p.br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("read status line: %w", err)
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		code := strings.TrimSpace(string(status))
		length, chunked, _ := p.headers()
		_ = p.readBody(length, chunked)
		return fmt.Errorf("%s: %s", code, bytes.TrimSpace(p.body))
	}
	length, chunked, err := p.headers()
	if err != nil {
		return err
	}
	if err := p.readBody(length, chunked); err != nil {
		return err
	}
	// A successful run's body has no "error" member anywhere: not in the
	// execution, not at the top.
	if bytes.Contains(p.body, []byte(`"error":`)) {
		return fmt.Errorf("run failed: %s", p.body)
	}
	return nil
}

// headers reads the response headers and returns the body's framing.
func (p *rawPoster) headers() (length int, chunked bool, err error) {
	length = -1
	for {
		line, err := p.br.ReadSlice('\n')
		if err != nil {
			return 0, false, fmt.Errorf("read headers: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("malformed header %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		}
	}
	if length < 0 && !chunked {
		return 0, false, errors.New("response without Content-Length or chunked framing")
	}
	return length, chunked, nil
}

// readBody reads a body of length bytes, or a chunked one, into p.body.
func (p *rawPoster) readBody(length int, chunked bool) error {
	p.body = p.body[:0]
	if !chunked {
		if length < 0 {
			return nil
		}
		p.body = slices.Grow(p.body, length)[:length]
		_, err := io.ReadFull(p.br, p.body)
		return err
	}
	for {
		line, err := p.br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read chunk size: %w", err)
		}
		size, err := strconv.ParseUint(string(bytes.TrimRight(line, "\r\n")), 16, 31)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", line)
		}
		start := len(p.body)
		p.body = slices.Grow(p.body, int(size)+2)[:start+int(size)+2]
		if _, err := io.ReadFull(p.br, p.body[start:]); err != nil {
			return err
		}
		if !bytes.HasSuffix(p.body, []byte("\r\n")) {
			return errors.New("chunk without its CRLF")
		}
		p.body = p.body[:len(p.body)-2]
		if size == 0 {
			// The last chunk, and the CRLF that ends an empty trailer.
			return nil
		}
	}
}

func (p *rawPoster) Close() error { return p.conn.Close() }
