package main

import (
	"context"
	"fmt"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// startDetached starts cmd as a background process and prints its id.
func (c *cli) startDetached(ctx context.Context, client *sdbx.Client, id string, cmd sdbx.Command) (int, error) {
	if cmd.Timeout != 0 {
		return 0, usagef("exec: --timeout does not apply to --detach (kill the process instead)")
	}
	p, err := client.StartProcess(ctx, id, cmd)
	if err != nil {
		return 0, err
	}
	fmt.Fprintln(c.stdout, p.ID)
	return 0, nil
}
