package measure

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// API is a bare HTTP client of the /v1 API for the hot-path measurements:
// plain JSON over keep-alive connections, as the Go SDK sends it, with
// nothing else in the way.
type API struct {
	URL, Key string
	HTTP     *http.Client
}

// NewAPI returns an API client keeping up to conns idle connections.
func NewAPI(url, key string, conns int) *API {
	return &API{URL: url, Key: key, HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}}}
}

func (a *API) do(ctx context.Context, method, path string, body any, accept string) (*http.Response, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	return a.send(ctx, method, path, b, accept)
}

// send sends an encoded body (nil: none) and returns a 2xx response.
func (a *API) send(ctx context.Context, method, path string, body []byte, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.Key)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e bytes.Buffer
		e.ReadFrom(resp.Body)
		return nil, fmt.Errorf("%s %s: %s", method, path, bytes.TrimSpace(e.Bytes()))
	}
	return resp, nil
}

// JSON posts body to path and decodes the answer into out (nil: drain).
func (a *API) JSON(ctx context.Context, path string, body, out any) error {
	resp, err := a.do(ctx, http.MethodPost, path, body, "")
	if err != nil {
		return err
	}
	return decode(resp, out)
}

// decode decodes a response's JSON body into out (nil: drain) and closes
// it.
func decode(resp *http.Response, out any) error {
	defer resp.Body.Close()
	if out == nil {
		out = &struct{}{}
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Delete deletes the resource at path (a sandbox, a context).
func (a *API) Delete(ctx context.Context, path string) error {
	resp, err := a.do(ctx, http.MethodDelete, path, nil, "")
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// CreateSandbox creates a sandbox of template and returns its id.
func (a *API) CreateSandbox(ctx context.Context, template string) (string, error) {
	var created struct{ Sandbox struct{ ID string } }
	if err := a.JSON(ctx, "/v1/sandboxes", map[string]any{"templateId": template}, &created); err != nil {
		return "", err
	}
	return created.Sandbox.ID, nil
}

// DeleteSandbox deletes a sandbox; it outlives its context's cancellation.
func (a *API) DeleteSandbox(ctx context.Context, id string) error {
	return a.Delete(context.WithoutCancel(ctx), "/v1/sandboxes/"+id)
}

type execution struct {
	Execution struct {
		Results []struct{ Text string }
		Error   *struct{ Name, Value string }
	}
}

// RunCode runs code in the sandbox's default Python context and returns
// the text of its last result.
func (a *API) RunCode(ctx context.Context, id, code string) (string, error) {
	body, err := json.Marshal(struct {
		Code string `json:"code"`
	}{code})
	if err != nil {
		return "", err
	}
	resp, err := a.send(ctx, http.MethodPost, "/v1/sandboxes/"+id+"/code", body, "")
	if err != nil {
		return "", err
	}
	var res execution
	if err := decode(resp, &res); err != nil {
		return "", err
	}
	if e := res.Execution.Error; e != nil {
		return "", fmt.Errorf("code raised %s: %s", e.Name, e.Value)
	}
	if n := len(res.Execution.Results); n > 0 {
		return res.Execution.Results[n-1].Text, nil
	}
	return "", nil
}

// WarmRoundTrip times n runs of `x += 1` in the default context of
// sandbox id over one keep-alive connection, after 100 untimed warm-up
// runs, and checks that the state survived every run.
func WarmRoundTrip(ctx context.Context, a *API, id string, n int) (Summary, error) {
	if _, err := a.RunCode(ctx, id, "x = 0"); err != nil {
		return Summary{}, err
	}
	const warm = 100
	rt := make([]time.Duration, 0, n)
	for i := 0; i < n+warm; i++ {
		t0 := time.Now()
		if _, err := a.RunCode(ctx, id, "x += 1"); err != nil {
			return Summary{}, err
		}
		if i >= warm {
			rt = append(rt, time.Since(t0))
		}
	}
	got, err := a.RunCode(ctx, id, "x")
	if err != nil {
		return Summary{}, err
	}
	if got != strconv.Itoa(n+warm) {
		return Summary{}, fmt.Errorf("x = %s after %d increments", got, n+warm)
	}
	return Summarize(rt), nil
}

// ContextStarts times n creations of a new Python context (interpreter
// ready), deleting each untimed.
func ContextStarts(ctx context.Context, a *API, id string, n int) (Summary, error) {
	var starts []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		var cc struct{ ID string }
		if err := a.JSON(ctx, "/v1/sandboxes/"+id+"/contexts", map[string]any{"language": "python"}, &cc); err != nil {
			return Summary{}, err
		}
		starts = append(starts, time.Since(t0))
		if err := a.Delete(ctx, "/v1/contexts/"+cc.ID); err != nil {
			return Summary{}, err
		}
	}
	return Summarize(starts), nil
}

// StreamLines runs a cell printing lines lines and returns the rate at
// which they reach one NDJSON client (lines/s).
func StreamLines(ctx context.Context, a *API, id string, lines int) (float64, error) {
	t0 := time.Now()
	resp, err := a.do(ctx, http.MethodPost, "/v1/sandboxes/"+id+"/code",
		map[string]any{"code": fmt.Sprintf("for i in range(%d): print(i)", lines)}, "application/x-ndjson")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 64<<20) // the closing event carries the whole output
	got := 0
	for sc.Scan() {
		if bytes.HasPrefix(sc.Bytes(), []byte(`{"type":"stdout"`)) {
			got++
		}
	}
	d := time.Since(t0)
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if got != lines {
		return 0, fmt.Errorf("streamed %d of %d lines", got, lines)
	}
	return float64(lines) / d.Seconds(), nil
}

// ThroughputResult is what Throughput measured.
type ThroughputResult struct {
	Rate float64 // runCode/s
	Runs int
	// CPU is the CPU time per run, by who spent it (the server's share is
	// zero when its pid is unknown).
	CPU CPU
	// Settled is how long the host took to go quiet before the run (see
	// Settle).
	Settled time.Duration
}

// Throughput runs `x += 1` from clients connections per sandbox into
// sandboxes new sandboxes for d and returns completed runs per second and
// the CPU time per run of this process, the server (serverPid, 0 if
// unknown) and the sandboxes. Runs in one sandbox queue in its default
// context, so the parallelism comes from the sandboxes. The run starts
// once the host is quiet (Settle, after the sandboxes' setup). The clients are
// lean (see rawPoster); afterwards each sandbox's x must equal the runs
// counted for it. The sandboxes are deleted afterwards.
func Throughput(ctx context.Context, url, key string, serverPid, sandboxes, clients int, d time.Duration) (ThroughputResult, error) {
	a := NewAPI(url, key, sandboxes*clients)
	defer a.HTTP.CloseIdleConnections()
	var ids []string
	defer func() {
		for _, id := range ids {
			a.DeleteSandbox(ctx, id)
		}
	}()
	for range sandboxes {
		id, err := a.CreateSandbox(ctx, "python-3-11")
		if err != nil {
			return ThroughputResult{}, err
		}
		ids = append(ids, id)
		if _, err := a.RunCode(ctx, id, "x = 0"); err != nil {
			return ThroughputResult{}, err
		}
	}
	var posters []*rawPoster
	defer func() {
		for _, p := range posters {
			p.Close()
		}
	}()
	for _, id := range ids {
		for range clients {
			p, err := newRawPoster(ctx, url, key, "/v1/sandboxes/"+id+"/code", []byte(`{"code":"x += 1"}`))
			if err != nil {
				return ThroughputResult{}, err
			}
			posters = append(posters, p)
		}
	}
	var (
		mu    sync.Mutex
		total int
		runs  = make([]int, len(ids))
		first error
		wg    sync.WaitGroup
	)
	settled := Settle(ctx, 15*time.Second)
	before := cpuSnapshot(serverPid, ids)
	deadline := time.Now().Add(d)
	start := time.Now()
	for i, p := range posters {
		wg.Go(func() {
			n := 0
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := p.post(deadline.Add(time.Minute)); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
					break
				}
				n++
			}
			mu.Lock()
			total += n
			runs[i/clients] += n
			mu.Unlock()
		})
	}
	wg.Wait()
	el := time.Since(start)
	cpu := cpuSnapshot(serverPid, ids).Sub(before)
	if first != nil {
		return ThroughputResult{}, first
	}
	for i, id := range ids {
		got, err := a.RunCode(ctx, id, "x")
		if err != nil {
			return ThroughputResult{}, err
		}
		if got != strconv.Itoa(runs[i]) {
			return ThroughputResult{}, fmt.Errorf("sandbox %s: x = %s after %d counted runs", id, got, runs[i])
		}
	}
	return ThroughputResult{Rate: float64(total) / el.Seconds(), Runs: total, CPU: cpu.Per(total), Settled: settled}, nil
}
