// Command density measures how many idle sandboxes one machine holds and
// what each costs: it creates -n sandboxes through the API (concurrency
// -c), then sums the proportional set size (PSS, shared pages split among
// their users) of every process in them, and the server's own RSS, then
// runs one command in each to show they are alive, and deletes them.
//
//	sudo go run ./bench/density -n 1000
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sdbx/sdbx/bench/internal/server"
	sdbx "github.com/sdbx/sdbx/sdk/go"
)

func main() {
	n := flag.Int("n", 1000, "sandboxes to keep alive together")
	c := flag.Int("c", 8, "concurrent creates and deletes")
	flag.Parse()
	if err := run(*n, *c); err != nil {
		fmt.Fprintln(os.Stderr, "density:", err)
		os.Exit(1)
	}
}

func run(n, conc int) error {
	stop, url, key, err := server.Start("--pool", "none", "--log-level", "error")
	if err != nil {
		return err
	}
	defer stop()
	c, err := sdbx.New(sdbx.Config{ServerURL: url, APIKey: key, Timeout: 5 * time.Minute})
	if err != nil {
		return err
	}
	ctx := context.Background()
	ids := make([]string, n)
	t0 := time.Now()
	if err := each(n, conc, func(i int) error {
		sb, err := c.CreateSandbox(ctx, sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
		if err == nil {
			ids[i] = sb.ID
		}
		return err
	}); err != nil {
		return err
	}
	created := time.Since(t0)
	defer each(n, conc, func(i int) error {
		if ids[i] != "" {
			return c.DeleteSandbox(ctx, ids[i])
		}
		return nil
	})
	time.Sleep(2 * time.Second) // let start-up allocations settle
	pss, procs := sandboxPSS()
	srvRSS := serverRSS(url)
	t1 := time.Now()
	if err := each(n, conc, func(i int) error {
		res, err := c.RunCommand(ctx, ids[i], sdbx.Command{Args: []string{"true"}})
		if err == nil && res.ExitCode != 0 {
			err = fmt.Errorf("exit %d", res.ExitCode)
		}
		return err
	}); err != nil {
		return fmt.Errorf("a sandbox did not answer: %w", err)
	}
	fmt.Printf("%d sandboxes alive together (created in %s, concurrency %d); each answered a command (%s for all)\n",
		n, created.Round(time.Millisecond), conc, time.Since(t1).Round(time.Millisecond))
	fmt.Printf("idle sandbox processes: %d, total PSS %.1f MiB → %.2f MiB per sandbox\n", procs, pss/1024, pss/1024/float64(n))
	fmt.Printf("server RSS: %.1f MiB\n", srvRSS/1024)
	return nil
}

// each runs fn(0..n-1) with conc workers and returns the first error.
func each(n, conc int, fn func(int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for w := 0; w < conc; w++ {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// sandboxPSS sums the PSS (KiB) of every process inside a sandbox (agents
// and anything they run), found as members of sdbx pids cgroups.
func sandboxPSS() (float64, int) {
	var total float64
	procs := 0
	files, _ := filepath.Glob("/sys/fs/cgroup/pids/sdbx-*/*/cgroup.procs")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, pid := range strings.Fields(string(b)) {
			if kb, ok := rollup(pid, "Pss:"); ok {
				total += kb
				procs++
			}
		}
	}
	return total, procs
}

func rollup(pid, field string) (float64, bool) {
	f, err := os.Open("/proc/" + pid + "/smaps_rollup")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), field) {
			v, err := strconv.ParseFloat(strings.Fields(sc.Text())[1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// serverRSS finds the server process by its listen address and reads its
// RSS (KiB).
func serverRSS(url string) float64 {
	addr := strings.TrimPrefix(url, "http://")
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("serve\x00--addr\x00"+addr)) {
			kb, _ := rollup(filepath.Base(filepath.Dir(f)), "Rss:")
			return kb
		}
	}
	return 0
}
