// Command all is the sdbx benchmark harness: one run measures every
// figure of docs/benchmarks.md against real servers on 127.0.0.1, with
// the bubblewrap, runc and Jupyter baselines on the same machine, prints a
// table, and writes bench/results/latest.json, the generated section of
// docs/benchmarks.md and docs/benchmarks.png.
//
//	sudo go run ./bench/all          # full run (~3 min)
//	sudo go run ./bench/all -quick   # short run, few samples
//	sudo go run ./bench/all -runs 3  # medians of three runs, with ranges
//
// Run from the repository. As root it first installs the Debian packages
// the baselines need (bubblewrap, runc, python3-ipykernel,
// python3-jupyter-client). Everything it creates (servers, sandboxes,
// temporary directories, runc containers) is removed before it exits,
// also on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sdbx/sdbx/bench/internal/report"
	"github.com/sdbx/sdbx/bench/internal/server"
)

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "short run: few samples, a smaller density and throughput run")
	flag.StringVar(&o.out, "out", "bench/results/latest.json", "results file (empty: none)")
	flag.StringVar(&o.doc, "doc", "docs/benchmarks.md", "Markdown file whose generated section is rewritten (empty: none)")
	flag.StringVar(&o.png, "png", "docs/benchmarks.png", "chart file (empty: none)")
	flag.IntVar(&o.density, "density", 0, "sandboxes alive together in the density run (default 1000, 50 with -quick)")
	flag.BoolVar(&o.noInstall, "no-install", false, "do not apt-get install missing baseline packages")
	flag.BoolVar(&o.noSocketIO, "no-socketio", false, "skip the socket.io-client round trip (needs node and npm)")
	flag.IntVar(&o.runs, "runs", 1, "repeat every measurement this many times; each figure is then the median, with the range in its note")
	flag.StringVar(&o.render, "render", "", "measure nothing: render this results file again into -doc and -png")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/all:", err)
		os.Exit(1)
	}
}

type options struct {
	quick, noInstall, noSocketIO bool
	out, doc, png, render        string
	density, runs                int
}

func run(ctx context.Context, o options) error {
	if o.render != "" {
		return rerender(ctx, o)
	}
	if os.Geteuid() != 0 {
		return errors.New("sdbx needs root to create sandboxes: run it as root (sudo go run ./bench/all)")
	}
	root, err := server.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	if !o.noInstall {
		if err := installBaselines(ctx); err != nil {
			return err
		}
	}
	bin, remove, err := server.BuildTemp(ctx)
	if err != nil {
		return err
	}
	defer remove()
	started := time.Now()
	var runs []*report.Results
	for i := range max(o.runs, 1) {
		if o.runs > 1 {
			fmt.Fprintf(os.Stderr, "bench/all: run %d of %d\n", i+1, o.runs)
		}
		res := &report.Results{Started: time.Now(), Command: commandLine(), Machine: machine(), Quick: o.quick}
		h := &harness{root: root, bin: bin, p: plan(o), res: res, log: os.Stderr}
		if err := h.measureAll(ctx); err != nil {
			return err
		}
		runs = append(runs, res)
	}
	res := report.Merge(runs)
	res.Duration = time.Since(started).Round(time.Second).String()
	if err := res.WriteTable(os.Stdout); err != nil {
		return err
	}
	return writeOutputs(root, o, res)
}

// rerender writes the docs and chart of an earlier run's results file.
func rerender(ctx context.Context, o options) error {
	root, err := server.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	res, err := report.ReadJSON(o.render)
	if err != nil {
		return err
	}
	o.out = ""
	return writeOutputs(root, o, res)
}

// writeOutputs writes the results file, the chart and the generated
// section of the docs (paths relative to the repository).
func writeOutputs(root string, o options, res *report.Results) error {
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(root, p)
	}
	if o.out != "" {
		if err := os.MkdirAll(filepath.Dir(abs(o.out)), 0o755); err != nil {
			return err
		}
		if err := res.WriteJSON(abs(o.out)); err != nil {
			return err
		}
		fmt.Println("wrote", o.out)
	}
	link := ""
	if o.png != "" {
		f, err := os.Create(abs(o.png))
		if err != nil {
			return err
		}
		if err := res.WritePNG(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Println("wrote", o.png)
		if o.doc != "" {
			if rel, err := filepath.Rel(filepath.Dir(abs(o.doc)), abs(o.png)); err == nil {
				link = rel
			}
		}
	}
	if o.doc != "" {
		var b strings.Builder
		if err := res.WriteMarkdown(&b, link); err != nil {
			return err
		}
		if err := report.UpdateDoc(abs(o.doc), []byte(b.String())); err != nil {
			return err
		}
		fmt.Println("updated", o.doc)
	}
	return nil
}

// commandLine is how this run was started, as a user would type it.
func commandLine() string {
	args := append([]string{"go run ./bench/all"}, os.Args[1:]...)
	return strings.Join(args, " ")
}

// machine describes the host: cores, memory, kernel, cgroup version.
func machine() string {
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	cg := "cgroup v1"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cg = "cgroup v2"
	}
	return fmt.Sprintf("%d cores%s, kernel %s, %s, load average %s at start", numCPU(), mem, strings.TrimSpace(string(kernel)), cg, loadAverage())
}

// loadAverage is the 1-minute load average (other work on the machine
// skews every figure).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}
