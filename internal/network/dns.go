package network

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/sdbx/sdbx/internal/runtime"
)

// DNS proxy limits.
const (
	upstreamTimeout = 3 * time.Second
	maxInFlight     = 128
	// minAllowTTL and maxAllowTTL bound how long an address an allowed
	// domain resolved to stays in the sandbox's set.
	minAllowTTL = 5 * 60
	maxAllowTTL = 60 * 60
)

// dnsProxy answers the sandboxes' DNS queries. The dnat chain redirects
// queries to a link's gateway port 53 to its sockets (bound to ports the
// kernel picked); the query's source address tells the sandbox.
type dnsProxy struct {
	m   *Manager
	udp *net.UDPConn
	tcp *net.TCPListener

	closeOnce sync.Once
}

func listenDNS(m *Manager) (*dnsProxy, error) {
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		return nil, err
	}
	tcp, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4zero})
	if err != nil {
		udp.Close()
		return nil, err
	}
	return &dnsProxy{m: m, udp: udp, tcp: tcp}, nil
}

func (p *dnsProxy) udpPort() uint16 { return uint16(p.udp.LocalAddr().(*net.UDPAddr).Port) }
func (p *dnsProxy) tcpPort() uint16 { return uint16(p.tcp.Addr().(*net.TCPAddr).Port) }

func (p *dnsProxy) close() {
	p.closeOnce.Do(func() {
		p.udp.Close()
		p.tcp.Close()
	})
}

// serve answers queries until ctx ends; it closes the sockets and waits
// for the queries in flight.
func (p *dnsProxy) serve(ctx context.Context) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxInFlight)
	stop := context.AfterFunc(ctx, p.close)
	defer stop()
	wg.Go(func() {
		for {
			conn, err := p.tcp.AcceptTCP()
			if err != nil {
				return
			}
			select {
			case sem <- struct{}{}:
			default:
				conn.Close()
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				p.serveTCP(ctx, conn)
			})
		}
	})
	buf := make([]byte, 65535)
	for {
		n, src, err := p.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		q := append([]byte(nil), buf[:n]...)
		select {
		case sem <- struct{}{}:
		default:
			continue // overloaded: the client retries
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if resp := p.answer(ctx, q, src.Addr(), false); resp != nil {
				_, _ = p.udp.WriteToUDPAddrPort(resp, src)
			}
		})
	}
	p.close()
	wg.Wait()
	return nil
}

func (p *dnsProxy) serveTCP(ctx context.Context, conn *net.TCPConn) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	src := conn.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
	r := bufio.NewReader(conn)
	for {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		q, err := readTCPMsg(r)
		if err != nil {
			return
		}
		resp := p.answer(ctx, q, src, true)
		if resp == nil || writeTCPMsg(conn, resp) != nil {
			return
		}
	}
}

// answer returns the response to query q from src, or nil to drop it.
func (p *dnsProxy) answer(ctx context.Context, q []byte, src netip.Addr, tcp bool) []byte {
	var msg dnsmessage.Message
	if err := msg.Unpack(q); err != nil || msg.Header.Response || len(msg.Questions) != 1 {
		return nil
	}
	question := msg.Questions[0]
	sb, ok := p.m.lookup(src)
	if !ok {
		return reply(msg, dnsmessage.RCodeRefused)
	}
	name := strings.TrimSuffix(strings.ToLower(question.Name.String()), ".")
	allowlist := sb.policy.Egress == runtime.EgressAllowlist
	if allowlist && !sb.allows(name) {
		p.m.log.Debug("dns: refused a name off the allowlist", "sandbox_id", sb.id, "name", name)
		return reply(msg, dnsmessage.RCodeRefused)
	}
	// Sandboxes have no IPv6 route: an empty answer makes clients use IPv4
	// at once.
	if question.Type == dnsmessage.TypeAAAA {
		return reply(msg, dnsmessage.RCodeSuccess)
	}
	resp, err := p.forward(ctx, q, tcp)
	if err != nil {
		p.m.log.Debug("dns: upstream failed", "sandbox_id", sb.id, "name", name, "err", err)
		return reply(msg, dnsmessage.RCodeServerFailure)
	}
	if !allowlist {
		return resp
	}
	var rm dnsmessage.Message
	if err := rm.Unpack(resp); err != nil || rm.Header.ID != msg.Header.ID {
		return reply(msg, dnsmessage.RCodeServerFailure)
	}
	var addrs []netip.Addr
	ttl := uint32(minAllowTTL)
	for _, a := range rm.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			addrs = append(addrs, netip.AddrFrom4(r.A))
			ttl = max(ttl, min(a.Header.TTL, maxAllowTTL))
		}
	}
	// The addresses are let through before the sandbox learns them.
	if len(addrs) > 0 {
		if err := p.m.allowAddrs(sb.id, addrs, ttl); err != nil {
			p.m.log.Error("dns: allow resolved addresses", "sandbox_id", sb.id, "name", name, "err", err)
			return reply(msg, dnsmessage.RCodeServerFailure)
		}
	}
	return resp
}

// reply builds a response without answers to msg.
func reply(msg dnsmessage.Message, rcode dnsmessage.RCode) []byte {
	out := dnsmessage.Message{
		Header: dnsmessage.Header{
			ID: msg.Header.ID, Response: true, OpCode: msg.Header.OpCode,
			RecursionDesired: msg.Header.RecursionDesired, RecursionAvailable: true, RCode: rcode,
		},
		Questions: msg.Questions,
	}
	b, err := out.Pack()
	if err != nil {
		return nil
	}
	return b
}

// forward sends q to the upstream resolvers in turn and returns the first
// answer.
func (p *dnsProxy) forward(ctx context.Context, q []byte, tcp bool) ([]byte, error) {
	var errs []error
	for _, up := range p.m.cfg.Resolvers {
		resp, err := exchange(ctx, up, q, tcp)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func exchange(ctx context.Context, up netip.AddrPort, q []byte, tcp bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	var d net.Dialer
	network := "udp"
	if tcp {
		network = "tcp"
	}
	conn, err := d.DialContext(ctx, network, up.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if tcp {
		if err := writeTCPMsg(conn, q); err != nil {
			return nil, err
		}
		return readTCPMsg(bufio.NewReader(conn))
	}
	if _, err := conn.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		// An answer must carry the query's id (the first two bytes).
		if n >= 2 && buf[0] == q[0] && buf[1] == q[1] {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

func readTCPMsg(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func writeTCPMsg(w io.Writer, b []byte) error {
	_, err := w.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...))
	return err
}

// hostResolvers reads the nameservers of a resolv.conf.
func hostResolvers(path string) ([]netip.AddrPort, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read resolvers: %w", err)
	}
	var out []netip.AddrPort
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil {
				out = append(out, netip.AddrPortFrom(a, 53))
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no nameserver in %s", path)
	}
	return out, nil
}
