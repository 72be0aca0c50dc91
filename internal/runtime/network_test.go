package runtime

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sdbx/sdbx/internal/errdefs"
)

func TestNormalizeNetwork(t *testing.T) {
	got, err := NormalizeNetwork("network", Network{Egress: EgressAllowlist, Allow: []string{
		"Registry.NPMJS.org.", "203.0.113.7/24", "198.51.100.7", "*.Example.org", "registry.npmjs.org", "0.0.0.0/0",
	}})
	want := []string{"registry.npmjs.org", "203.0.113.0/24", "198.51.100.7/32", "*.example.org", "0.0.0.0/0"}
	if err != nil || !slices.Equal(got.Allow, want) {
		t.Fatalf("NormalizeNetwork = %v, %v; want %v", got.Allow, err, want)
	}
	for _, n := range []Network{{}, {Egress: EgressNone}, {Egress: EgressInternet}, {Egress: EgressAllowlist}} {
		if _, err := NormalizeNetwork("network", n); err != nil {
			t.Errorf("NormalizeNetwork(%+v): %v", n, err)
		}
	}
	for _, tc := range []struct {
		n     Network
		field string
	}{
		{Network{Egress: "all"}, "network.egress"},
		{Network{Egress: EgressInternet, Allow: []string{"a.org"}}, "network.allow"},
		{Network{Allow: []string{"a.org"}}, "network.allow"},
		{Network{Egress: EgressAllowlist, Allow: make([]string, MaxAllow+1)}, "network.allow has 65"},
		{Network{Egress: EgressAllowlist, Allow: []string{""}}, "network.allow[0]"},
		{Network{Egress: EgressAllowlist, Allow: []string{"a.org", "1.2.3.4/33"}}, "network.allow[1]"},
		{Network{Egress: EgressAllowlist, Allow: []string{"256.1.1.1"}}, "network.allow[0]"},
		{Network{Egress: EgressAllowlist, Allow: []string{"2001:db8::/32"}}, "network.allow[0]"},
		{Network{Egress: EgressAllowlist, Allow: []string{"localhost"}}, "network.allow[0]"},
		{Network{Egress: EgressAllowlist, Allow: []string{"a..org"}}, "network.allow[0]"},
		{Network{Egress: EgressAllowlist, Allow: []string{"*.*.org"}}, "network.allow[0]"},
		{Network{Egress: EgressAllowlist, Allow: []string{"a.org/x"}}, "network.allow[0]"},
		{Network{Egress: EgressAllowlist, Allow: []string{"http://a.org"}}, "network.allow[0]"},
		{Network{Egress: EgressAllowlist, Allow: []string{strings.Repeat("a", 64) + ".org"}}, "network.allow[0]"},
	} {
		_, err := NormalizeNetwork("network", tc.n)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("NormalizeNetwork(%+v) = %v; want invalid argument naming %s", tc.n, err, tc.field)
		}
	}
}
