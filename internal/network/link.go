package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// sandboxIface is the name of the link inside the sandbox.
const sandboxIface = "eth0"

// linkGateway returns the host-side address of link name, if the link
// exists.
func linkGateway(name string) (netip.Addr, bool, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return netip.Addr{}, false, nil
		}
		return netip.Addr{}, false, fmt.Errorf("find link %s: %w", name, err)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("addresses of %s: %w", name, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
			return ip, true, nil
		}
	}
	// A link without an address is a leftover of a failed setup.
	if err := netlink.LinkDel(l); err != nil {
		return netip.Addr{}, false, fmt.Errorf("delete half-made link %s: %w", name, err)
	}
	return netip.Addr{}, false, nil
}

// allocate returns the host-side address (.1) of the first /30 of the
// CIDR that no interface of the host uses (this server's links, and those
// of other servers with an overlapping pool).
func (m *Manager) allocate() (netip.Addr, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list host addresses: %v: %w", err, errdefs.ErrInternal)
	}
	base := m.cfg.CIDR.Addr().As4()
	baseN := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	slots := uint32(1) << (32 - m.cfg.CIDR.Bits() - 2)
	used := make(map[uint32]bool, len(addrs))
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok || !m.cfg.CIDR.Contains(ip) {
			continue
		}
		b := ip.As4()
		n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		used[(n-baseN)/4] = true
	}
	for s := range slots {
		if !used[s] {
			n := baseN + s*4 + 1
			return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address in %s (%d sandbox links): %w", m.cfg.CIDR, slots, errdefs.ErrUnavailable)
}

// createLink creates sb's veth pair: the host side with sb.gw/30, the
// peer as eth0 in the network namespace of process pid with sb.addr/30 and
// a default route via sb.gw.
func (m *Manager) createLink(pid int, sb *sandboxNet) (err error) {
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return fmt.Errorf("open network namespace of %d: %w", pid, err)
	}
	defer ns.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: sb.link, MTU: m.mtu},
		PeerName:      sandboxIface,
		PeerNamespace: netlink.NsFd(int(ns)),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s: %w", sb.link, err)
	}
	defer func() {
		if err != nil {
			_ = deleteLink(sb.link)
		}
	}()
	// No IPv6 on the host side: the sandbox's link-local traffic goes
	// nowhere (the rules drop it too).
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+sb.link+"/disable_ipv6", []byte("1\n"), 0o644)
	host, err := netlink.LinkByName(sb.link)
	if err != nil {
		return fmt.Errorf("find %s: %w", sb.link, err)
	}
	if err := netlink.AddrAdd(host, &netlink.Addr{IPNet: ipNet(sb.gw, 30)}); err != nil {
		return fmt.Errorf("address %s: %w", sb.link, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("up %s: %w", sb.link, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in sandbox namespace: %w", err)
	}
	defer h.Close()
	peer, err := h.LinkByName(sandboxIface)
	if err != nil {
		return fmt.Errorf("find sandbox side: %w", err)
	}
	if err := h.AddrAdd(peer, &netlink.Addr{IPNet: ipNet(sb.addr, 30)}); err != nil {
		return fmt.Errorf("address sandbox side: %w", err)
	}
	if err := h.LinkSetUp(peer); err != nil {
		return fmt.Errorf("up sandbox side: %w", err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: peer.Attrs().Index, Gw: sb.gw.AsSlice()}); err != nil {
		return fmt.Errorf("default route: %w", err)
	}
	return nil
}

// deleteLink deletes link name (and so its peer); a missing link is fine.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find link %s: %w", name, err)
	}
	// The kernel removes a link by itself when the sandbox's namespace
	// goes (asynchronously, after its last process died): gone is fine.
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// hostMTU is the MTU of the link of the host's default route (1500 when
// there is none).
func hostMTU() int {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return 1500
	}
	for _, r := range routes {
		if r.Dst != nil && r.Dst.IP.To4() != nil && !r.Dst.IP.Equal(net.IPv4zero) {
			continue
		}
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil && l.Attrs().MTU > 0 {
			return l.Attrs().MTU
		}
	}
	return 1500
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, 32)}
}
