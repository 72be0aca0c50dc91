package agent

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// TestPipeReaderAfterDeadline checks that what a pipe holds when its
// deadline passes is still read, and nothing written later.
func TestPipeReaderAfterDeadline(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	held := bytes.Repeat([]byte("0123456789abcdef"), 3000) // 48000 bytes
	if _, err := w.Write(held); err != nil {
		t.Fatal(err)
	}
	if err := r.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	pr := newPipeReader(r)
	buf := make([]byte, 1000)
	var got []byte
	for {
		n, err := pr.Read(buf)
		got = append(got, buf[:n]...)
		if len(got) == 1000 {
			// Written after the deadline: must not be read (the pipe is
			// kept open, so a reader that waited for more would hang).
			if _, err := w.Write([]byte("late")); err != nil {
				t.Fatal(err)
			}
		}
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read: %v, want ErrDeadlineExceeded", err)
			}
			break
		}
	}
	if !bytes.Equal(got, held) {
		t.Errorf("read %d bytes, want the %d the pipe held", len(got), len(held))
	}
}

// TestPipeReaderEOF checks the plain path: everything up to EOF.
func TestPipeReaderEOF(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() {
		_, _ = w.Write([]byte("hello\nworld"))
		w.Close()
	}()
	b, err := io.ReadAll(newPipeReader(r))
	if err != nil || string(b) != "hello\nworld" {
		t.Errorf("ReadAll = %q, %v", b, err)
	}
}
