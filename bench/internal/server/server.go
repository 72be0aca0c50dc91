// Package server starts throwaway sdbx servers for the benchmarks: Build
// compiles the module's ./cmd/sdbx once, Run serves it on a free
// 127.0.0.1 port with a temporary data directory, and Stop removes
// everything the server was given.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// ModuleRoot returns the root directory of the enclosing Go module (the
// repository), found from the working directory.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("find the sdbx module (run inside the repository): %v", err)
	}
	return filepath.Dir(mod), nil
}

// Build compiles the sdbx binary of the enclosing module into dir and
// returns its path. It works from any directory inside the module.
func Build(ctx context.Context, dir string) (string, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sdbx")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sdbx")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build sdbx: %w", err)
	}
	return bin, nil
}

// BuildTemp is Build into a new temporary directory, which remove
// removes (the binary with it).
func BuildTemp(ctx context.Context) (bin string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "sdbx-bench-bin-")
	if err != nil {
		return "", nil, err
	}
	bin, err = Build(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// Server is one running `sdbx serve`.
type Server struct {
	URL string // http://127.0.0.1:port
	Key string // its admin API key
	cmd *exec.Cmd
	dir string
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Run starts bin as a server on a free loopback port with a new data
// directory and the given extra `sdbx serve` flags, and waits until it is
// healthy. Stop it with Stop.
func Run(ctx context.Context, bin string, extra ...string) (*Server, error) {
	dir, err := os.MkdirTemp("", "sdbx-bench-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	var b [16]byte
	rand.Read(b[:])
	s := &Server{URL: "http://" + addr, Key: hex.EncodeToString(b[:]), dir: dir}
	args := append([]string{"serve", "--addr", addr, "--data-dir", filepath.Join(dir, "data"), "--log-level", "warn"}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), "SDBX_API_KEY="+s.Key)
	s.cmd.Stderr = os.Stderr
	// Its own process group: a terminal's Ctrl-C reaches the harness,
	// which deletes its sandboxes before it stops the server (sandboxes
	// outlive a server).
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if resp, err := http.Get(s.URL + "/v1/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return nil, fmt.Errorf("server did not become healthy at %s", s.URL)
}

// Stop ends the server (SIGTERM, then SIGKILL after 30 s) and removes
// its data directory. Sandboxes outlive a stopped server: delete them
// before.
func (s *Server) Stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		s.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(s.dir)
}

// RunClient is Run with a Go SDK client of the server, whose timeout
// allows the benchmarks' slowest calls.
func RunClient(ctx context.Context, bin string, extra ...string) (*Server, *sdbx.Client, error) {
	s, err := Run(ctx, bin, extra...)
	if err != nil {
		return nil, nil, err
	}
	c, err := sdbx.New(sdbx.Config{ServerURL: s.URL, APIKey: s.Key, Timeout: 5 * time.Minute})
	if err != nil {
		s.Stop()
		return nil, nil, err
	}
	return s, c, nil
}

// Start builds sdbx and runs it with the given extra `sdbx serve` flags:
// Build and Run in one step, for the stand-alone bench commands.
func Start(extra ...string) (stop func(), url, key string, err error) {
	ctx := context.Background()
	bin, remove, err := BuildTemp(ctx)
	if err != nil {
		return nil, "", "", err
	}
	s, err := Run(ctx, bin, extra...)
	if err != nil {
		remove()
		return nil, "", "", err
	}
	return func() { s.Stop(); remove() }, s.URL, s.Key, nil
}
