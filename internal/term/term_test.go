package term_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/term"
)

func TestPTYSizeAndRawMode(t *testing.T) {
	master, slave, err := term.OpenPTY()
	if err != nil {
		t.Fatalf("OpenPTY: %v", err)
	}
	defer master.Close()
	defer slave.Close()
	if err := term.SetSize(master, 132, 43); err != nil {
		t.Fatal(err)
	}
	fd := int(slave.Fd())
	if cols, rows, err := term.Size(fd); err != nil || cols != 132 || rows != 43 {
		t.Fatalf("Size = %d x %d, %v; want 132 x 43", cols, rows, err)
	}
	if !term.IsTerminal(fd) {
		t.Fatal("the slave is not a terminal")
	}
	restore, err := term.MakeRaw(fd)
	if err != nil {
		t.Fatal(err)
	}
	tio, _ := unix.IoctlGetTermios(fd, unix.TCGETS)
	if tio.Lflag&(unix.ECHO|unix.ICANON|unix.ISIG) != 0 {
		t.Errorf("raw mode keeps lflag %#x", tio.Lflag)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	tio, _ = unix.IoctlGetTermios(fd, unix.TCGETS)
	if tio.Lflag&unix.ECHO == 0 || tio.Lflag&unix.ICANON == 0 {
		t.Errorf("restore left lflag %#x", tio.Lflag)
	}
	// Writing to the master is input of the terminal.
	if _, err := master.Write([]byte("x\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := slave.Read(buf); err != nil || string(buf[:n]) != "x\n" {
		t.Fatalf("slave read %q, %v", buf[:n], err)
	}
}

func TestIsTerminalOfAPipe(t *testing.T) {
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if term.IsTerminal(p[0]) {
		t.Error("a pipe is a terminal")
	}
}
