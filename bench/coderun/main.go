// Command coderun measures warm code execution in a persistent context:
// the round trip of the cell `x += 1` through the HTTP API (one keep-alive
// connection, as the Go SDK uses), the start of a new Python context, and
// the rate of streamed output lines. bench/all runs the same measurements.
//
// With -jupyter it runs the same cell on a local Jupyter kernel (Debian
// python3-ipykernel + python3-jupyter-client) in the same run, for the
// ratio; with -socketio it also times the cell through the official
// socket.io-client (bench/socketio, installed with npm on first use);
// -files writes and reads back a 64 MiB file through the Go SDK;
// -throughput N measures runCode/s across N sandboxes.
//
//	sudo go run ./bench/coderun -n 2000 -jupyter -socketio
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/sdbx/sdbx/bench/internal/measure"
	"github.com/sdbx/sdbx/bench/internal/server"
	sdbx "github.com/sdbx/sdbx/sdk/go"
)

type options struct {
	n, lines, tput    int
	jupyter, sio, fil bool
	url, key          string
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 2000, "round trips to time")
	flag.BoolVar(&o.jupyter, "jupyter", false, "also time a local Jupyter kernel (python3-ipykernel)")
	flag.BoolVar(&o.sio, "socketio", false, "also time the cell through socket.io-client (needs node and npm)")
	flag.BoolVar(&o.fil, "files", false, "also write and read back a 64 MiB file through the Go SDK")
	flag.IntVar(&o.tput, "throughput", 0, "also measure runs/s with this many sandboxes, 4 clients each, for 10 s")
	flag.IntVar(&o.lines, "lines", 200000, "lines printed by the streaming cell")
	flag.StringVar(&o.url, "url", "", "server URL (default: start a server with --pool none), e.g. one started with --debug-addr to profile it")
	flag.StringVar(&o.key, "api-key", os.Getenv("SDBX_API_KEY"), "API key for -url")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "coderun:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	url, key := o.url, o.key
	if url == "" {
		stop, u, k, err := server.Start("--pool", "none")
		if err != nil {
			return err
		}
		defer stop()
		url, key = u, k
	}
	a := measure.NewAPI(url, key, 4)
	id, err := a.CreateSandbox(ctx, "python-3-11")
	if err != nil {
		return err
	}
	// Sandboxes outlive a stopped server (the next one adopts them):
	// delete this one before the server stops.
	defer a.DeleteSandbox(ctx, id)
	rt, err := measure.WarmRoundTrip(ctx, a, id, o.n)
	if err != nil {
		return err
	}
	starts, err := measure.ContextStarts(ctx, a, id, 20)
	if err != nil {
		return err
	}
	lps, err := measure.StreamLines(ctx, a, id, o.lines)
	if err != nil {
		return err
	}
	fmt.Printf("sdbx warm runCode `x += 1` over HTTP (%d runs): p50 %s  p90 %s  p99 %s\n", o.n, measure.Ms(rt.P50), measure.Ms(rt.P90), measure.Ms(rt.P99))
	fmt.Printf("sdbx new Python context (20 starts): p50 %s  p90 %s\n", measure.Ms(starts.P50), measure.Ms(starts.P90))
	fmt.Printf("sdbx streamed %d lines to one NDJSON client: %.0f lines/s\n", o.lines, lps)
	if o.fil {
		c, err := sdbx.New(sdbx.Config{ServerURL: url, APIKey: key, Timeout: 5 * time.Minute})
		if err != nil {
			return err
		}
		fr, err := measure.FileTransfer(ctx, c, id, 64<<20)
		if err != nil {
			return err
		}
		fmt.Printf("sdbx 64 MiB file through the Go SDK: write %.0f MB/s, read %.0f MB/s\n", fr.Write, fr.Read)
	}
	if o.tput > 0 {
		tp, err := measure.Throughput(ctx, url, key, measure.ServerPid(url), o.tput, 4, 10*time.Second)
		if err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
		fmt.Printf("sdbx throughput: %.0f runCode/s (`x += 1`, %d sandboxes × 4 clients over HTTP, 10 s)\n", tp.Rate, o.tput)
		fmt.Printf("CPU per runCode: load generator %s, server %s, sandboxes (agents + interpreters) %s, rest of the host %s (after %s waiting for a quiet host)\n",
			tp.CPU.Client.Round(time.Microsecond), tp.CPU.Server.Round(time.Microsecond), tp.CPU.Sandboxes.Round(time.Microsecond),
			tp.CPU.Others.Round(time.Microsecond), tp.Settled.Round(100*time.Millisecond))
	}
	if o.sio {
		root, err := server.ModuleRoot(ctx)
		if err != nil {
			return err
		}
		p50, p99, err := measure.SocketIO(ctx, root, url, key, id, o.n)
		if err != nil {
			return err
		}
		fmt.Printf("sdbx warm runCode `y += 1` over socket.io-client (%d runs, websocket): p50 %s  p99 %s\n", o.n, measure.Ms(p50), measure.Ms(p99))
	}
	if o.jupyter {
		p50, _, err := measure.Jupyter(ctx, o.n)
		if err != nil {
			return err
		}
		fmt.Printf("Jupyter kernel `x += 1` (%d runs, jupyter_client blocking client): p50 %s  → sdbx is %.1f× faster\n", o.n, measure.Ms(p50), float64(p50)/float64(rt.P50))
	}
	return nil
}
