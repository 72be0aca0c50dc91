// Command coldstart measures create → first command latency through the Go
// SDK against a real sdbx server on 127.0.0.1: for each of -n runs it
// creates a sandbox, runs one command in it, and (untimed) deletes it.
//
//	sudo go run ./bench/coldstart -n 50              # with the default warm pool
//	sudo go run ./bench/coldstart -n 50 -pool none   # cold starts
//	sudo go run ./bench/coldstart -n 50 -pool none -egress none   # cold starts without a network link
//
// Without -url it builds ./cmd/sdbx and starts its own server on a free
// loopback port with a temporary data directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/sdbx/sdbx/bench/internal/server"
	sdbx "github.com/sdbx/sdbx/sdk/go"
)

func main() {
	n := flag.Int("n", 50, "number of sandboxes to create")
	url := flag.String("url", "", "server URL (default: start a server)")
	key := flag.String("api-key", os.Getenv("SDBX_API_KEY"), "API key for -url")
	tmpl := flag.String("template", "python-3-11", "template")
	cmd := flag.String("command", "python3 -c 'print(1)'", "first command")
	code := flag.String("code", "", "run this code with runCode as the first operation instead of -command (e.g. \"print(1)\")")
	pool := flag.String("pool", "", `warm pool of the started server ("none" for cold starts; default the server's)`)
	egress := flag.String("egress", "", "network egress of each sandbox: none, internet or allowlist (default: the server's, internet)")
	flag.Parse()
	if err := run(*n, *url, *key, *tmpl, *cmd, *code, *pool, *egress); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
		os.Exit(1)
	}
}

func run(n int, url, key, tmpl, command, code, pool, egress string) error {
	ctx := context.Background()
	if url == "" {
		var extra []string
		if pool != "" {
			extra = []string{"--pool", pool}
		}
		stop, u, k, err := server.Start(extra...)
		if err != nil {
			return err
		}
		defer stop()
		url, key = u, k
	}
	c, err := sdbx.New(sdbx.Config{ServerURL: url, APIKey: key})
	if err != nil {
		return err
	}
	var create, firstOp, total []time.Duration
	for i := 0; i < n+1; i++ {
		t0 := time.Now()
		sb, err := c.CreateSandbox(ctx, sdbx.CreateSandboxOptions{TemplateID: tmpl, Network: sdbx.Network{Egress: egress}})
		if err != nil {
			return err
		}
		t1 := time.Now()
		if code != "" {
			res, err := c.RunCode(ctx, sb.ID, code)
			if err != nil {
				return err
			}
			if res.Execution.Error != nil {
				return fmt.Errorf("code raised %s: %s", res.Execution.Error.Name, res.Execution.Error.Value)
			}
		} else {
			res, err := c.RunCommand(ctx, sb.ID, sdbx.Command{Command: command})
			if err != nil {
				return err
			}
			if res.ExitCode != 0 {
				return fmt.Errorf("command exited %d: %v", res.ExitCode, res.Stderr)
			}
		}
		t2 := time.Now()
		if err := c.DeleteSandbox(ctx, sb.ID); err != nil {
			return err
		}
		if i == 0 {
			continue // warm-up: page cache, first cgroup parent
		}
		create, firstOp, total = append(create, t1.Sub(t0)), append(firstOp, t2.Sub(t1)), append(total, t2.Sub(t0))
	}
	first := "command " + strconv.Quote(command)
	if code != "" {
		first = "runCode " + strconv.Quote(code)
	}
	fmt.Printf("template %s, %s, %d runs (create → first result; delete untimed)\n", tmpl, first, n)
	fmt.Printf("%-22s %9s %9s %9s %9s\n", "", "p50", "p90", "p99", "max")
	for _, row := range []struct {
		name string
		d    []time.Duration
	}{{"create", create}, {"first operation", firstOp}, {"create → first result", total}} {
		slices.Sort(row.d)
		fmt.Printf("%-22s %9s %9s %9s %9s\n", row.name, ms(pct(row.d, 50)), ms(pct(row.d, 90)), ms(pct(row.d, 99)), ms(row.d[len(row.d)-1]))
	}
	return nil
}

func pct(d []time.Duration, p int) time.Duration { return d[(len(d)-1)*p/100] }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
