// Command coderun measures warm code execution in a persistent context:
// the round trip of the cell `x += 1` through the HTTP API (one keep-alive
// connection, as the Go SDK uses), the start of a new Python context, and
// the rate of streamed output lines. With -jupyter it runs the same cell on
// a local Jupyter kernel (Debian python3-ipykernel + python3-jupyter-client)
// in the same run, for the ratio.
//
// With -socketio it also times the cell through the official
// socket.io-client (bench/socketio, installed with npm on first use).
//
//	sudo go run ./bench/coderun -n 2000 -jupyter -socketio
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sdbx/sdbx/bench/internal/server"
)

func main() {
	n := flag.Int("n", 2000, "round trips to time")
	jupyter := flag.Bool("jupyter", false, "also time a local Jupyter kernel (python3-ipykernel)")
	sio := flag.Bool("socketio", false, "also time the cell through socket.io-client (needs node and npm)")
	tput := flag.Int("throughput", 0, "also measure runs/s with this many sandboxes, 4 clients each, for 10 s")
	lines := flag.Int("lines", 200000, "lines printed by the streaming cell")
	flag.Parse()
	if err := run(*n, *lines, *jupyter, *sio, *tput); err != nil {
		fmt.Fprintln(os.Stderr, "coderun:", err)
		os.Exit(1)
	}
}

type client struct {
	url, key string
	http     *http.Client
}

func (c *client) post(path string, body any, accept string) (*http.Response, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, c.url+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+c.key)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e bytes.Buffer
		e.ReadFrom(resp.Body)
		return nil, fmt.Errorf("%s: %s", path, e.String())
	}
	return resp, nil
}

