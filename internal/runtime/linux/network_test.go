package linux

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/sdbx/sdbx/internal/network"
	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/runtime/runtimetest"
)

// newNetEnv is a testEnv whose driver has a network manager (own table,
// links and addresses). Cleanup deletes the sandboxes and then checks that
// no link or table of the manager is left.
func newNetEnv(t *testing.T) (*testEnv, *network.Manager) {
	t.Helper()
	runtimetest.RequireRoot(t)
	data := t.TempDir()
	// A pool of its own keeps parallel test servers from sharing routes.
	nm, err := network.New(t.Context(), network.Config{Tag: network.Tag(data), CIDR: netip.MustParsePrefix("10.214.0.0/16")})
	if err != nil {
		t.Fatalf("network.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nm.Run(ctx) }()
	d, err := New(Config{
		StateDir:     filepath.Join(data, "sandboxes"),
		Exe:          runtimetest.BuildBinary(t),
		CgroupParent: runtimetest.NewID(t, "sdbx-test"),
		Network:      nm,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		removeAll(t, d)
		cancel()
		<-done
		if err := nm.Close(); err != nil {
			t.Errorf("network Close: %v", err)
		}
		assertNoNetworkLeft(t, nm)
	})
	return &testEnv{d: d, etc: runtimetest.MinimalEtc(t), data: data}, nm
}

// assertNoNetworkLeft fails when a link or the table of nm exists.
func assertNoNetworkLeft(t testing.TB, nm *network.Manager) {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	prefix := nm.LinkName("x")[:5]
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, prefix) {
			t.Errorf("link %s left on the host", l.Attrs().Name)
		}
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == nm.Table() {
			t.Errorf("nftables table %s left", tb.Name)
		}
	}
}

func netSpec(e *testEnv, id string, n runtime.Network) runtime.Spec {
	spec := runtimetest.HostSpec(id, e.etc)
	spec.Network = n
	return spec
}

// probe runs runtimetest.NetProbe in the sandbox.
func probe(t *testing.T, d runtime.Driver, id string, args ...string) string {
	t.Helper()
	res, err := runtimetest.Exec(t.Context(), d, id, nil, append([]string{"python3", "-c", runtimetest.NetProbe}, args...)...)
	if err != nil {
		t.Fatalf("probe %v: %v", args, err)
	}
	return strings.TrimSpace(res.Stdout + res.Stderr)
}

func TestNetworkInternet(t *testing.T) {
	e, _ := newNetEnv(t)
	id := runtimetest.NewID(t, "inet")
	if err := e.d.Create(t.Context(), netSpec(e, id, runtime.Network{Egress: runtime.EgressInternet})); err != nil {
		t.Fatal(err)
	}
	if got := probe(t, e.d, id, "get", "https://registry.npmjs.org/is-number"); got != "200" {
		t.Errorf("GET registry.npmjs.org = %q, want 200", got)
	}
}
