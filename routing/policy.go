package routing

import (
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"
)

// PolicyError is a part of a Config that was left out because the tunnel's
// owner may not take it: it belongs to another owner's tunnel or to the
// host's own links. The rest of the Config is applied.
type PolicyError struct {
	// What names the refused part and why.
	What string
}

func (e *PolicyError) Error() string { return "refused: " + e.What }

// refuse records a policy refusal.
func (b *planBuilder) refuse(err error) {
	b.r.logf("%v", err)
	b.errs = append(b.errs, err)
}

// policyRoute decides whether an unprivileged tunnel may route dst into
// itself (or via net_gateway). Full-tunnel redirection is not decided here:
// it is allowed, and being less specific it never captures the routes below.
func (b *planBuilder) policyRoute(dst netip.Prefix) error {
	if b.r.privileged {
		return nil
	}
	for _, c := range b.l.otherClaims(b.r.instance) {
		t := b.l.tunnel(c.Tunnel, false)
		if c.Full || (t != nil && t.Owner == b.r.owner) {
			continue
		}
		if dst.Overlaps(c.Route.Dst) && dst.Bits() >= c.Route.Dst.Bits() {
			return &PolicyError{fmt.Sprintf("route %v: it would capture %v, a route of another user's tunnel", dst, c.Route.Dst)}
		}
	}
	for _, lan := range b.hostNetworks(family(dst.Addr())) {
		if dst.Overlaps(lan) && dst.Bits() >= lan.Bits() {
			return &PolicyError{fmt.Sprintf("route %v: it would capture %v, a network directly connected to the host", dst, lan)}
		}
	}
	for _, a := range b.r.preDNS {
		a = a.Unmap()
		if a.IsValid() && !a.IsLoopback() && !a.IsUnspecified() && dst.Contains(a) && dst.Bits() > 1 {
			return &PolicyError{fmt.Sprintf("route %v: it would capture %v, the host's DNS server", dst, a)}
		}
	}
	return nil
}

// policyAddr decides whether an unprivileged tunnel may put address p on
// its link.
func (b *planBuilder) policyAddr(p netip.Prefix) error {
	if b.r.privileged {
		return nil
	}
	for _, lan := range b.hostNetworks(family(p.Addr())) {
		if lan.Contains(p.Addr()) {
			return &PolicyError{fmt.Sprintf("address %v: it is inside %v, a network directly connected to the host", p, lan)}
		}
	}
	for _, t := range b.l.Tunnels {
		if t.ID == b.r.instance || t.Owner == b.r.owner {
			continue
		}
		for _, o := range t.Addrs {
			if o.Addr() == p.Addr() {
				return &PolicyError{fmt.Sprintf("address %v: another user's tunnel has it", p)}
			}
		}
	}
	return nil
}

// policyDomains drops the DNS domains an unprivileged tunnel may not claim:
// a domain (or a subdomain of one) that another owner's tunnel resolves,
// whose queries would otherwise be split between the two or drawn into this
// tunnel. All names ("~.", FullTunnel) stay allowed, as system-wide DNS is.
func (b *planBuilder) policyDomains(in []string) ([]string, []error) {
	if b.r.privileged {
		return in, nil
	}
	var out []string
	var errs []error
next:
	for _, d := range in {
		for _, t := range b.l.Tunnels {
			if t.ID == b.r.instance || t.Owner == b.r.owner {
				continue
			}
			for _, o := range t.Domains {
				if strings.EqualFold(d, o) || strings.HasSuffix(strings.ToLower(d), "."+strings.ToLower(o)) {
					err := &PolicyError{fmt.Sprintf("DNS domain %s: another user's tunnel resolves %s", d, o)}
					b.r.logf("%v", err)
					errs = append(errs, err)
					continue next
				}
			}
		}
		out = append(out, d)
	}
	return out, errs
}

// hostNetworks are the networks directly connected to the host's own links
// (not to a tunnel's), from the kernel's connected routes.
func (b *planBuilder) hostNetworks(fam int) []netip.Prefix {
	rs, err := b.r.k.RouteList(fam)
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, rt := range rs {
		if rt.Protocol != unix.RTPROT_KERNEL || rt.Gw.IsValid() || rt.Dst.Bits() == 0 || rt.LinkIndex == b.link.Index || b.tunnelLink(rt.LinkIndex) {
			continue
		}
		if rt.Dst.Addr().Is6() && rt.Dst.Addr().IsLinkLocalUnicast() {
			continue
		}
		out = append(out, rt.Dst)
	}
	return out
}
