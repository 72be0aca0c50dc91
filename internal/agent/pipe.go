package agent

import (
	"errors"
	"io"
	"os"
	"syscall"
	"unsafe"
)

// pipeReader reads the agent's end of a command's output pipe until EOF or
// the pipe's read deadline. At the deadline it still returns the bytes the
// pipe held at that moment, then stops: output that a command wrote before
// it exited is never lost to a slow client, while a background child that
// keeps the pipe open (and even keeps writing) cannot hold the call.
type pipeReader struct {
	f    *os.File
	left int // bytes still to take after the deadline; -1 before it
}

func newPipeReader(f *os.File) *pipeReader { return &pipeReader{f: f, left: -1} }

func (p *pipeReader) Read(b []byte) (int, error) {
	if p.left < 0 {
		n, err := p.f.Read(b)
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		p.left = pipeBuffered(p.f)
	}
	if p.left == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	// The pipe holds at least p.left bytes: this read cannot block. Fd
	// puts the file in blocking mode, which no longer matters.
	n, err := syscall.Read(int(p.f.Fd()), b[:min(len(b), p.left)])
	if n <= 0 {
		p.left = 0
		if err == nil {
			err = io.EOF
		}
		return 0, err
	}
	p.left -= n
	return n, nil
}

// pipeBuffered returns how many bytes wait in the pipe f (FIONREAD), or 0.
func pipeBuffered(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	var n int32
	var errno syscall.Errno
	// Control runs the ioctl without waiting for readiness or deadlines.
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		return 0
	}
	return int(n)
}
