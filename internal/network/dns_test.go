package network

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/sdbx/sdbx/internal/runtime"
)

// fakeUpstream answers every A query with 203.0.113.80 until the test ends.
func fakeUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, src, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var q dnsmessage.Message
			if q.Unpack(buf[:n]) != nil {
				continue
			}
			r := dnsmessage.Message{Header: dnsmessage.Header{ID: q.ID, Response: true}, Questions: q.Questions}
			r.Answers = []dnsmessage.Resource{{
				Header: dnsmessage.ResourceHeader{Name: q.Questions[0].Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 30},
				Body:   &dnsmessage.AResource{A: [4]byte{203, 0, 113, 80}},
			}}
			b, _ := r.Pack()
			conn.WriteToUDPAddrPort(b, src)
		}
	}()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func query(t *testing.T, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	q := dnsmessage.Message{Header: dnsmessage.Header{ID: 4711, RecursionDesired: true}, Questions: []dnsmessage.Question{
		{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET},
	}}
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDNSProxyAnswers(t *testing.T) {
	m := &Manager{
		cfg: Config{Resolvers: []netip.AddrPort{fakeUpstream(t)}}, log: slog.New(slog.DiscardHandler),
		byID: map[string]*sandboxNet{}, byAddr: map[netip.Addr]*sandboxNet{},
	}
	m.remember(&sandboxNet{id: "inet", addr: netip.MustParseAddr("10.9.0.2"), policy: runtime.Network{Egress: runtime.EgressInternet}})
	m.remember(&sandboxNet{id: "allow", addr: netip.MustParseAddr("10.9.0.6"),
		policy: runtime.Network{Egress: runtime.EgressAllowlist}, domains: []string{"registry.npmjs.org"}})
	p := &dnsProxy{m: m}
	for _, tc := range []struct {
		name, src, q string
		typ          dnsmessage.Type
		rcode        dnsmessage.RCode
		answers      int
	}{
		{"unknown source", "10.9.0.10", "registry.npmjs.org.", dnsmessage.TypeA, dnsmessage.RCodeRefused, 0},
		{"internet forwards", "10.9.0.2", "deb.debian.org.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, 1},
		{"no IPv6", "10.9.0.2", "deb.debian.org.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, 0},
		{"allowlist refuses other names", "10.9.0.6", "deb.debian.org.", dnsmessage.TypeA, dnsmessage.RCodeRefused, 0},
		{"allowlist refuses a suffix trick", "10.9.0.6", "registry.npmjs.org.evil.example.", dnsmessage.TypeA, dnsmessage.RCodeRefused, 0},
		{"allowlist: AAAA of an allowed name is empty", "10.9.0.6", "Registry.NPMJS.org.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := p.answer(t.Context(), query(t, tc.q, tc.typ), netip.MustParseAddr(tc.src), false)
			var r dnsmessage.Message
			if err := r.Unpack(resp); err != nil {
				t.Fatalf("unpack answer: %v", err)
			}
			if r.ID != 4711 || !r.Response || r.RCode != tc.rcode || len(r.Answers) != tc.answers {
				t.Errorf("answer = id %d rcode %v, %d answers; want rcode %v, %d answers", r.ID, r.RCode, len(r.Answers), tc.rcode, tc.answers)
			}
		})
	}
	if resp := p.answer(t.Context(), []byte("garbage"), netip.MustParseAddr("10.9.0.2"), false); resp != nil {
		t.Errorf("garbage got an answer")
	}
}

func TestAllows(t *testing.T) {
	sb := sandboxNet{domains: []string{"registry.npmjs.org", "*.example.org"}}
	for name, want := range map[string]bool{
		"registry.npmjs.org": true, "npmjs.org": false, "x.registry.npmjs.org": false,
		"a.example.org": true, "a.b.example.org": true, "example.org": false, "badexample.org": false,
		"example.org.evil.test": false,
	} {
		if got := sb.allows(name); got != want {
			t.Errorf("allows(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestHostResolvers(t *testing.T) {
	f := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(f, []byte("# c\nsearch x\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:1\n"), 0o644)
	got, err := hostResolvers(f)
	want := []netip.AddrPort{netip.MustParseAddrPort("10.255.255.53:53"), netip.MustParseAddrPort("[fe80::1%eth0]:53")}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("hostResolvers = %v, %v; want %v", got, err, want)
	}
	os.WriteFile(f, []byte("search x\n"), 0o644)
	if _, err := hostResolvers(f); err == nil {
		t.Error("a resolv.conf without nameservers was accepted")
	}
}
