package kernel

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/agentproto"
)

// rawDriver is a driver process started by hand with the fd layout the
// manager uses, read without the manager's machinery.
type rawDriver struct {
	pid        int
	exited     chan struct{} // closed when reaped; ws is its status
	ws         syscall.WaitStatus
	req        *os.File
	msgs       *bufio.Reader
	outR, errR *os.File
	token      string
	rest       map[*os.File][]byte // read past the last marker
}

func startRawDriver(t *testing.T, lang string) *rawDriver {
	t.Helper()
	needLanguage(t, lang)
	l := languages(Options{})[lang]
	exe, err := lookPath(l.exe, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	pipe := func() (*os.File, *os.File) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		return r, w
	}
	outR, outW := pipe()
	errR, errW := pipe()
	reqR, reqW := pipe()
	msgR, msgW := pipe()
	scriptR, scriptW := pipe()
	if _, err := io.WriteString(scriptW, l.script); err != nil {
		t.Fatal(err)
	}
	scriptW.Close()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	token := "0123456789abcdef"
	env := []string{"PATH=/usr/bin:/bin", "SDBX_KERNEL_TOKEN=" + token}
	attr := &syscall.ProcAttr{
		Dir:   t.TempDir(),
		Env:   env,
		Files: []uintptr{devNull.Fd(), outW.Fd(), errW.Fd(), reqR.Fd(), msgW.Fd(), outW.Fd(), errW.Fd(), scriptR.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	}
	pid, status, err := WaitSpawner{}.Start(exe, append([]string{exe}, l.args...), attr)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []*os.File{devNull, outW, errW, reqR, msgW, scriptR} {
		f.Close()
	}
	d := &rawDriver{pid: pid, exited: make(chan struct{}), req: reqW, msgs: bufio.NewReader(msgR), outR: outR, errR: errR, token: token, rest: map[*os.File][]byte{}}
	go func() {
		d.ws = <-status
		close(d.exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-d.exited
		for _, f := range []*os.File{reqW, msgR, outR, errR} {
			f.Close()
		}
	})
	return d
}

// message reads the next message, failing the test after a while.
func (d *rawDriver) message(t *testing.T) driverMsg {
	t.Helper()
	type res struct {
		line []byte
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		line, err := d.msgs.ReadBytes('\n')
		ch <- res{line, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("read message: %v", r.err)
		}
		var m driverMsg
		if err := json.Unmarshal(r.line, &m); err != nil {
			t.Fatalf("message %q: %v", r.line, err)
		}
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no message from the driver")
	}
	return driverMsg{}
}

// readUntil reads f until it has seen marker seq; it returns what came
// before the marker.
func (d *rawDriver) readUntil(t *testing.T, f *os.File, seq uint64) string {
	t.Helper()
	marker := fmt.Sprintf("\x00sdbx-sync:%s:%d\n", d.token, seq)
	got := d.rest[f]
	buf := make([]byte, 4096)
	_ = f.SetReadDeadline(time.Now().Add(30 * time.Second))
	for !bytes.Contains(got, []byte(marker)) {
		n, err := f.Read(buf)
		if err != nil {
			t.Fatalf("read until marker %d: %v (got %q)", seq, err, got)
		}
		got = append(got, buf[:n]...)
	}
	before, after, _ := bytes.Cut(got, []byte(marker))
	d.rest[f] = after
	return string(before)
}

// available returns what f holds besides what readUntil kept, without
// waiting for more.
func (d *rawDriver) available(t *testing.T, f *os.File) string {
	t.Helper()
	got := d.rest[f]
	buf := make([]byte, 4096)
	_ = f.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	for {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", f.Name(), err)
		}
	}
	d.rest[f] = nil
	return string(got)
}

func (d *rawDriver) send(t *testing.T, req driverRequest) {
	t.Helper()
	b, _ := json.Marshal(req)
	if _, err := d.req.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
}

