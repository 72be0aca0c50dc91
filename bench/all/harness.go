package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/sdbx/sdbx/bench/internal/measure"
	"github.com/sdbx/sdbx/bench/internal/report"
	"github.com/sdbx/sdbx/bench/internal/server"
	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// sizes are the sample counts of one run.
type sizes struct {
	creates, baselines, roundTrips, contexts, lines int
	fileBytes                                       int64
	tputSandboxes, tputClients                      int
	tputFor                                         time.Duration
	density                                         int
	socketIO                                        bool
}

func plan(o options) sizes {
	p := sizes{creates: 50, baselines: 50, roundTrips: 2000, contexts: 20, lines: 200_000,
		fileBytes: 64 << 20, tputSandboxes: 16, tputClients: 4, tputFor: 10 * time.Second,
		density: 1000, socketIO: !o.noSocketIO}
	if o.quick {
		p = sizes{creates: 10, baselines: 10, roundTrips: 200, contexts: 5, lines: 50_000,
			fileBytes: 16 << 20, tputSandboxes: 8, tputClients: 4, tputFor: 3 * time.Second,
			density: 50, socketIO: !o.noSocketIO}
	}
	if o.density > 0 {
		p.density = o.density
	}
	return p
}

// harness runs the measurements and collects their rows.
type harness struct {
	root, bin string
	p         sizes
	res       *report.Results
	log       io.Writer
}

func (h *harness) step(format string, args ...any) {
	fmt.Fprintf(h.log, "bench/all: "+format+"\n", args...)
}

func (h *harness) add(r report.Row) { h.res.Rows = append(h.res.Rows, r) }

