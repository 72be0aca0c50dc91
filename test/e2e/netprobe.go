package e2e

import (
	"context"
	"strings"
	"time"

	"github.com/sdbx/sdbx/internal/runtime/runtimetest"
	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// NetProbe runs runtimetest.NetProbe with args in sandbox id and returns
// its one line of output (stderr included).
func NetProbe(ctx context.Context, c *sdbx.Client, id string, args ...string) (string, error) {
	res, err := c.RunCommand(ctx, id, sdbx.Command{
		Args: append([]string{"python3", "-c", runtimetest.NetProbe}, args...), Timeout: time.Minute,
	})
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(strings.Join(append(res.Stdout, res.Stderr...), "\n")), nil
}
