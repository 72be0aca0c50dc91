// Package e2e tests sdbx end to end: it builds the sdbx binary, starts
// `sdbx serve` on a loopback port with a fresh data directory, and drives it
// through the Go SDK, the CLI (the built binary, as a subprocess) and raw
// HTTP. Real sandboxes need root; the tests skip without it.
//
// The non-test part of the package is the harness (build, start, stop), so
// that other end-to-end suites can start a server the same way.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sdbx/sdbx/internal/network"
	"github.com/sdbx/sdbx/internal/runtime/runtimetest"
)

// ModuleRoot returns the directory of the go.mod of the module that holds
// the current directory.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// BuildBinary builds ./cmd/sdbx of the module at root into dir and
// returns the binary's path.
func BuildBinary(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "sdbx")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sdbx")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/sdbx: %w\n%s", err, out)
	}
	return bin, nil
}

// RandomKey returns a fresh random API key.
func RandomKey() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return "sdbx-test-" + hex.EncodeToString(b)
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ServerOptions configure StartServer.
type ServerOptions struct {
	// Bin is the sdbx binary.
	Bin string
	// DataDir is the server's --data-dir (it must exist or be creatable).
	DataDir string
	// APIKey is handed to the server in SDBX_API_KEY.
	APIKey string
	// Args are extra flags for `sdbx serve`.
	Args []string
	// Ready bounds the wait for GET /v1/health to answer 200
	// (default 60s).
	Ready time.Duration
}

// Server is a running `sdbx serve` process.
type Server struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:41234.
	URL string
	// APIKey is the key the server accepts.
	APIKey string
	// Bin is the sdbx binary the server runs.
	Bin string

	cmd  *exec.Cmd
	logs *logBuffer
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, set before done is closed
}

// StartServer starts `sdbx serve --addr 127.0.0.1:<free port> --data-dir
// DataDir` with SDBX_API_KEY set (and no other SDBX_* variable of this
// process), and waits until GET /v1/health answers 200.
func StartServer(ctx context.Context, o ServerOptions) (*Server, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	if o.Ready == 0 {
		o.Ready = 60 * time.Second
	}
	args := append([]string{"serve", "--addr", addr, "--data-dir", o.DataDir}, o.Args...)
	cmd := exec.Command(o.Bin, args...)
	cmd.Env = append(serverEnv(os.Environ()), "SDBX_API_KEY="+o.APIKey)
	logs := &logBuffer{}
	cmd.Stdout = logs
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s serve: %w", o.Bin, err)
	}
	s := &Server{URL: "http://" + addr, APIKey: o.APIKey, Bin: o.Bin, cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitHealthy(ctx, o.Ready); err != nil {
		_ = cmd.Process.Kill()
		<-s.done
		return nil, fmt.Errorf("%w\nserver output:\n%s", err, s.Logs())
	}
	return s, nil
}

// serverEnv drops the SDBX_* variables of env so that the server's
// configuration is only what StartServer gives it.
func serverEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "SDBX_") {
			out = append(out, kv)
		}
	}
	return out
}

// waitHealthy polls GET /v1/health until it answers 200, the process
// exits, or limit passes.
func (s *Server) waitHealthy(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/v1/health", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /v1/health: %s", resp.Status)
		}
		last = err
		select {
		case <-s.done:
			return fmt.Errorf("sdbx serve exited before it was healthy: %v", s.err)
		case <-ctx.Done():
			return fmt.Errorf("sdbx serve not healthy within %v: %v", limit, last)
		case <-tick.C:
		}
	}
}

// Stop sends SIGTERM and waits (at most limit) for the server to exit. It
// fails if the server does not exit in time (it is then killed) or exits
// with a non-zero status.
func (s *Server) Stop(limit time.Duration) error {
	select {
	case <-s.done:
		return fmt.Errorf("sdbx serve had already exited: %v", s.err)
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM sdbx serve: %w", err)
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-s.done:
		if s.err != nil {
			return fmt.Errorf("sdbx serve after SIGTERM: %w", s.err)
		}
		return nil
	case <-t.C:
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("sdbx serve did not exit within %v of SIGTERM (killed)", limit)
	}
}

// Logs returns what the server has written to stdout and stderr.
func (s *Server) Logs() string { return s.logs.String() }

// CgroupParentsOf lists the parent cgroup directories (sdbx-<tag>, in
// every hierarchy under /sys/fs/cgroup) that a server on dataDir uses, so
// that a caller can check that a server which stopped with no sandbox left
// removed them.
func CgroupParentsOf(dataDir string) []string {
	return runtimetest.CgroupDirs("sdbx-" + network.Tag(dataDir)) // as cmd/sdbx/serve.go names it
}

// MountsUnder lists the mount points below dir (from /proc/self/mountinfo),
// so that a caller can check that nothing was left mounted before removing
// a data directory.
func MountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dir = filepath.Clean(dir)
	var mounts []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mounts = append(mounts, mp)
		}
	}
	return mounts, sc.Err()
}

// unescapeMountPath undoes the octal escapes (\040 for space, ...) of
// /proc/self/mountinfo.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + (c - '0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// logBuffer is a goroutine-safe buffer for the server's output, keeping at
// most the last 4 MiB.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const maxLogBytes = 4 << 20

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if over := l.buf.Len() - maxLogBytes; over > 0 {
		l.buf.Next(over)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// KillSandboxesUnder SIGKILLs the init process of every sandbox whose
// files live under dir (found through the overlay mounts in its
// /proc/PID/mountinfo, as sandboxes mount in namespaces of their own) and
// returns their sandbox ids.
func KillSandboxesUnder(dir string) []string {
	var ids []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmd, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(cmd, []byte("/.sdbx/sdbx\x00agent")) {
			continue
		}
		procDir := filepath.Dir(p)
		info, err := os.ReadFile(filepath.Join(procDir, "mountinfo"))
		if err != nil {
			continue
		}
		i := bytes.Index(info, []byte("upperdir="+dir+"/"))
		if i < 0 {
			continue
		}
		rest := string(info[i+len("upperdir="+dir+"/"):])
		// data/sandboxes/<id>/upper/...
		parts := strings.Split(rest, "/")
		id := ""
		for j, part := range parts {
			if part == "sandboxes" && j+1 < len(parts) {
				id = parts[j+1]
				break
			}
		}
		pid, err := strconv.Atoi(filepath.Base(procDir))
		if err != nil {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		ids = append(ids, id)
	}
	return ids
}
