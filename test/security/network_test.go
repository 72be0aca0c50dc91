package security

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/runtime/runtimetest"
	sdbx "github.com/sdbx/sdbx/sdk/go"
	"github.com/sdbx/sdbx/test/e2e"
)

// probe runs e2e.NetProbe in the sandbox.
func (s *suite) probe(t *testing.T, id string, args ...string) string {
	t.Helper()
	out, err := e2e.NetProbe(t.Context(), s.c, id, args...)
	if err != nil {
		t.Fatalf("probe %v: %v", args, err)
	}
	return out
}

// TestEgress probes the egress policies through the API: the server's
// default (internet), allowlist and none. Only the package registries and
// addresses the rules must drop are contacted.
func TestEgress(t *testing.T) {
	s := start(t)
	inet := s.sandbox(t, sdbx.Network{})
	sb, err := s.c.GetSandbox(t.Context(), inet)
	if err != nil {
		t.Fatal(err)
	}
	if sb.Network.Egress != sdbx.EgressInternet {
		t.Errorf("default network = %+v, want egress internet", sb.Network)
	}

	t.Run("npm install works with the default egress", func(t *testing.T) {
		res, err := s.c.RunCommand(t.Context(), inet, sdbx.Command{
			Command: "cd $(mktemp -d) && npm install --no-audit --no-fund --loglevel=error is-number >/dev/null && node -e 'console.log(require(\"is-number\")(5))'",
			Timeout: 3 * time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 0 || strings.Join(res.Stdout, "\n") != "true" {
			t.Errorf("npm install is-number: exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
		}
	})
	t.Run("internet stops at the host and private addresses", func(t *testing.T) {
		code, gw := s.sh(t, inet, "awk '/^nameserver/ {print $2}' /etc/resolv.conf")
		if code != 0 || gw == "" {
			t.Fatalf("nameserver: %d %q", code, gw)
		}
		u, _ := url.Parse(s.srv.URL)
		runtimetest.WantDropped(t, "the server's port on the gateway", s.probe(t, inet, "connect", gw, u.Port()))
		got := s.probe(t, inet, "connect", "10.255.255.53", "53")
		runtimetest.WantDropped(t, "the host's resolver", got)
		if strings.Contains(got, "timed out") {
			runtimetest.WantDropped(t, "the metadata address", s.probe(t, inet, "connect", "169.254.169.254", "80"))
		}
	})
	t.Run("allowlist", func(t *testing.T) {
		id := s.sandbox(t, sdbx.Network{Egress: sdbx.EgressAllowlist, Allow: []string{"registry.npmjs.org"}})
		if got := s.probe(t, id, "resolve", "deb.debian.org"); !strings.HasPrefix(got, "ERR") {
			t.Errorf("resolve deb.debian.org = %q; want refused", got)
		}
		if got := s.probe(t, id, "get", "https://registry.npmjs.org/is-number"); got != "200" {
			t.Errorf("GET registry.npmjs.org = %q, want 200", got)
		}
	})
	t.Run("none", func(t *testing.T) {
		id := s.sandbox(t, sdbx.Network{Egress: sdbx.EgressNone})
		if got := s.probe(t, id, "resolve", "registry.npmjs.org"); !strings.HasPrefix(got, "ERR") {
			t.Errorf("resolve = %q; want an error", got)
		}
		if code, out := s.sh(t, id, "tail -n +2 /proc/net/route | wc -l"); code != 0 || out != "0" {
			t.Errorf("routes: %d %q, want none", code, out)
		}
	})
	t.Run("bad policies are refused naming the field", func(t *testing.T) {
		for _, c := range []struct {
			n     sdbx.Network
			field string
		}{
			{sdbx.Network{Egress: "open"}, "network.egress"},
			{sdbx.Network{Egress: sdbx.EgressInternet, Allow: []string{"a.org"}}, "network.allow"},
			{sdbx.Network{Egress: sdbx.EgressAllowlist, Allow: []string{"300.1.2.0/24"}}, "network.allow[0]"},
			{sdbx.Network{Egress: sdbx.EgressAllowlist, Allow: []string{"a.org", "bad_domain..org"}}, "network.allow[1]"},
			{sdbx.Network{Egress: sdbx.EgressAllowlist, Allow: make([]string, 65)}, "network.allow"},
		} {
			_, err := s.c.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: "python-3-11", Network: c.n})
			if !errors.Is(err, sdbx.ErrInvalidArgument) || !strings.Contains(err.Error(), c.field) {
				t.Errorf("create with %+v: %v; want invalid argument naming %s", c.n, err, c.field)
			}
		}
	})
}
