package sdbx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
)

// PTYOptions describe the terminal session OpenPTY starts, or (PTYID
// set) the running one it re-attaches to.
type PTYOptions struct {
	// Command runs through bash; Args run directly; neither runs the
	// sandbox's interactive shell (bash -i, or sh -i).
	Command string
	Args    []string
	Env     map[string]string
	Cwd     string
	// Cols and Rows are the terminal's size, 1-1000 each, or both 0 for
	// 80x24.
	Cols, Rows int
	// PTYID re-attaches to a running session instead of starting one;
	// its output is then delivered from Offset (the last PTY.Offset of
	// the previous attachment), as far as the sandbox still buffers it.
	PTYID  string
	Offset int64
}

// PTY is an attached terminal session: Read returns what the terminal
// shows, Write types into it. Methods are safe for concurrent use, but
// Read is meant for one reader.
type PTY struct {
	// ID names the session (for re-attaching); Process describes it as it
	// was when attached.
	ID      string
	Process Process

	ws        *wsConn
	sandboxID string

	mu       sync.Mutex
	pending  []byte
	offset   int64 // offset after the last byte Read returned
	exited   bool
	exitCode int
	err      error // why reading ended
	done     chan struct{}
	frames   chan []byte
	closed   bool
	quit     chan struct{} // closed by Close and Detach: output is dropped
	quitOnce sync.Once
}

// ptyFrame is a text frame of the terminal WebSocket.
type ptyFrame struct {
	Type     string     `json:"type"`
	PTY      *Process   `json:"pty"`
	Offset   *int64     `json:"offset"`
	Lost     int64      `json:"lost"`
	ExitCode *int       `json:"exitCode"`
	End      *int64     `json:"end"`
	Error    *wireError `json:"error"`
	Cols     int        `json:"cols,omitempty"`
	Rows     int        `json:"rows,omitempty"`
	Signal   string     `json:"signal,omitempty"`
}

// OpenPTY starts a terminal session in sandbox id (or re-attaches to one,
// see PTYOptions.PTYID) over the server's WebSocket endpoint
// GET /v1/sandboxes/{id}/pty. ctx bounds the handshake only.
//
// Detach leaves the session running (re-attach with PTYID and Offset);
// Close kills it and every process it started.
func (c *Client) OpenPTY(ctx context.Context, id string, opts PTYOptions) (*PTY, error) {
	if err := checkID(opSandbox, "sandboxId", id); err != nil {
		return nil, err
	}
	q := url.Values{}
	r := &request{method: http.MethodGet, path: []string{"sandboxes", id, "pty"}, query: q, kind: opSandbox, sandboxID: id}
	bad := func(msg string) error {
		return &SandboxError{Code: CodeInvalidArgument, Message: r.op() + ": " + msg, SandboxID: id}
	}
	if opts.PTYID != "" {
		if opts.Offset < 0 {
			return nil, bad("Offset: must not be negative")
		}
		q.Set("ptyId", opts.PTYID)
		q.Set("offset", strconv.FormatInt(opts.Offset, 10))
	} else {
		if opts.Command != "" && len(opts.Args) > 0 {
			return nil, bad("give Command or Args, not both")
		}
		if opts.Cols != 0 || opts.Rows != 0 {
			if err := checkTermSize(opts.Cols, opts.Rows); err != nil {
				return nil, bad(err.Error())
			}
			q.Set("cols", strconv.Itoa(opts.Cols))
			q.Set("rows", strconv.Itoa(opts.Rows))
		}
		if opts.Command != "" {
			q.Set("command", opts.Command)
		}
		for _, a := range opts.Args {
			q.Add("arg", a)
		}
		if opts.Cwd != "" {
			q.Set("cwd", opts.Cwd)
		}
		for k, v := range opts.Env {
			q.Add("env", k+"="+v)
		}
	}
	ws, err := c.dialWS(ctx, r)
	if err != nil {
		return nil, err
	}
	op, msg, err := ws.read()
	var f ptyFrame
	if err == nil && (op != wsText || json.Unmarshal(msg, &f) != nil || f.Type != "ready" || f.PTY == nil) {
		err = fmt.Errorf("unexpected first message")
	}
	if err != nil {
		ws.close()
		return nil, connectionError(r.op()+": read the session's ready frame", err)
	}
	p := &PTY{ID: f.PTY.ID, Process: *f.PTY, ws: ws, sandboxID: id, done: make(chan struct{}), frames: make(chan []byte, 64), quit: make(chan struct{})}
	if f.Offset != nil {
		p.offset = *f.Offset
	}
	go p.readLoop()
	return p, nil
}

