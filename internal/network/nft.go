package network

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/runtime"
)

// The table of one server (family inet):
//
//	map links  ifname → jump sb_<id>          one element per sandbox link
//	chain pre  filter, prerouting, mangle      iifname vmap @links; iifname "s<tag4>*" drop
//	chain dnat nat, prerouting, dstnat         DNS to a link's gateway → the proxy's ports
//	chain snat nat, postrouting, srcnat        from the CIDR out of the host → masquerade
//	chain fwd, out  filter, forward / output   nothing opens a connection into a link
//	chain sb_<id>                              the sandbox's policy (see writeRules)
//	set dns_<id>  ipv4_addr, timeout           addresses its allowed domains resolved to
const (
	linksMap  = "links"
	chainPre  = "pre"
	chainDNAT = "dnat"
	chainSNAT = "snat"
	chainFwd  = "fwd"
	chainOut  = "out"
)

// blockedNets are never reachable with egress internet: "this" network,
// private ranges, shared address space (CGNAT), loopback, link-local (cloud
// metadata), multicast and reserved (with broadcast). The host's own
// addresses are matched apart (fib daddr type local), and so is the
// sandbox CIDR.
func blockedNets() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("224.0.0.0/4"),
		netip.MustParsePrefix("240.0.0.0/4"),
	}
}

func chainName(id string) string  { return "sb_" + id }
func dnsSetName(id string) string { return "dns_" + id }

func (m *Manager) tableRef() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: m.table}
}

func (m *Manager) linksSet(t *nftables.Table) *nftables.Set {
	return &nftables.Set{Table: t, Name: linksMap, IsMap: true, KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict}
}

// setupTable creates the table and its base chains, or rewrites the base
// chains of a table an earlier server left (the proxy's ports changed);
// the sandboxes' chains and map elements are kept.
func (m *Manager) setupTable() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := c.AddTable(m.tableRef())
	links := m.linksSet(t)
	if err := c.AddSet(links, nil); err != nil {
		return err
	}
	accept := nftables.ChainPolicyAccept
	pre := c.AddChain(&nftables.Chain{Name: chainPre, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle, Policy: &accept})
	dnat := c.AddChain(&nftables.Chain{Name: chainDNAT, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	snat := c.AddChain(&nftables.Chain{Name: chainSNAT, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	fwd := c.AddChain(&nftables.Chain{Name: chainFwd, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	out := c.AddChain(&nftables.Chain{Name: chainOut, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	for _, ch := range []*nftables.Chain{pre, dnat, snat, fwd, out} {
		c.FlushChain(ch)
	}
	// Sandboxes serve no one directly (ports go through the agent): only
	// replies enter a link, from the host or from elsewhere.
	for _, ch := range []*nftables.Chain{fwd, out} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(m.prefix)},
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	prefix := []byte(m.prefix)
	// Packets of a link go through the sandbox's chain, which ends in a
	// verdict; a link without a chain (being set up or torn down) gets
	// nothing through.
	c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: links.Name, SetID: links.ID},
	}})
	c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: prefix},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	// DNS to the gateway (the only local address a sandbox's chain lets
	// through) goes to the proxy.
	for _, p := range []struct {
		proto byte
		port  uint16
	}{{unix.IPPROTO_UDP, m.dns.udpPort()}, {unix.IPPROTO_TCP, m.dns.tcpPort()}} {
		c.AddRule(&nftables.Rule{Table: t, Chain: dnat, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: prefix},
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p.proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(53)},
			&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(p.port)},
			&expr.Redir{RegisterProtoMin: 1},
		}})
	}
	snatExprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: prefix},
	}
	snatExprs = append(snatExprs, matchNet(12, m.cfg.CIDR)...)
	c.AddRule(&nftables.Rule{Table: t, Chain: snat, Exprs: append(snatExprs, &expr.Masq{})})
	return c.Flush()
}

