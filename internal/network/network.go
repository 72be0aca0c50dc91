// Package network gives sandboxes their egress: one veth pair per sandbox
// between the host and the sandbox's network namespace, nftables rules
// that enforce the sandbox's policy on the host side (where the sandbox's
// code, which has no CAP_NET_ADMIN and no access to the host's namespace,
// cannot change them), masquerading to the outside, and a DNS proxy that
// answers the sandboxes' queries and learns the addresses their
// allowlists resolve to.
//
// Everything of one server lives in the nftables table sdbx_<tag> (tag:
// the hash of its data directory), its links are named s<tag[:4]><hash of
// the sandbox id>, and their addresses are /30 blocks of Config.CIDR
// (host side .1, sandbox side .2). Links and rules live in the kernel, so
// they outlive the server like the sandboxes do; a restarted server
// re-applies each adopted sandbox's policy (Apply is idempotent).
// docs/runtime-linux.md describes the rules.
package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
)

// DefaultCIDR is the pool of sandbox link addresses when Config.CIDR is
// not set.
const DefaultCIDR = "10.213.0.0/16"

// lockPath serializes address allocation between sdbx servers on one
// host (each sees the others' links as used addresses).
const lockPath = "/run/sdbx-network.lock"

// Config configures a Manager.
type Config struct {
	// Tag names this server's table and links: 8 hex digits, unique per
	// server on the host (the hash of its data directory).
	Tag string
	// CIDR is the IPv4 pool the sandboxes' /30 links come from.
	// Default DefaultCIDR.
	CIDR netip.Prefix
	// Resolvers are the upstream DNS servers (ip:port). Default: the
	// nameservers of the host's /etc/resolv.conf.
	Resolvers []netip.AddrPort
	// Logger receives events. Default: discard.
	Logger *slog.Logger
}

// Manager wires sandboxes' network namespaces to the host. Its methods
// are safe for concurrent use.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	table  string
	prefix string // link name prefix of this server
	mtu    int
	dns    *dnsProxy

	// mu serializes changes of links and rules.
	mu sync.Mutex
	// stateMu guards the maps, which the DNS proxy reads (never waiting
	// for a link change).
	stateMu sync.Mutex
	byID    map[string]*sandboxNet
	byAddr  map[netip.Addr]*sandboxNet
}

// sandboxNet is what the manager knows of one sandbox's link.
type sandboxNet struct {
	id      string
	link    string
	gw      netip.Addr // host side
	addr    netip.Addr // sandbox side
	policy  runtime.Network
	domains []string // allowlist entries that are domains
	cidrs   []netip.Prefix
	// flushDNS empties the dns set when the rules are written.
	flushDNS bool
}

// New checks cfg, turns on IPv4 forwarding, sets up this server's table
// (keeping the rules of sandboxes that outlived an earlier server) and
// opens the DNS proxy's sockets. Run serves the proxy; Close releases it.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if len(cfg.Tag) != 8 || strings.Trim(cfg.Tag, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("network: tag %q: must be 8 lower-case hex digits: %w", cfg.Tag, errdefs.ErrInvalidArgument)
	}
	if !cfg.CIDR.IsValid() {
		cfg.CIDR = netip.MustParsePrefix(DefaultCIDR)
	}
	if !cfg.CIDR.Addr().Is4() || cfg.CIDR.Bits() > 29 {
		return nil, fmt.Errorf("network: cidr %s: must be an IPv4 prefix of /29 or wider: %w", cfg.CIDR, errdefs.ErrInvalidArgument)
	}
	cfg.CIDR = cfg.CIDR.Masked()
	if len(cfg.Resolvers) == 0 {
		rs, err := hostResolvers("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("network: %v: %w", err, errdefs.ErrUnavailable)
		}
		cfg.Resolvers = rs
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		cfg: cfg, log: log, table: "sdbx_" + cfg.Tag, prefix: "s" + cfg.Tag[:4],
		mtu: hostMTU(), byID: map[string]*sandboxNet{}, byAddr: map[netip.Addr]*sandboxNet{},
	}
	if err := enableForwarding(); err != nil {
		return nil, fmt.Errorf("network: %v: %w", err, errdefs.ErrUnavailable)
	}
	dns, err := listenDNS(m)
	if err != nil {
		return nil, fmt.Errorf("network: dns proxy: %v: %w", err, errdefs.ErrUnavailable)
	}
	m.dns = dns
	if err := m.setupTable(); err != nil {
		dns.close()
		return nil, fmt.Errorf("network: nftables table %s: %v: %w", m.table, err, errdefs.ErrUnavailable)
	}
	return m, nil
}

// Table is the name of this server's nftables table (family inet).
func (m *Manager) Table() string { return m.table }

// LinkName is the host-side name of sandbox id's link.
func (m *Manager) LinkName(id string) string {
	sum := sha256.Sum256([]byte(m.cfg.Tag + "/" + id))
	return m.prefix + hex.EncodeToString(sum[:5])
}

// Run serves the DNS proxy until ctx is cancelled.
func (m *Manager) Run(ctx context.Context) error { return m.dns.serve(ctx) }

