package linux

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/sdbx/sdbx/internal/network"
	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/runtime/runtimetest"
)

// newNetEnv is a testEnv whose driver has a network manager (own table,
// links and addresses). Cleanup deletes the sandboxes and then checks that
// no link or table of the manager is left.
func newNetEnv(t testing.TB) (*testEnv, *network.Manager) {
	t.Helper()
	var nm *network.Manager
	e := newTestEnv(t, withNetwork(&nm))
	return e, nm
}

// withNetwork gives the test driver a network manager of its own, stored
// in *nm, closed and checked for leftovers at the end.
func withNetwork(nm **network.Manager) envOption {
	return func(t testing.TB, data string, cfg *Config) func(*Driver) {
		// A pool of its own keeps parallel test servers from sharing routes.
		m, err := network.New(t.Context(), network.Config{Tag: network.Tag(data), CIDR: netip.MustParsePrefix("10.214.0.0/16")})
		if err != nil {
			t.Fatalf("network.New: %v", err)
		}
		*nm = m
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		cfg.Network = m
		return func(*Driver) {
			cancel()
			<-done
			if err := m.Close(); err != nil {
				t.Errorf("network Close: %v", err)
			}
			assertNoNetworkLeft(t, m)
		}
	}
}

// assertNoNetworkLeft fails when a link, a sandbox chain or the table of
// nm exists.
func assertNoNetworkLeft(t testing.TB, nm *network.Manager) {
	t.Helper()
	for _, left := range networkLeftovers(t, nm) {
		t.Errorf("left behind: %s", left)
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

// networkLeftovers lists nm's links on the host and its sandbox chains and
// sets.
func networkLeftovers(t testing.TB, nm *network.Manager) []string {
	t.Helper()
	var out []string
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	prefix := nm.LinkName("x")[:5]
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, prefix) {
			out = append(out, "link "+l.Attrs().Name)
		}
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chains {
		if ch.Table.Name == nm.Table() && strings.HasPrefix(ch.Name, "sb_") {
			out = append(out, "chain "+ch.Name)
		}
	}
	table := &nftables.Table{Family: nftables.TableFamilyINet, Name: nm.Table()}
	if sets, err := c.GetSets(table); err == nil {
		for _, s := range sets {
			if strings.HasPrefix(s.Name, "dns_") {
				out = append(out, "set "+s.Name)
			}
		}
	}
	return out
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

// gateway returns the host-side address of sandbox id's link.
func gateway(t *testing.T, nm *network.Manager, id string) netip.Addr {
	t.Helper()
	l, err := netlink.LinkByName(nm.LinkName(id))
	if err != nil {
		t.Fatalf("link of %s: %v", id, err)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil || len(addrs) == 0 {
		t.Fatalf("address of %s: %v %v", id, addrs, err)
	}
	a, _ := netip.AddrFromSlice(addrs[0].IP.To4())
	return a
}

// hostAddrs returns the host's global IPv4 addresses (not loopback).
func hostAddrs(t *testing.T) []netip.Addr {
	t.Helper()
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP.To4())
		if !ip.IsLoopback() && !strings.HasPrefix(a.Label, "s") {
			out = append(out, ip)
		}
	}
	return out
}

func TestNetworkPolicies(t *testing.T) {
	e, nm := newNetEnv(t)
	create := func(name string, n runtime.Network) string {
		id := runtimetest.NewID(t, name)
		if err := e.d.Create(t.Context(), netSpec(e, id, n)); err != nil {
			t.Fatalf("Create(%s): %v", name, err)
		}
		return id
	}
	inet := create("inet", runtime.Network{Egress: runtime.EgressInternet})
	other := create("other", runtime.Network{Egress: runtime.EgressInternet})
	allow := create("allow", runtime.Network{Egress: runtime.EgressAllowlist, Allow: []string{"registry.npmjs.org"}})
	none := create("none", runtime.Network{Egress: runtime.EgressNone})
	npm := "https://registry.npmjs.org/is-number"

	t.Run("internet reaches the npm registry", func(t *testing.T) {
		if got := probe(t, e.d, inet, "get", npm); got != "200" {
			t.Errorf("GET %s = %q, want 200", npm, got)
		}
	})
	t.Run("internet does not reach the host, private ranges, metadata or other sandboxes", func(t *testing.T) {
		gw := gateway(t, nm, inet)
		runtimetest.WantDropped(t, "the gateway's port 22", probe(t, e.d, inet, "connect", gw.String(), "22"))
		for _, a := range hostAddrs(t) {
			runtimetest.WantDropped(t, "host address "+a.String(), probe(t, e.d, inet, "connect", a.String(), "3000"))
		}
		// The host's resolver is in a private range: only the proxy may
		// talk to it. Checked before the metadata address, so that a broken
		// rule sends nothing beyond the resolver.
		got := probe(t, e.d, inet, "connect", "10.255.255.53", "53")
		runtimetest.WantDropped(t, "10.255.255.53", got)
		if strings.Contains(got, "timed out") {
			runtimetest.WantDropped(t, "169.254.169.254", probe(t, e.d, inet, "connect", "169.254.169.254", "80"))
		}
		peer := gateway(t, nm, other).Next()
		runtimetest.WantDropped(t, "another sandbox", probe(t, e.d, inet, "connect", peer.String(), "8080"))
	})
	t.Run("the host cannot open connections into a sandbox", func(t *testing.T) {
		// Nothing listens there: without the rule the sandbox's kernel
		// would refuse at once; dropped, the dial times out.
		addr := gateway(t, nm, inet).Next()
		_, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, 8080).String(), 2*time.Second)
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Errorf("dial %s:8080 from the host = %v; want a time-out", addr, err)
		}
	})
	t.Run("allowlist", func(t *testing.T) {
		// deb.debian.org's address, as the host resolves it: closed until
		// the proxy resolved an allowed name to it (on some networks every
		// registry shares one address).
		ips, err := net.DefaultResolver.LookupNetIP(t.Context(), "ip4", "deb.debian.org")
		if err != nil || len(ips) == 0 {
			t.Fatalf("resolve deb.debian.org on the host: %v %v", ips, err)
		}
		runtimetest.WantDropped(t, "deb.debian.org by address", probe(t, e.d, allow, "connect", ips[0].String(), "443"))
		if got := probe(t, e.d, allow, "resolve", "deb.debian.org"); !strings.HasPrefix(got, "ERR") {
			t.Errorf("resolve deb.debian.org = %q; want refused", got)
		}
		if got := probe(t, e.d, allow, "get", npm); got != "200" {
			t.Errorf("GET %s = %q, want 200", npm, got)
		}
	})
	t.Run("none has loopback only", func(t *testing.T) {
		if got := interfaces(t, e.d, none); got != "lo" {
			t.Errorf("interfaces = %q, want lo", got)
		}
		if got := probe(t, e.d, none, "resolve", "registry.npmjs.org"); !strings.HasPrefix(got, "ERR") {
			t.Errorf("resolve = %q; want an error", got)
		}
		if got := probe(t, e.d, none, "connect", "203.0.113.80", "443"); !strings.Contains(got, "unreachable") {
			t.Errorf("connect = %q; want network unreachable", got)
		}
	})
	t.Run("a spoofed source address is dropped", func(t *testing.T) {
		// The sandbox can't forge packets (no CAP_NET_RAW), so the test
		// gives its link a second address, as a sandbox with
		// CAP_NET_ADMIN could: the address of another sandbox.
		spoofed := gateway(t, nm, other).Next()
		addSandboxAddr(t, e.d, inet, spoofed)
		res, err := runtimetest.Exec(t.Context(), e.d, inet, nil, "python3", "-c",
			"import socket\ns=socket.socket()\ns.settimeout(3)\ns.bind(('"+spoofed.String()+"',0))\n"+
				"try:\n  s.connect(('registry.npmjs.org',443)); print('OK')\nexcept Exception as e: print('ERR', e)")
		if err != nil {
			t.Fatal(err)
		}
		runtimetest.WantDropped(t, "the registry from a spoofed address", res.Stdout)
	})
	t.Run("the sandbox cannot change its network", func(t *testing.T) {
		for _, cmd := range []string{
			"ip route replace default dev eth0",
			"ip addr add 10.214.255.2/32 dev eth0",
			"ip link set eth0 down",
			"nft list ruleset",
		} {
			res, err := runtimetest.Exec(t.Context(), e.d, inet, nil, "sh", "-c", cmd)
			if err != nil {
				t.Fatal(err)
			}
			if res.Code == 0 {
				t.Errorf("%q succeeded inside the sandbox: %s", cmd, res.Stdout)
			}
		}
		if got := probe(t, e.d, inet, "get", npm); got != "200" {
			t.Errorf("after the attempts, GET = %q, want 200", got)
		}
	})
}

