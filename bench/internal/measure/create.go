package measure

import (
	"context"
	"fmt"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// FirstRun says what CreateFirstRun does after each create.
type FirstRun struct {
	Template string // default python-3-11
	Code     string // runCode this; when empty, run Command
	Command  string
	Egress   string // network egress of each sandbox; empty: the server's default
	// Pace is an untimed pause before each create, e.g. to let a warm
	// pool refill between runs.
	Pace time.Duration
}

// CreateFirst is what CreateFirstRun measured: create alone, the first
// operation alone and both together (create → first result).
type CreateFirst struct {
	Create, First, Total Summary
}

// CreateFirstRun times n × (create a sandbox → run one code cell or
// command in it) through the Go SDK, deleting each sandbox untimed. One
// warm-up run (page cache, first cgroup parent) is discarded.
func CreateFirstRun(ctx context.Context, c *sdbx.Client, n int, fr FirstRun) (CreateFirst, error) {
	if fr.Template == "" {
		fr.Template = "python-3-11"
	}
	var create, first, total []time.Duration
	for i := 0; i < n+1; i++ {
		if fr.Pace > 0 {
			select {
			case <-ctx.Done():
				return CreateFirst{}, ctx.Err()
			case <-time.After(fr.Pace):
			}
		}
		t0 := time.Now()
		sb, err := c.CreateSandbox(ctx, sdbx.CreateSandboxOptions{TemplateID: fr.Template, Network: sdbx.Network{Egress: fr.Egress}})
		if err != nil {
			return CreateFirst{}, err
		}
		t1 := time.Now()
		err = firstOp(ctx, c, sb.ID, fr)
		t2 := time.Now()
		if derr := c.DeleteSandbox(context.WithoutCancel(ctx), sb.ID); err == nil {
			err = derr
		}
		if err != nil {
			return CreateFirst{}, err
		}
		if i == 0 {
			continue
		}
		create, first, total = append(create, t1.Sub(t0)), append(first, t2.Sub(t1)), append(total, t2.Sub(t0))
	}
	return CreateFirst{Summarize(create), Summarize(first), Summarize(total)}, nil
}

func firstOp(ctx context.Context, c *sdbx.Client, id string, fr FirstRun) error {
	if fr.Code != "" {
		res, err := c.RunCode(ctx, id, fr.Code)
		if err != nil {
			return err
		}
		if res.Execution.Error != nil {
			return fmt.Errorf("code raised %s: %s", res.Execution.Error.Name, res.Execution.Error.Value)
		}
		return nil
	}
	res, err := c.RunCommand(ctx, id, sdbx.Command{Command: fr.Command})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("command exited %d: %v", res.ExitCode, res.Stderr)
	}
	return nil
}