func (h *harness) skip(what string, err error) {
	h.step("skipped %s: %v", what, err)
	h.res.Skipped = append(h.res.Skipped, fmt.Sprintf("%s (%v)", what, err))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func latency(section, name string, s measure.Summary) report.Row {
	return report.Row{Section: section, Name: name, Unit: "ms", N: s.N, P50: ms(s.P50), P99: ms(s.P99)}
}

const (
	secCreate = "create → first runCode('print(1)')"
	secWarm   = "warm runCode round trip (x += 1)"
	secTput   = "throughput"
	secData   = "streaming and files"
	secDense  = "density"
)

// measureAll runs everything: a cold server (--pool none) for all but the
// pooled creates, then a server with the default warm pool, then the
// baselines on the host.
func (h *harness) measureAll(ctx context.Context) error {
	cold, err := h.coldServer(ctx)
	if err != nil {
		return err
	}
	pool, err := h.poolServer(ctx)
	if err != nil {
		return err
	}
	if err := h.baselines(ctx, pool, cold); err != nil {
		return err
	}
	order := []string{secCreate, secWarm, secTput, secDense, secData}
	slices.SortStableFunc(h.res.Rows, func(a, b report.Row) int {
		return slices.Index(order, a.Section) - slices.Index(order, b.Section)
	})
	return nil
}

// createRow measures create → first runCode on a server.
func (h *harness) createRow(ctx context.Context, c *sdbx.Client, name, label string, pace time.Duration, alone string) (report.Row, error) {
	h.step("%s: %d × create → first runCode", name, h.p.creates)
	cf, err := measure.CreateFirstRun(ctx, c, h.p.creates, measure.FirstRun{Code: "print(1)", Pace: pace})
	if err != nil {
		return report.Row{}, fmt.Errorf("%s: %w", name, err)
	}
	r := latency(secCreate, name, cf.Total)
	r.Note = fmt.Sprintf("create p50 %s, first runCode p50 %s", measure.Ms(cf.Create.P50), measure.Ms(cf.First.P50))
	r.Alone = alone
	r.Label = "create -> first runCode, " + label
	return r, nil
}

func (h *harness) coldServer(ctx context.Context) (report.Row, error) {
	h.step("starting a server with --pool none")
	srv, c, err := server.RunClient(ctx, h.bin, "--pool", "none", "--log-level", "error")
	if err != nil {
		return report.Row{}, err
	}
	defer srv.Stop()
	cold, err := h.createRow(ctx, c, "sdbx, cold (--pool none)", "sdbx cold", 0,
		fmt.Sprintf("go run ./bench/coldstart -n %d -code 'print(1)' -pool none", h.p.creates))
	if err != nil {
		return report.Row{}, err
	}
	cold.Target, cold.Lower = 60, true
	if err := h.oneSandbox(ctx, srv, c); err != nil {
		return report.Row{}, err
	}
	h.step("throughput: %d sandboxes × %d clients for %s", h.p.tputSandboxes, h.p.tputClients, h.p.tputFor)
	tp, err := measure.Throughput(ctx, srv.URL, srv.Key, srv.Pid(), h.p.tputSandboxes, h.p.tputClients, h.p.tputFor)
	if err != nil {
		return report.Row{}, fmt.Errorf("throughput: %w", err)
	}
	alone := fmt.Sprintf("go run ./bench/coderun -throughput %d", h.p.tputSandboxes)
	us := func(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }
	h.add(report.Row{Section: secTput, Name: fmt.Sprintf("sdbx runCode/s, %d sandboxes × %d HTTP clients, %s", h.p.tputSandboxes, h.p.tputClients, h.p.tputFor),
		Unit: "runCode/s", Value: tp.Rate, Target: 5000, Label: "throughput, runCode/s",
		Note: fmt.Sprintf("load generator on the same %d cores; CPU per run: load generator %s, server %s, sandboxes (agents + interpreters) %s, the rest of the host %s; started after %s of waiting for a quiet host",
			numCPU(), us(tp.CPU.Client), us(tp.CPU.Server), us(tp.CPU.Sandboxes), us(tp.CPU.Others), tp.Settled.Round(100*time.Millisecond)),
		Alone: alone})
	if sdbxCPU := tp.CPU.Server + tp.CPU.Sandboxes; sdbxCPU > 0 {
		h.add(report.Row{Section: secTput, Name: fmt.Sprintf("runCode/s that %d cores allow sdbx (no load generator)", numCPU()), Unit: "runCode/s",
			Value: float64(numCPU()) * float64(time.Second) / float64(sdbxCPU),
			Note:  fmt.Sprintf("estimate: cores ÷ (server + sandbox CPU per run, %s)", us(sdbxCPU)), Alone: alone})
	}
	h.step("density: %d sandboxes alive together", h.p.density)
	d, err := measure.Density(ctx, c, srv.Pid(), h.p.density, 8)
	if err != nil {
		return report.Row{}, fmt.Errorf("density: %w", err)
	}
	alive := report.Row{Section: secDense, Name: "sdbx sandboxes alive together", Unit: "sandboxes", Value: float64(d.Alive), Label: "sandboxes alive together",
		Note: fmt.Sprintf("created in %s, all answered a command in %s; no kernel setting raised",
			d.CreateTime.Round(time.Millisecond), d.AnswerTime.Round(time.Millisecond)),
		Alone: fmt.Sprintf("go run ./bench/density -n %d", h.p.density)}
	if d.Alive >= 1000 {
		alive.Target = 1000
	}
	h.add(alive)
	h.add(report.Row{Section: secDense, Name: "sdbx memory per idle sandbox (PSS)", Unit: "MiB", Value: d.PerSandboxMi,
		Target: 5, Lower: true, Label: "memory per idle sandbox, MiB", Note: fmt.Sprintf("%d processes in %d sandboxes", d.Procs, d.Alive), Alone: alive.Alone})
	h.add(report.Row{Section: secDense, Name: "sdbx server RSS with them", Unit: "MiB", Value: d.ServerRSSMi, Alone: alive.Alone})
	return cold, nil
}

// oneSandbox runs the measurements that need one warm sandbox: round
// trips over HTTP and Socket.IO, context starts, streaming and files.
func (h *harness) oneSandbox(ctx context.Context, srv *server.Server, c *sdbx.Client) error {
	a := measure.NewAPI(srv.URL, srv.Key, 4)
	defer a.HTTP.CloseIdleConnections()
	id, err := a.CreateSandbox(ctx, "python-3-11")
	if err != nil {
		return err
	}
	defer a.DeleteSandbox(ctx, id)
	h.step("warm runCode: %d round trips over HTTP", h.p.roundTrips)
	rt, err := measure.WarmRoundTrip(ctx, a, id, h.p.roundTrips)
	if err != nil {
		return fmt.Errorf("warm round trip: %w", err)
	}
	r := latency(secWarm, "sdbx over HTTP (one keep-alive connection)", rt)
	r.Target, r.Lower, r.Alone = 1, true, fmt.Sprintf("go run ./bench/coderun -n %d", h.p.roundTrips)
	r.Label = "warm runCode, sdbx HTTP"
	h.add(r)
	if h.p.socketIO {
		h.step("warm runCode: %d round trips over socket.io-client", h.p.roundTrips)
		p50, p99, err := measure.SocketIO(ctx, h.root, srv.URL, srv.Key, id, h.p.roundTrips)
		if err != nil {
			h.skip("socket.io-client round trip", err)
		} else {
			h.add(report.Row{Section: secWarm, Name: "sdbx over socket.io-client (websocket)", Unit: "ms", N: h.p.roundTrips,
				P50: ms(p50), P99: ms(p99), Target: 1, Lower: true, Label: "warm runCode, sdbx socket.io",
				Alone: fmt.Sprintf("go run ./bench/coderun -n %d -socketio", h.p.roundTrips)})
		}
	}
	h.step("context starts: %d", h.p.contexts)
	cs, err := measure.ContextStarts(ctx, a, id, h.p.contexts)
	if err != nil {
		return fmt.Errorf("context start: %w", err)
	}
	r = latency(secWarm, "sdbx new Python context (interpreter ready)", cs)
	r.Target, r.Lower, r.Alone, r.Label = 60, true, "go run ./bench/coderun", "new Python context"
	h.add(r)
	h.step("streaming %d lines", h.p.lines)
	lps, err := measure.StreamLines(ctx, a, id, h.p.lines)
	if err != nil {
		return fmt.Errorf("streaming: %w", err)
	}
	h.add(report.Row{Section: secData, Name: fmt.Sprintf("sdbx lines streamed to one NDJSON client (%d lines)", h.p.lines),
		Unit: "lines/s", Value: lps, Target: 200_000, Label: "lines streamed, lines/s", Alone: "go run ./bench/coderun"})
	h.step("files: %d MiB write and read back", h.p.fileBytes>>20)
	fr, err := measure.FileTransfer(ctx, c, id, h.p.fileBytes)
	if err != nil {
		return fmt.Errorf("files: %w", err)
	}
	name := fmt.Sprintf("%d MiB through the Go SDK", h.p.fileBytes>>20)
	h.add(report.Row{Section: secData, Name: "sdbx file write, " + name, Unit: "MB/s", Value: fr.Write, Note: "sha256 checked on read", Alone: "go run ./bench/coderun -files"})
	h.add(report.Row{Section: secData, Name: "sdbx file read, " + name, Unit: "MB/s", Value: fr.Read, Alone: "go run ./bench/coderun -files"})
	return nil
}

func (h *harness) poolServer(ctx context.Context) (report.Row, error) {
	h.step("starting a server with the default warm pool")
	srv, c, err := server.RunClient(ctx, h.bin, "--log-level", "error")
	if err != nil {
		return report.Row{}, err
	}
	defer srv.Stop()
	// The pool holds two sandboxes; pacing the creates lets it refill, so
	// every create is served from it (back to back, the pool runs dry
	// and the creates are cold ones).
	const pace = 250 * time.Millisecond
	r, err := h.createRow(ctx, c, "sdbx, from the warm pool", "sdbx pool", pace,
		fmt.Sprintf("go run ./bench/coldstart -n %d -code 'print(1)' -pace 250ms", h.p.creates))
	if err != nil {
		return report.Row{}, err
	}
	r.Target, r.Lower = 10, true
	r.Note += fmt.Sprintf(", creates %s apart", pace)
	return r, nil
}

// baselines measures bubblewrap, runc and a Jupyter kernel and adds the
// create rows with their ratios.
func (h *harness) baselines(ctx context.Context, pool, cold report.Row) error {
	h.add(pool)
	h.add(cold)
	ratio := func(r report.Row) string {
		return "sdbx pool " + faster(pool.P50, r.P50) + ", sdbx cold " + faster(cold.P50, r.P50)
	}
	h.step("bubblewrap: %d one-shots", h.p.baselines)
	if s, err := measure.Bubblewrap(ctx, h.p.baselines); err != nil {
		h.skip("bubblewrap baseline", err)
	} else {
		r := latency(secCreate, "bubblewrap one-shot python3 -c 'print(1)'", s)
		r.Note, r.Alone, r.Label = ratio(r), shellJoin(measure.BubblewrapArgs()), "bubblewrap one-shot python3"
		h.add(r)
	}
	h.step("runc: %d × runc run", h.p.baselines)
	if s, err := measure.Runc(ctx, h.p.baselines); err != nil {
		h.skip("runc baseline", err)
	} else {
		r := latency(secCreate, "runc run of an OCI bundle (host /usr), python3 -c 'print(1)'", s)
		r.Label = "runc run, python3"
		r.Note, r.Alone = ratio(r), "runc run --bundle DIR ID (bundle from runc spec, rootfs with /usr bind-mounted)"
		h.add(r)
	}
	h.step("Jupyter kernel: %d round trips", h.p.roundTrips)
	p50, p99, err := measure.Jupyter(ctx, h.p.roundTrips)
	if err != nil {
		h.skip("Jupyter kernel baseline", err)
		return nil
	}
	r := report.Row{Section: secWarm, Name: "Jupyter kernel, same cell (jupyter_client)", Unit: "ms", N: h.p.roundTrips,
		P50: ms(p50), P99: ms(p99), Label: "warm run, Jupyter kernel", Alone: fmt.Sprintf("go run ./bench/coderun -n %d -jupyter", h.p.roundTrips)}
	for _, w := range h.res.Rows {
		if w.Section == secWarm && strings.HasPrefix(w.Name, "sdbx over HTTP") {
			r.Note = fmt.Sprintf("sdbx over HTTP %.1f× faster", r.P50/w.P50)
		}
	}
	h.add(r)
	return nil
}

// installBaselines installs the Debian packages of the baselines that are
// missing (the harness runs as root).
func installBaselines(ctx context.Context) error {
	var missing []string
	for _, p := range []string{"bubblewrap", "runc", "python3-ipykernel", "python3-jupyter-client"} {
		out, _ := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", p).Output()
		if !strings.Contains(string(out), "install ok installed") {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintln(os.Stderr, "bench/all: installing", strings.Join(missing, " "))
	for _, args := range [][]string{{"update", "-qq"}, append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w", args[0], err)
		}
	}
	return nil
}

// shellJoin quotes args for a shell where needed.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " '\"()$\\*?;&|<>`") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// faster says how sdbx's p50 compares with a baseline's.
func faster(sdbx, baseline float64) string {
	if sdbx <= baseline {
		return fmt.Sprintf("%.1f× faster", baseline/sdbx)
	}
	return fmt.Sprintf("%.1f× slower", sdbx/baseline)
}

func numCPU() int { return runtime.NumCPU() }
