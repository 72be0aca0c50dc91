package measure

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// DensityResult is what Density measured.
type DensityResult struct {
	Alive        int           // sandboxes alive together
	CreateTime   time.Duration // to create them all
	AnswerTime   time.Duration // for all of them to answer a command
	Procs        int           // processes inside them
	PerSandboxMi float64       // PSS per sandbox, MiB
	ServerRSSMi  float64       // the server's RSS with all of them, MiB
}

// Density creates n python-3-11 sandboxes through the SDK, conc at a
// time, keeps them alive together, sums the proportional set size (PSS,
// shared pages split among their users) of every process in them and the
// server's RSS (serverPid), runs one command in each, and deletes them.
func Density(ctx context.Context, c *sdbx.Client, serverPid, n, conc int) (DensityResult, error) {
	ids := make([]string, n)
	defer Each(n, conc, func(i int) error {
		if ids[i] != "" {
			return c.DeleteSandbox(context.WithoutCancel(ctx), ids[i])
		}
		return nil
	})
	t0 := time.Now()
	if err := Each(n, conc, func(i int) error {
		sb, err := c.CreateSandbox(ctx, sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
		if err == nil {
			ids[i] = sb.ID
		}
		return err
	}); err != nil {
		return DensityResult{}, err
	}
	res := DensityResult{Alive: n, CreateTime: time.Since(t0)}
	select { // let start-up allocations settle
	case <-ctx.Done():
		return DensityResult{}, ctx.Err()
	case <-time.After(2 * time.Second):
	}
	pss, procs := sandboxPSS(ids)
	res.Procs, res.PerSandboxMi = procs, pss/1024/float64(n)
	rss, _ := rollup(strconv.Itoa(serverPid), "Rss:")
	res.ServerRSSMi = rss / 1024
	t1 := time.Now()
	if err := Each(n, conc, func(i int) error {
		r, err := c.RunCommand(ctx, ids[i], sdbx.Command{Args: []string{"true"}})
		if err == nil && r.ExitCode != 0 {
			err = fmt.Errorf("exit %d", r.ExitCode)
		}
		return err
	}); err != nil {
		return DensityResult{}, fmt.Errorf("a sandbox did not answer: %w", err)
	}
	res.AnswerTime = time.Since(t1)
	return res, nil
}

// Each runs fn(0..n-1) with conc workers and returns the first error.
func Each(n, conc int, fn func(int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range conc {
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
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// sandboxPSS sums the PSS (KiB) of every process inside the sandboxes
// ids (agents and anything they run), found as members of their pids
// cgroups (sdbx-*/<id>; other servers' sandboxes are left out).
func sandboxPSS(ids []string) (float64, int) {
	var total float64
	procs := 0
	for _, id := range ids {
		files, _ := filepath.Glob("/sys/fs/cgroup/pids/sdbx-*/" + id + "/cgroup.procs")
		total1, procs1 := pssOf(files)
		total, procs = total+total1, procs+procs1
	}
	return total, procs
}

func pssOf(files []string) (total float64, procs int) {
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

// rollup reads one field (KiB) of /proc/pid/smaps_rollup.
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