// Close closes the DNS proxy's sockets and, when no sandbox has rules
// left, removes the table (sandboxes that outlive the server keep theirs).
func (m *Manager) Close() error {
	m.dns.close()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropTableIfUnused()
}

// Apply makes sandbox id, whose init runs as host process pid, have policy
// n: for EgressNone it removes the sandbox's link and rules; otherwise it
// writes the sandbox's rules and, if the sandbox has no link yet, creates
// it. It returns the sandbox's gateway (its nameserver), invalid for
// EgressNone. n must be normalized (runtime.NormalizeNetwork).
func (m *Manager) Apply(ctx context.Context, id string, pid int, n runtime.Network) (netip.Addr, error) {
	if n.Egress == "" || n.Egress == runtime.EgressNone {
		return netip.Addr{}, m.Release(ctx, id)
	}
	if _, err := runtime.NormalizeNetwork("network", n); err != nil {
		return netip.Addr{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sb := &sandboxNet{id: id, link: m.LinkName(id), policy: n}
	for _, a := range n.Allow {
		if p, err := netip.ParsePrefix(a); err == nil {
			sb.cidrs = append(sb.cidrs, p)
		} else {
			sb.domains = append(sb.domains, a)
		}
	}
	// Addresses learnt for another allowlist go; after a restart (no
	// memory of the sandbox) the recorded policy is the same one, and what
	// the sandbox resolved before stays allowed until it times out.
	m.stateMu.Lock()
	old := m.byID[id]
	m.stateMu.Unlock()
	sb.flushDNS = old != nil && !slices.Equal(old.policy.Allow, n.Allow)
	gw, ok, err := linkGateway(sb.link)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("sandbox %s: network: %v: %w", id, err, errdefs.ErrInternal)
	}
	if ok {
		sb.gw, sb.addr = gw, gw.Next()
		if err := m.writeRules(sb); err != nil {
			return netip.Addr{}, fmt.Errorf("sandbox %s: network rules: %v: %w", id, err, errdefs.ErrInternal)
		}
		m.remember(sb)
		return sb.gw, nil
	}
	unlock, err := lockFile(ctx, lockPath)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("sandbox %s: network: %v: %w", id, err, errdefs.ErrUnavailable)
	}
	defer unlock()
	if sb.gw, err = m.allocate(); err != nil {
		return netip.Addr{}, fmt.Errorf("sandbox %s: network: %w", id, err)
	}
	sb.addr = sb.gw.Next()
	// Rules first: a link without its chain is dropped by the base chain,
	// never left open.
	if err := m.writeRules(sb); err != nil {
		return netip.Addr{}, fmt.Errorf("sandbox %s: network rules: %v: %w", id, err, errdefs.ErrInternal)
	}
	if err := m.createLink(pid, sb); err != nil {
		if rerr := m.release(id); rerr != nil {
			m.log.Error("clean up network after failed setup", "sandbox_id", id, "err", rerr)
		}
		return netip.Addr{}, fmt.Errorf("sandbox %s: network link: %v: %w", id, err, errdefs.ErrInternal)
	}
	m.remember(sb)
	return sb.gw, nil
}

func (m *Manager) remember(sb *sandboxNet) {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	if old := m.byID[sb.id]; old != nil {
		delete(m.byAddr, old.addr)
	}
	m.byID[sb.id] = sb
	m.byAddr[sb.addr] = sb
}

// Release removes sandbox id's link and rules; whatever is already gone
// is skipped.
func (m *Manager) Release(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.release(id); err != nil {
		return fmt.Errorf("sandbox %s: release network: %v: %w", id, err, errdefs.ErrInternal)
	}
	return nil
}

func (m *Manager) release(id string) error {
	m.stateMu.Lock()
	if old := m.byID[id]; old != nil {
		delete(m.byAddr, old.addr)
		delete(m.byID, id)
	}
	m.stateMu.Unlock()
	if err := deleteLink(m.LinkName(id)); err != nil {
		return err
	}
	return m.removeRules(id, m.LinkName(id))
}

// lookup returns the sandbox whose link address is addr.
func (m *Manager) lookup(addr netip.Addr) (sandboxNet, bool) {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	sb, ok := m.byAddr[addr.Unmap()]
	if !ok {
		return sandboxNet{}, false
	}
	return *sb, true
}

// allows reports whether name (lower case, no trailing dot) matches one of
// the sandbox's allowed domains.
func (sb sandboxNet) allows(name string) bool {
	for _, d := range sb.domains {
		if rest, ok := strings.CutPrefix(d, "*."); ok {
			if strings.HasSuffix(name, "."+rest) {
				return true
			}
		} else if name == d {
			return true
		}
	}
	return false
}

// enableForwarding turns on net.ipv4.ip_forward (host-wide), without which
// nothing leaves a sandbox's link.
func enableForwarding() error {
	const p = "/proc/sys/net/ipv4/ip_forward"
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	if strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable ip_forward: %w", err)
	}
	return nil
}

// lockFile takes an exclusive flock on path, polling until ctx ends (the
// lock is held for milliseconds).
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for %s: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}

// Tag is the 8-hex-digit name of the server whose data directory is
// dataDir: its nftables table is sdbx_<tag>, its cgroup sdbx-<tag>.
func Tag(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return hex.EncodeToString(sum[:4])
}
