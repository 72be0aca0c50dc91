// Command density measures how many idle sandboxes one machine holds and
// what each costs: it creates -n sandboxes through the API (concurrency
// -c), then sums the proportional set size (PSS, shared pages split among
// their users) of every process in them, and the server's own RSS, then
// runs one command in each to show they are alive, and deletes them.
// bench/all runs the same measurement.
//
//	sudo go run ./bench/density -n 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/sdbx/sdbx/bench/internal/measure"
	"github.com/sdbx/sdbx/bench/internal/server"
)

func main() {
	n := flag.Int("n", 1000, "sandboxes to keep alive together")
	c := flag.Int("c", 8, "concurrent creates and deletes")
	flag.Parse()
	if err := run(context.Background(), *n, *c); err != nil {
		fmt.Fprintln(os.Stderr, "density:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n, conc int) error {
	bin, remove, err := server.BuildTemp(ctx)
	if err != nil {
		return err
	}
	defer remove()
	srv, c, err := server.RunClient(ctx, bin, "--pool", "none", "--log-level", "error")
	if err != nil {
		return err
	}
	defer srv.Stop()
	d, err := measure.Density(ctx, c, srv.Pid(), n, conc)
	if err != nil {
		return err
	}
	fmt.Printf("%d sandboxes alive together (created in %s, concurrency %d); each answered a command (%s for all)\n",
		d.Alive, d.CreateTime.Round(time.Millisecond), conc, d.AnswerTime.Round(time.Millisecond))
	fmt.Printf("idle sandbox processes: %d → %.2f MiB PSS per sandbox\n", d.Procs, d.PerSandboxMi)
	fmt.Printf("server RSS: %.1f MiB\n", d.ServerRSSMi)
	return nil
}
