package runtime

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// Egress policies of a sandbox's network.
const (
	// EgressNone gives the sandbox loopback only.
	EgressNone = "none"
	// EgressInternet lets the sandbox reach public addresses, never
	// private ranges, link-local (metadata), the host or other sandboxes.
	EgressInternet = "internet"
	// EgressAllowlist lets the sandbox reach only the CIDRs and domains of
	// Network.Allow.
	EgressAllowlist = "allowlist"
)

// MaxAllow bounds the entries of Network.Allow.
const MaxAllow = 64

// Network is a sandbox's egress policy.
type Network struct {
	// Egress is EgressNone, EgressInternet or EgressAllowlist.
	Egress string `json:"egress"`
	// Allow lists IPv4 CIDRs ("203.0.113.0/24", "198.51.100.7"), domains
	// ("registry.npmjs.org") and wildcard domains ("*.example.org": every
	// name below example.org). Only with EgressAllowlist.
	Allow []string `json:"allow,omitempty"`
}

// NetworkSetter is implemented by drivers that can change the egress
// policy of a running sandbox (a claimed warm-pool sandbox, a sandbox
// adopted after a server restart). SetNetwork replaces the sandbox's
// policy as a whole; it returns errdefs.ErrNotFound for an unknown id.
type NetworkSetter interface {
	SetNetwork(ctx context.Context, id string, n Network) error
}

// NormalizeNetwork checks n and returns it in canonical form: CIDRs
// masked ("203.0.113.7/24" → "203.0.113.0/24", a bare address → /32),
// domains lower-case without a trailing dot. field names n in errors
// ("network"). An empty Egress is kept (the caller's default applies).
func NormalizeNetwork(field string, n Network) (Network, error) {
	bad := func(format string, args ...any) (Network, error) {
		return Network{}, fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
	}
	switch n.Egress {
	case "", EgressNone, EgressInternet, EgressAllowlist:
	default:
		return bad("%s.egress %q: must be one of none, internet, allowlist", field, n.Egress)
	}
	if len(n.Allow) > 0 && n.Egress != EgressAllowlist {
		return bad("%s.allow: only allowed with egress \"allowlist\" (egress is %q)", field, n.Egress)
	}
	if len(n.Allow) > MaxAllow {
		return bad("%s.allow has %d entries; at most %d are allowed", field, len(n.Allow), MaxAllow)
	}
	out := Network{Egress: n.Egress}
	seen := map[string]bool{}
	for i, a := range n.Allow {
		c, err := canonicalAllow(a)
		if err != nil {
			return bad("%s.allow[%d] %q: %v", field, i, a, err)
		}
		if !seen[c] {
			seen[c] = true
			out.Allow = append(out.Allow, c)
		}
	}
	return out, nil
}

// canonicalAllow returns one allow entry in canonical form.
func canonicalAllow(a string) (string, error) {
	if a == "" {
		return "", fmt.Errorf("empty entry")
	}
	if strings.ContainsAny(a, "/:") || isDigitsAndDots(a) {
		s := a
		if !strings.Contains(s, "/") {
			s += "/32"
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return "", fmt.Errorf("not an IPv4 CIDR (like 203.0.113.0/24)")
		}
		if !p.Addr().Is4() {
			return "", fmt.Errorf("only IPv4 is supported (sandboxes have no IPv6)")
		}
		return p.Masked().String(), nil
	}
	d := strings.TrimSuffix(strings.ToLower(a), ".")
	name := strings.TrimPrefix(d, "*.")
	if !ValidDomain(name) {
		return "", fmt.Errorf("not a domain name (like registry.npmjs.org or *.example.org)")
	}
	if !strings.Contains(name, ".") {
		return "", fmt.Errorf("a domain needs at least two labels")
	}
	return d, nil
}

func isDigitsAndDots(s string) bool {
	return strings.Trim(s, "0123456789.") == ""
}

// ValidDomain reports whether d (lower case, no trailing dot) is a DNS
// name: labels of [a-z0-9-] (and '_'), 1-63 bytes, not starting or ending
// with '-', 253 bytes at most.
func ValidDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}