// checkTermSize checks a terminal size.
func checkTermSize(cols, rows int) error {
	if cols < 1 || cols > 1000 {
		return fmt.Errorf("cols: must be 1-1000, got %d", cols)
	}
	if rows < 1 || rows > 1000 {
		return fmt.Errorf("rows: must be 1-1000, got %d", rows)
	}
	return nil
}

// readLoop turns the server's messages into output for Read and the
// session's end.
func (p *PTY) readLoop() {
	defer close(p.done)
	defer close(p.frames)
	for {
		op, msg, err := p.ws.read()
		if err != nil {
			p.mu.Lock()
			if p.err == nil && !p.exited {
				if p.closed || errors.Is(err, errWSClosed) {
					p.err = io.ErrUnexpectedEOF
				} else {
					p.err = connectionError("pty "+p.ID, err)
				}
			}
			p.mu.Unlock()
			return
		}
		if op == wsBinary {
			p.deliver(msg)
			continue
		}
		var f ptyFrame
		if json.Unmarshal(msg, &f) != nil {
			continue
		}
		switch f.Type {
		case "exit":
			p.mu.Lock()
			p.exited = true
			if f.ExitCode != nil {
				p.exitCode = *f.ExitCode
			}
			p.mu.Unlock()
		case "offset":
			// Output was lost (the sandbox's buffer moved on): the next
			// bytes start at f.Offset.
			if f.Offset != nil {
				p.deliver(nil)
				p.mu.Lock()
				p.offset = *f.Offset
				p.mu.Unlock()
			}
		case "error":
			if f.Error != nil {
				p.mu.Lock()
				p.err = apiError(opSandbox, p.sandboxID, *f.Error, 0, 0)
				p.mu.Unlock()
			}
		}
	}
}

// deliver hands msg to Read, unless the PTY is being closed.
func (p *PTY) deliver(msg []byte) {
	select {
	case p.frames <- msg:
	case <-p.quit:
	}
}

// Read reads the terminal's output; keep reading while the session
// runs (output waits for its reader). After the session exited and its
// output was read it returns io.EOF (see Wait for the exit code).
func (p *PTY) Read(b []byte) (int, error) {
	for {
		if len(p.pending) > 0 {
			n := copy(b, p.pending)
			p.pending = p.pending[n:]
			p.mu.Lock()
			p.offset += int64(n)
			p.mu.Unlock()
			return n, nil
		}
		msg, ok := <-p.frames
		if !ok {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.exited {
				return 0, io.EOF
			}
			return 0, p.err
		}
		p.pending = msg
	}
}

// Offset is the offset after the last byte Read returned: pass it as
// PTYOptions.Offset to re-attach without losing or repeating output.
func (p *PTY) Offset() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.offset
}

// Write types b into the terminal ("\x03" is Ctrl-C).
func (p *PTY) Write(b []byte) (int, error) {
	if err := p.ws.write(wsBinary, b); err != nil {
		return 0, connectionError("pty "+p.ID+": write", err)
	}
	return len(b), nil
}

func (p *PTY) control(f ptyFrame) error {
	b, _ := json.Marshal(f)
	if err := p.ws.write(wsText, b); err != nil {
		return connectionError("pty "+p.ID+": "+f.Type, err)
	}
	return nil
}

// Resize sets the terminal's size (1-1000 each); the session's programs
// get SIGWINCH. A refusal by the server ends Read with its error.
func (p *PTY) Resize(cols, rows int) error {
	if err := checkTermSize(cols, rows); err != nil {
		return &SandboxError{Code: CodeInvalidArgument, Message: "pty resize: " + err.Error(), SandboxID: p.sandboxID}
	}
	return p.control(ptyFrame{Type: "resize", Cols: cols, Rows: rows})
}

// Signal sends a signal ("SIGINT", "TERM", "9") to the terminal's
// foreground process group.
func (p *PTY) Signal(sig string) error {
	if sig == "" {
		return &SandboxError{Code: CodeInvalidArgument, Message: "pty signal: must not be empty", SandboxID: p.sandboxID}
	}
	return p.control(ptyFrame{Type: "signal", Signal: sig})
}

// Wait waits until the session has exited and returns its exit code
// (128+signal when a signal ended it), or the error that ended the
// connection first.
func (p *PTY) Wait() (int, error) {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return p.exitCode, nil
	}
	return 0, p.err
}

// Detach closes the connection and leaves the session running.
func (p *PTY) Detach() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.quitOnce.Do(func() { close(p.quit) })
	err := p.ws.close()
	<-p.done
	return err
}

// Close kills the session (every process it started) and closes the
// connection.
func (p *PTY) Close() error {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if !exited {
		p.quitOnce.Do(func() { close(p.quit) })
		if p.control(ptyFrame{Type: "kill"}) == nil {
			// The server answers with the exit frame and closes.
			<-p.done
		}
	}
	return p.Detach()
}
