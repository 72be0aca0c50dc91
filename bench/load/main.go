// Command load is the bounded load test of issue E: -clients concurrent
// clients on 127.0.0.1 mix create / runCode / file write+read / command /
// delete against one server for -duration, through the Go SDK. It prints
// p50/p99 per operation and every error by kind (rate limits are counted,
// not failures), then checks that the server let go of everything:
// goroutines back to their idle level, open fds, sandbox mounts, cgroups
// and processes.
//
//	sudo go run ./bench/load -clients 200 -duration 60s
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sdbx/sdbx/bench/internal/server"
	sdbx "github.com/sdbx/sdbx/sdk/go"
)

func main() {
	clients := flag.Int("clients", 200, "concurrent clients")
	duration := flag.Duration("duration", 60*time.Second, "how long the clients run")
	flag.Parse()
	if err := run(*clients, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

type stats struct {
	mu     sync.Mutex
	lat    map[string][]time.Duration
	errs   map[string]int
	limits int
}

func (s *stats) record(op string, d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.lat[op] = append(s.lat[op], d)
	case errors.Is(err, sdbx.ErrRateLimited):
		s.limits++
	default:
		msg := err.Error()
		if len(msg) > 120 {
			msg = msg[:120]
		}
		s.errs[op+": "+msg]++
	}
}

func run(clients int, duration time.Duration) error {
	const debugAddr = "127.0.0.1:6071"
	stop, url, key, err := server.Start("--pool", "python-3-11=8", "--debug-addr", debugAddr, "--max-pids", "4096")
	if err != nil {
		return err
	}
	defer stop()
	time.Sleep(3 * time.Second) // let the warm pool fill before the idle count
	idle, err := goroutines(debugAddr)
	if err != nil {
		return err
	}
	c, err := sdbx.New(sdbx.Config{ServerURL: url, APIKey: key, Timeout: 2 * time.Minute})
	if err != nil {
		return err
	}
	st := &stats{lat: map[string][]time.Duration{}, errs: map[string]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	timed := func(op string, fn func() error) error {
		t0 := time.Now()
		err := fn()
		if ctx.Err() == nil || err == nil {
			st.record(op, time.Since(t0), err)
		}
		return err
	}
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Go(func() {
			bg := context.WithoutCancel(ctx)
			for ctx.Err() == nil {
				var sb *sdbx.Sandbox
				if timed("create", func() (err error) {
					sb, err = c.CreateSandbox(bg, sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
					return err
				}) != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				for j := 0; j < 5 && ctx.Err() == nil; j++ {
					timed("runCode", func() error {
						_, err := c.RunCode(bg, sb.ID, "x = globals().get('x', 0) + 1\nx")
						return err
					})
				}
				body := strings.Repeat("load test line\n", 1000)
				timed("writeFile", func() error {
					_, err := c.WriteFile(bg, sb.ID, "/workspace/data.txt", strings.NewReader(body))
					return err
				})
				timed("readFile", func() error {
					r, err := c.ReadFile(bg, sb.ID, "/workspace/data.txt")
					if err != nil {
						return err
					}
					defer r.Close()
					got, err := io.ReadAll(r)
					if err == nil && string(got) != body {
						err = fmt.Errorf("read back %d bytes, wrote %d", len(got), len(body))
					}
					return err
				})
				timed("command", func() error {
					_, err := c.RunCommand(bg, sb.ID, sdbx.Command{Args: []string{"true"}})
					return err
				})
				timed("delete", func() error { return c.DeleteSandbox(bg, sb.ID) })
			}
		})
	}
	wg.Wait()

	fmt.Printf("%d clients for %s against %s\n", clients, duration, url)
	fmt.Printf("%-10s %8s %10s %10s\n", "op", "count", "p50", "p99")
	ops := []string{"create", "runCode", "writeFile", "readFile", "command", "delete"}
	for _, op := range ops {
		d := st.lat[op]
		if len(d) == 0 {
			continue
		}
		slices.Sort(d)
		fmt.Printf("%-10s %8d %10s %10s\n", op, len(d), ms(d[len(d)/2]), ms(d[(len(d)-1)*99/100]))
	}
	fmt.Printf("rate limited: %d\n", st.limits)
	if len(st.errs) == 0 {
		fmt.Println("errors: none")
	}
	for e, n := range st.errs {
		fmt.Printf("error ×%d: %s\n", n, e)
	}

	// Leaks: every sandbox was deleted; let the server settle and compare.
	time.Sleep(2 * time.Second)
	list, err := c.ListSandboxes(context.Background())
	if err != nil {
		return err
	}
	after, err := goroutines(debugAddr)
	if err != nil {
		return err
	}
	fmt.Printf("after: %d sandboxes listed, goroutines %d (idle before: %d)\n", len(list), after, idle)
	fmt.Printf("after: %d sandbox cgroups, %d sdbx agents (the 8 pooled sandboxes stay), %d overlay mounts on the host\n", cgroups(), agents(), overlayMounts())
	if len(st.errs) > 0 {
		return fmt.Errorf("%d kinds of errors", len(st.errs))
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// goroutines reads the server's goroutine count from pprof.
func goroutines(addr string) (int, error) {
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	first, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	line, _, _ := bytes.Cut(first, []byte("\n"))
	// "goroutine profile: total 42"
	f := strings.Fields(string(line))
	if len(f) == 0 {
		return 0, fmt.Errorf("unexpected goroutine profile %q", line)
	}
	return strconv.Atoi(f[len(f)-1])
}

// cgroups counts sandbox cgroups of sdbx servers (pids hierarchy), the
// warm pool's included.
func cgroups() int {
	m, _ := filepath.Glob("/sys/fs/cgroup/pids/sdbx-*/*")
	n := 0
	for _, p := range m {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			n++
		}
	}
	return n
}

func agents() int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if bytes.HasPrefix(b, []byte("/.sdbx/sdbx\x00agent")) {
			n++
		}
	}
	return n
}

func overlayMounts() int {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	return strings.Count(string(b), "sdbx-bench-")
}
