package agent

import (
	"bufio"
	"errors"
	"net"
	"os"
	"time"
)

// leaveWatch reads a connection while a request runs, to notice that its
// client left (a read that ends with EOF or an error): onGone is called
// then. The client sends nothing during a request; what it sends anyway
// is discarded, except on a kept-alive connection, where it is the next
// request (written right after the final event, before the watch was
// stopped) and stays in the reader for the request loop.
type leaveWatch struct {
	conn net.Conn
	done chan struct{}
	gone bool // set before done is closed
}

// watchLeave starts a leaveWatch on conn, whose buffered reader is br.
// Stop it before reading br again.
func watchLeave(conn net.Conn, br *bufio.Reader, keepAlive bool, onGone func()) *leaveWatch {
	lw := &leaveWatch{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(lw.done)
		for {
			_, err := br.Peek(1)
			switch {
			case err == nil && keepAlive:
				return
			case err == nil:
				_, _ = br.Discard(br.Buffered())
			case keepAlive && errors.Is(err, os.ErrDeadlineExceeded):
				// stop's deadline: the request is over.
				return
			default:
				lw.gone = true
				onGone()
				return
			}
		}
	}()
	return lw
}

// wait waits for the watch to end by itself (a connection that is not
// kept alive is closed first, which ends it).
func (lw *leaveWatch) wait() { <-lw.done }

// stop ends the watch of a kept-alive connection and reports whether the
// client is still there. It interrupts the watch's read with a deadline in
// the past and then clears the deadline.
func (lw *leaveWatch) stop() bool {
	_ = lw.conn.SetReadDeadline(time.Now())
	<-lw.done
	_ = lw.conn.SetReadDeadline(time.Time{})
	return !lw.gone
}