// TestDriverProtocol drives each driver by hand and checks the wire
// contract: ready first; output, then the sync marker on both streams,
// then the message carrying that marker's number; done last.
func TestDriverProtocol(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lang   string
		code   string
		stdout string
		stderr string
		result string
	}{
		{agentproto.LanguagePython, "import sys\nprint('out')\nprint('err', file=sys.stderr)\n6 * 7", "out\n", "err\n", "42"},
		{agentproto.LanguageJavaScript, "console.log('out'); console.error('err'); 6 * 7", "out\n", "err\n", "42"},
	}
	for _, tt := range tests {
		t.Run(tt.lang, func(t *testing.T) {
			t.Parallel()
			d := startRawDriver(t, tt.lang)
			ready := d.message(t)
			if ready.Type != "ready" || ready.Pid != d.pid || ready.Version == "" {
				t.Fatalf("first message = %+v, want ready from %d", ready, d.pid)
			}
			d.send(t, driverRequest{Type: "execute", ID: "e1", Count: 1, Code: tt.code})
			res := d.message(t)
			if res.Type != "result" || res.ID != "e1" || !res.Main || res.Sync == 0 {
				t.Fatalf("message = %+v, want the main result", res)
			}
			var text string
			if err := json.Unmarshal(res.Data["text/plain"], &text); err != nil || text != tt.result {
				t.Errorf("result text = %s, want %q", res.Data["text/plain"], tt.result)
			}
			if got := d.readUntil(t, d.outR, res.Sync); got != tt.stdout {
				t.Errorf("stdout before the result = %q, want %q", got, tt.stdout)
			}
			if got := d.readUntil(t, d.errR, res.Sync); got != tt.stderr {
				t.Errorf("stderr before the result = %q, want %q", got, tt.stderr)
			}
			// done comes without a marker: the agent passes on what the
			// pipes hold, so nothing may follow the result's marker.
			done := d.message(t)
			if done.Type != "done" || done.ID != "e1" || done.Sync != 0 {
				t.Fatalf("message = %+v, want done without a marker", done)
			}
			for _, f := range []*os.File{d.outR, d.errR} {
				if rest := d.available(t, f); rest != "" {
					t.Errorf("after done, %s holds %q", f.Name(), rest)
				}
			}

			// An error, and per-run environment.
			code := "import os\nprint(os.environ['V'])\nraise RuntimeError('r')"
			if tt.lang == agentproto.LanguageJavaScript {
				code = "console.log(process.env.V)\nthrow new Error('r')"
			}
			d.send(t, driverRequest{Type: "execute", ID: "e2", Count: 2, Code: code, Env: map[string]string{"V": "per-run"}})
			e := d.message(t)
			if e.Type != "error" || e.ID != "e2" || e.Value != "r" || !strings.Contains(e.Traceback, "<cell-2>") {
				t.Fatalf("message = %+v, want the error", e)
			}
			if got := d.readUntil(t, d.outR, e.Sync); got != "per-run\n" {
				t.Errorf("stdout = %q", got)
			}
			if done := d.message(t); done.Type != "done" || done.ID != "e2" {
				t.Fatalf("message = %+v, want done", done)
			}
		})
	}
}

// TestDriverExitsOnEOF checks that a driver whose request pipe closes
// exits by itself.
func TestDriverExitsOnEOF(t *testing.T) {
	t.Parallel()
	for _, lang := range []string{agentproto.LanguagePython, agentproto.LanguageJavaScript} {
		t.Run(lang, func(t *testing.T) {
			t.Parallel()
			d := startRawDriver(t, lang)
			d.message(t) // ready
			d.req.Close()
			select {
			case <-d.exited:
				if !d.ws.Exited() || d.ws.ExitStatus() != 0 {
					t.Errorf("driver ended with %v", statusText(d.ws))
				}
			case <-time.After(30 * time.Second):
				t.Fatal("driver still running after its request pipe closed")
			}
		})
	}
}

func TestScriptsFitThePipe(t *testing.T) {
	for name, l := range languages(Options{}) {
		// Larger scripts need F_SETPIPE_SZ, which a sandbox may limit.
		if len(l.script) >= 60*1024 {
			t.Errorf("%s driver is %d bytes; keep it under 60 KiB", name, len(l.script))
		}
	}
}
