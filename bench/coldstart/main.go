// Command coldstart measures create → first command latency through the Go
// SDK against a real sdbx server on 127.0.0.1: for each of -n runs it
// creates a sandbox, runs one command (or -code) in it, and (untimed)
// deletes it. bench/all runs the same measurement.
//
//	sudo go run ./bench/coldstart -n 50              # with the default warm pool
//	sudo go run ./bench/coldstart -n 50 -pool none   # cold starts
//	sudo go run ./bench/coldstart -n 50 -code 'print(1)' -pace 250ms
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
	"strconv"
	"time"

	"github.com/sdbx/sdbx/bench/internal/measure"
	"github.com/sdbx/sdbx/bench/internal/server"
	sdbx "github.com/sdbx/sdbx/sdk/go"
)

func main() {
	n := flag.Int("n", 50, "number of sandboxes to create")
	url := flag.String("url", "", "server URL (default: start a server)")
	key := flag.String("api-key", os.Getenv("SDBX_API_KEY"), "API key for -url")
	var fr measure.FirstRun
	flag.StringVar(&fr.Template, "template", "python-3-11", "template")
	flag.StringVar(&fr.Command, "command", "python3 -c 'print(1)'", "first command")
	flag.StringVar(&fr.Code, "code", "", "run this code with runCode as the first operation instead of -command (e.g. \"print(1)\")")
	flag.DurationVar(&fr.Pace, "pace", 0, "untimed pause before each create (e.g. to let the warm pool refill)")
	flag.StringVar(&fr.Egress, "egress", "", `network egress of each sandbox ("none", "internet"; default the server's)`)
	pool := flag.String("pool", "", `warm pool of the started server ("none" for cold starts; default the server's)`)
	flag.Parse()
	if err := run(*n, *url, *key, *pool, fr); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
		os.Exit(1)
	}
}

func run(n int, url, key, pool string, fr measure.FirstRun) error {
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
	c, err := sdbx.New(sdbx.Config{ServerURL: url, APIKey: key, Timeout: 5 * time.Minute})
	if err != nil {
		return err
	}
	cf, err := measure.CreateFirstRun(ctx, c, n, fr)
	if err != nil {
		return err
	}
	first := "command " + strconv.Quote(fr.Command)
	if fr.Code != "" {
		first = "runCode " + strconv.Quote(fr.Code)
	}
	fmt.Printf("template %s, %s, %d runs (create → first result; delete untimed)\n", fr.Template, first, n)
	fmt.Printf("%-22s %9s %9s %9s %9s\n", "", "p50", "p90", "p99", "max")
	for _, row := range []struct {
		name string
		s    measure.Summary
	}{{"create", cf.Create}, {"first operation", cf.First}, {"create → first result", cf.Total}} {
		fmt.Printf("%-22s %9s %9s %9s %9s\n", row.name, measure.Ms(row.s.P50), measure.Ms(row.s.P90), measure.Ms(row.s.P99), measure.Ms(row.s.Max))
	}
	return nil
}