func TestNetworkSetNetwork(t *testing.T) {
	e, nm := newNetEnv(t)
	id := runtimetest.NewID(t, "set")
	if err := e.d.Create(t.Context(), netSpec(e, id, runtime.Network{Egress: runtime.EgressInternet})); err != nil {
		t.Fatal(err)
	}
	set := func(n runtime.Network) {
		t.Helper()
		if err := e.d.SetNetwork(t.Context(), id, n); err != nil {
			t.Fatalf("SetNetwork(%+v): %v", n, err)
		}
	}
	set(runtime.Network{Egress: runtime.EgressAllowlist, Allow: []string{"registry.npmjs.org"}})
	addr := probe(t, e.d, id, "resolve", "registry.npmjs.org")
	if strings.HasPrefix(addr, "ERR") {
		t.Fatalf("allowlist: resolve registry.npmjs.org = %q", addr)
	}
	if got := probe(t, e.d, id, "connect", addr, "443"); got != "OK" {
		t.Errorf("allowlist: connect to the resolved registry = %q", got)
	}
	// Another allowlist forgets what the first one resolved.
	set(runtime.Network{Egress: runtime.EgressAllowlist, Allow: []string{"*.debian.org"}})
	if got := probe(t, e.d, id, "resolve", "registry.npmjs.org"); !strings.HasPrefix(got, "ERR") {
		t.Errorf("allowlist: resolve registry.npmjs.org = %q; want refused", got)
	}
	runtimetest.WantDropped(t, "the address the previous allowlist resolved", probe(t, e.d, id, "connect", addr, "443"))
	set(runtime.Network{Egress: runtime.EgressNone})
	if got := interfaces(t, e.d, id); got != "lo" {
		t.Errorf("none: interfaces = %q, want lo", got)
	}
	if left := networkLeftovers(t, nm); len(left) != 0 {
		t.Errorf("none: %v left", left)
	}
	set(runtime.Network{Egress: runtime.EgressInternet})
	if got := probe(t, e.d, id, "get", "https://registry.npmjs.org/is-number"); got != "200" {
		t.Errorf("internet again: GET = %q, want 200", got)
	}
	// A restart keeps the policy.
	if err := e.d.Stop(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if left := networkLeftovers(t, nm); len(left) != 0 {
		t.Errorf("stopped: %v left", left)
	}
	if err := e.d.Start(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if got := probe(t, e.d, id, "resolve", "registry.npmjs.org"); strings.HasPrefix(got, "ERR") {
		t.Errorf("restarted: resolve = %q", got)
	}
}

// interfaces lists the sandbox's network interfaces.
func interfaces(t *testing.T, d *Driver, id string) string {
	t.Helper()
	out := runtimetest.MustExec(t, d, id, "python3", "-c", "import socket; print(' '.join(sorted(n for _, n in socket.if_nameindex())))")
	return strings.TrimSpace(out)
}

// addSandboxAddr adds addr/32 to the sandbox's eth0 from the host.
func addSandboxAddr(t *testing.T, d *Driver, id string, addr netip.Addr) {
	t.Helper()
	pid, err := readPid(d.layout(id).pidFile())
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
}