// writeRules (re)writes sb's chain and points its link at it, in one
// transaction.
func (m *Manager) writeRules(sb *sandboxNet) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := m.tableRef()
	dnsSet := &nftables.Set{Table: t, Name: dnsSetName(sb.id), KeyType: nftables.TypeIPAddr, HasTimeout: true}
	hasDNS, err := setExists(c, t, dnsSet.Name)
	if err != nil {
		return err
	}
	ch := c.AddChain(&nftables.Chain{Name: chainName(sb.id), Table: t})
	c.FlushChain(ch)
	allowlist := sb.policy.Egress == runtime.EgressAllowlist
	if allowlist && !hasDNS {
		if err := c.AddSet(dnsSet, nil); err != nil {
			return err
		}
	}
	if allowlist && hasDNS && sb.flushDNS {
		c.FlushSet(dnsSet)
	}
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	rule := func(exprs ...expr.Any) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}
	// IPv4 only, and only from the sandbox's own address (anti-spoofing).
	rule(&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}}, drop)
	rule(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: sb.addr.AsSlice()}, drop)
	// Replies of allowed connections.
	rule(&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)}, accept)
	// DNS to the gateway (redirected to the proxy by chain dnat).
	for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		rule(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: sb.gw.AsSlice()},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(53)}, accept)
	}
	// Nothing else of the host: none of its addresses (the server's port,
	// the gateway's other ports, every other interface).
	rule(&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)}, drop)
	if allowlist {
		for _, p := range sb.cidrs {
			rule(append(matchNet(16, p), accept)...)
		}
		rule(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: dnsSet.Name, SetID: dnsSet.ID}, accept)
		rule(drop)
	} else {
		for _, p := range append(blockedNets(), m.cfg.CIDR) {
			rule(append(matchNet(16, p), drop)...)
		}
		rule(accept)
	}
	if !allowlist && hasDNS {
		c.DelSet(dnsSet)
	}
	links := m.linksSet(t)
	if err := c.SetAddElements(links, []nftables.SetElement{{
		Key: ifname(sb.link), VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: ch.Name},
	}}); err != nil {
		return err
	}
	return c.Flush()
}

// removeRules deletes sandbox id's map element, chain and set, whichever
// exist.
func (m *Manager) removeRules(id, link string) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := m.tableRef()
	chains, err := m.chains(c)
	if err != nil {
		return err
	}
	if len(chains) == 0 {
		return nil // no table
	}
	links := m.linksSet(t)
	elems, err := c.GetSetElements(links)
	if err != nil {
		return fmt.Errorf("list %s: %w", linksMap, err)
	}
	key := ifname(link)
	for _, e := range elems {
		if string(e.Key) == string(key) {
			if err := c.SetDeleteElements(links, []nftables.SetElement{{Key: key}}); err != nil {
				return err
			}
		}
	}
	if chains[chainName(id)] {
		ch := &nftables.Chain{Name: chainName(id), Table: t}
		c.FlushChain(ch)
		c.DelChain(ch)
	}
	has, err := setExists(c, t, dnsSetName(id))
	if err != nil {
		return err
	}
	if has {
		c.DelSet(&nftables.Set{Table: t, Name: dnsSetName(id)})
	}
	return c.Flush()
}

// chains returns the names of the chains of this server's table (none
// when there is no table).
func (m *Manager) chains(c *nftables.Conn) (map[string]bool, error) {
	all, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	out := map[string]bool{}
	for _, ch := range all {
		if ch.Table.Name == m.table {
			out[ch.Name] = true
		}
	}
	return out, nil
}

// allowAddrs adds addresses to a sandbox's dns set for timeout seconds.
func (m *Manager) allowAddrs(id string, addrs []netip.Addr, timeout uint32) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	set := &nftables.Set{Table: m.tableRef(), Name: dnsSetName(id), KeyType: nftables.TypeIPAddr, HasTimeout: true}
	var elems []nftables.SetElement
	for _, a := range addrs {
		elems = append(elems, nftables.SetElement{Key: a.AsSlice(), Timeout: secondsDuration(timeout)})
	}
	if err := c.SetAddElements(set, elems); err != nil {
		return err
	}
	return c.Flush()
}

// dropTableIfUnused deletes the table when no sandbox chain is left.
func (m *Manager) dropTableIfUnused() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	chains, err := m.chains(c)
	if err != nil || len(chains) == 0 {
		return err
	}
	for name := range chains {
		if strings.HasPrefix(name, "sb_") {
			return nil
		}
	}
	c.DelTable(m.tableRef())
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete table %s: %w", m.table, err)
	}
	return nil
}

// matchNet matches the IPv4 address at network header offset off (12
// source, 16 destination) against p.
func matchNet(off uint32, p netip.Prefix) []expr.Any {
	mask := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits()))
	if p.Bits() == 0 {
		mask = []byte{0, 0, 0, 0}
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

// ifname is an interface name as nftables keys hold it (16 bytes, NUL
// padded).
func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

func setExists(c *nftables.Conn, t *nftables.Table, name string) (bool, error) {
	sets, err := c.GetSets(t)
	if err != nil {
		return false, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		if s.Name == name {
			return true, nil
		}
	}
	return false, nil
}

func secondsDuration(s uint32) time.Duration { return time.Duration(s) * time.Second }
