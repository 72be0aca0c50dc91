// Package server starts a throwaway sdbx server for the benchmarks: it
// builds ./cmd/sdbx (run from the repository root) and serves it on a free
// 127.0.0.1 port with a temporary data directory.
package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Start builds sdbx and runs it on a free loopback port with the given
// extra `sdbx serve` flags.
func Start(extra ...string) (stop func(), url, key string, err error) {
	dir, err := os.MkdirTemp("", "sdbx-bench-")
	if err != nil {
		return nil, "", "", err
	}
	bin := filepath.Join(dir, "sdbx")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sdbx")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return nil, "", "", fmt.Errorf("build sdbx (run from the repository root): %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	var b [16]byte
	rand.Read(b[:])
	key = hex.EncodeToString(b[:])
	args := append([]string{"serve", "--addr", addr, "--data-dir", filepath.Join(dir, "data"), "--log-level", "warn"}, extra...)
	srv := exec.Command(bin, args...)
	srv.Env = append(os.Environ(), "SDBX_API_KEY="+key)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return nil, "", "", err
	}
	url = "http://" + addr
	stop = func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
		os.RemoveAll(dir)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url + "/v1/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, url, key, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return nil, "", "", fmt.Errorf("server did not become healthy at %s", url)
}