func (c *client) json(path string, body, out any) error {
	resp, err := c.post(path, body, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

func run(n, lines int, jupyter, sio bool, tput int) error {
	stop, url, key, err := server.Start("--pool", "none")
	if err != nil {
		return err
	}
	defer stop()
	c := &client{url: url, key: key, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	var created struct{ Sandbox struct{ ID string } }
	if err := c.json("/v1/sandboxes", map[string]any{"templateId": "python-3-11"}, &created); err != nil {
		return err
	}
	id := created.Sandbox.ID
	// Sandboxes outlive a stopped server (the next one adopts them): delete
	// this one before the server stops.
	defer func() {
		req, _ := http.NewRequest(http.MethodDelete, url+"/v1/sandboxes/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		if resp, err := c.http.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	code := "/v1/sandboxes/" + id + "/code"
	var res struct {
		Execution struct{ Results []map[string]any }
	}
	if err := c.json(code, map[string]any{"code": "x = 0"}, &res); err != nil {
		return err
	}
	rt := make([]time.Duration, 0, n)
	for i := 0; i < n+100; i++ {
		t0 := time.Now()
		if err := c.json(code, map[string]any{"code": "x += 1"}, &res); err != nil {
			return err
		}
		if i >= 100 { // warm-up
			rt = append(rt, time.Since(t0))
		}
	}
	if err := c.json(code, map[string]any{"code": "x"}, &res); err != nil {
		return err
	}
	if got := fmt.Sprint(res.Execution.Results[0]["text"]); got != strconv.Itoa(n+100) {
		return fmt.Errorf("x = %s after %d increments", got, n+100)
	}

	// Context start: create a new Python context (interpreter ready).
	var starts []time.Duration
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		var cc struct{ ID string }
		if err := c.json("/v1/sandboxes/"+id+"/contexts", map[string]any{"language": "python"}, &cc); err != nil {
			return err
		}
		starts = append(starts, time.Since(t0))
		req, _ := http.NewRequest(http.MethodDelete, url+"/v1/contexts/"+cc.ID, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		if resp, err := c.http.Do(req); err == nil {
			resp.Body.Close()
		}
	}

	// Streaming: lines/s delivered to one NDJSON client.
	t0 := time.Now()
	resp, err := c.post(code, map[string]any{"code": fmt.Sprintf("for i in range(%d): print(i)", lines)}, "application/x-ndjson")
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(resp.Body)
	got := 0
	for sc.Scan() {
		if bytes.HasPrefix(sc.Bytes(), []byte(`{"type":"stdout"`)) {
			got++
		}
	}
	resp.Body.Close()
	streamDur := time.Since(t0)
	if got != lines {
		return fmt.Errorf("streamed %d of %d lines", got, lines)
	}

	fmt.Printf("sdbx warm runCode `x += 1` over HTTP (%d runs): p50 %s  p90 %s  p99 %s\n", n, ms(pct(rt, 50)), ms(pct(rt, 90)), ms(pct(rt, 99)))
	fmt.Printf("sdbx new Python context (20 starts): p50 %s  p90 %s\n", ms(pct(starts, 50)), ms(pct(starts, 90)))
	fmt.Printf("sdbx streamed %d lines to one NDJSON client in %s: %.0f lines/s\n", lines, streamDur.Round(time.Millisecond), float64(lines)/streamDur.Seconds())
	if tput > 0 {
		rate, err := throughput(c, tput, 4, 10*time.Second)
		if err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
		fmt.Printf("sdbx throughput: %.0f runCode/s (`x += 1`, %d sandboxes × 4 clients over HTTP, 10 s)\n", rate, tput)
	}
	if sio {
		out, err := socketIORoundTrip(url, key, id, n)
		if err != nil {
			return fmt.Errorf("socket.io: %w", err)
		}
		fmt.Printf("sdbx warm runCode `y += 1` over socket.io-client (%d runs, websocket): %s\n", n, out)
	}
	if jupyter {
		p50, err := jupyterRoundTrip(n)
		if err != nil {
			return fmt.Errorf("jupyter: %w", err)
		}
		fmt.Printf("Jupyter kernel `x += 1` (%d runs, jupyter_client blocking client): p50 %s  → sdbx is %.1f× faster\n", n, ms(p50), float64(p50)/float64(pct(rt, 50)))
	}
	return nil
}

// jupyterScript times execute round trips on a local ipykernel and prints
// the p50 in microseconds.
const jupyterScript = `
import sys, time
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name="python3")
try:
    kc.execute_interactive("x = 0", timeout=30)
    n = int(sys.argv[1]); t = []
    for i in range(n + 100):
        t0 = time.perf_counter()
        kc.execute_interactive("x += 1", timeout=30)
        if i >= 100: t.append(time.perf_counter() - t0)
    t.sort(); print(int(t[len(t)//2] * 1e6))
finally:
    kc.stop_channels(); km.shutdown_kernel(now=True)
`

func jupyterRoundTrip(n int) (time.Duration, error) {
	out, err := exec.Command("/usr/bin/python3", "-c", jupyterScript, strconv.Itoa(n)).Output()
	if err != nil {
		return 0, fmt.Errorf("%v (install python3-ipykernel python3-jupyter-client)", err)
	}
	us, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("unexpected output %q", out)
	}
	return time.Duration(us) * time.Microsecond, nil
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }

// socketIORoundTrip runs bench/socketio/roundtrip.mjs against the server.
func socketIORoundTrip(url, key, sandboxID string, n int) (string, error) {
	dir := "bench/socketio"
	if _, err := os.Stat(dir + "/node_modules/socket.io-client"); err != nil {
		install := exec.Command("npm", "install", "--no-audit", "--no-fund", "--silent")
		install.Dir, install.Stderr = dir, os.Stderr
		if err := install.Run(); err != nil {
			return "", fmt.Errorf("npm install in %s: %w", dir, err)
		}
	}
	cmd := exec.Command("node", "roundtrip.mjs")
	cmd.Dir, cmd.Stderr = dir, os.Stderr
	cmd.Env = append(os.Environ(), "SDBX_URL="+url, "SDBX_API_KEY="+key, "SDBX_SANDBOX="+sandboxID, "N="+strconv.Itoa(n))
	out, err := cmd.Output()
	if err != nil {
		return "", err
	}
	var p struct{ P50, P90, P99 int }
	if err := json.Unmarshal(out, &p); err != nil {
		return "", fmt.Errorf("unexpected output %q", out)
	}
	us := func(v int) string { return fmt.Sprintf("%.3f ms", float64(v)/1000) }
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s", us(p.P50), us(p.P90), us(p.P99)), nil
}

// throughput runs `x += 1` from clients per sandbox concurrently for d and
// returns completed runs per second. Runs in one sandbox go to its default
// context, so they queue there: the parallelism comes from the sandboxes.
func throughput(c *client, sandboxes, clients int, d time.Duration) (float64, error) {
	ids := make([]string, sandboxes)
	for i := range ids {
		var created struct{ Sandbox struct{ ID string } }
		if err := c.json("/v1/sandboxes", map[string]any{"templateId": "python-3-11"}, &created); err != nil {
			return 0, err
		}
		ids[i] = created.Sandbox.ID
		var res struct{}
		if err := c.json("/v1/sandboxes/"+ids[i]+"/code", map[string]any{"code": "x = 0"}, &res); err != nil {
			return 0, err
		}
	}
	defer func() {
		for _, id := range ids {
			req, _ := http.NewRequest(http.MethodDelete, c.url+"/v1/sandboxes/"+id, nil)
			req.Header.Set("Authorization", "Bearer "+c.key)
			if resp, err := c.http.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: sandboxes * clients}}
	cc := &client{url: c.url, key: c.key, http: hc}
	var (
		mu    sync.Mutex
		total int
		first error
		wg    sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for _, id := range ids {
		for j := 0; j < clients; j++ {
			wg.Go(func() {
				n := 0
				var res struct{}
				for time.Now().Before(deadline) {
					if err := cc.json("/v1/sandboxes/"+id+"/code", map[string]any{"code": "x += 1"}, &res); err != nil {
						mu.Lock()
						first = cmp.Or(first, err)
						mu.Unlock()
						return
					}
					n++
				}
				mu.Lock()
				total += n
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	return float64(total) / time.Since(start).Seconds(), first
}
