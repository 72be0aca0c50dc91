package linux

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
)

// checkNetwork normalizes a Spec's network and refuses egress this driver
// can't give.
func (d *Driver) checkNetwork(n runtime.Network) (runtime.Network, error) {
	n, err := runtime.NormalizeNetwork("network", n)
	if err != nil {
		return n, err
	}
	if n.Egress == "" {
		n.Egress = runtime.EgressNone
	}
	if n.Egress != runtime.EgressNone && d.cfg.Network == nil {
		return n, fmt.Errorf("network.egress %q: this runtime has no network manager (only none): %w", n.Egress, errdefs.ErrInvalidArgument)
	}
	return n, nil
}

// applyNetwork gives the sandbox whose init is pid its policy and writes
// the resolv.conf bound into it.
func (d *Driver) applyNetwork(ctx context.Context, id string, pid int, l layout, n runtime.Network) error {
	if d.cfg.Network == nil {
		return nil
	}
	gw, err := d.cfg.Network.Apply(ctx, id, pid, n)
	if err != nil {
		return err
	}
	conf := "# egress none: this sandbox has no network\n"
	if gw.IsValid() {
		conf = "nameserver " + gw.String() + "\noptions timeout:2 attempts:2\n"
	}
	// Rewritten in place: the sandbox's bind mount holds this inode.
	if err := os.WriteFile(l.resolvConf(), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("sandbox %s: write resolv.conf: %v: %w", id, err, errdefs.ErrInternal)
	}
	return nil
}

func (d *Driver) releaseNetwork(ctx context.Context, id string) error {
	if d.cfg.Network == nil {
		return nil
	}
	return d.cfg.Network.Release(ctx, id)
}

// SetNetwork implements runtime.NetworkSetter. The new policy is kept in
// the sandbox's spec, so a restart (Start) applies it too.
func (d *Driver) SetNetwork(ctx context.Context, id string, n runtime.Network) error {
	if err := checkID(id); err != nil {
		return err
	}
	n, err := d.checkNetwork(n)
	if err != nil {
		return err
	}
	defer d.locks.lock(id)()
	l, spec, err := d.sandboxSpec(id)
	if err != nil {
		return err
	}
	if d.running(id) {
		pid, err := readPid(l.pidFile())
		if err != nil {
			return fmt.Errorf("sandbox %s: %v: %w", id, err, errdefs.ErrInternal)
		}
		if err := d.applyNetwork(ctx, id, pid, l, n); err != nil {
			return err
		}
	}
	spec.Network = n
	if err := l.prepare(spec); err != nil {
		return fmt.Errorf("sandbox %s: %v: %w", id, err, errdefs.ErrInternal)
	}
	return nil
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file holds %q", b)
	}
	return pid, nil
}
