package routing

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"
)

// redirect6 are the routes OpenVPN 2.6 installs for "redirect-gateway ipv6"
// (init.c): they cover global unicast and ULA space but leave link-local
// (fe80::/10) and multicast (ff00::/8) alone, and being more specific than
// ::/0 they win over the default route without replacing it.
var redirect6 = []netip.Prefix{
	netip.MustParsePrefix("::/3"),
	netip.MustParsePrefix("2000::/4"),
	netip.MustParsePrefix("3000::/4"),
	netip.MustParsePrefix("fc00::/7"),
}

// def1 are the two halves of the IPv4 space that override the default route
// without removing it.
var def1 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/1"),
	netip.MustParsePrefix("128.0.0.0/1"),
}

// path is how the kernel reaches an address outside the tunnel.
type path struct {
	Gw        netip.Addr
	LinkIndex int
}

func (p path) onLink() bool { return !p.Gw.IsValid() }

func family(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// plan turns cfg into the kernel state to reach. A nil result means nothing
// can be done (the error says why); otherwise the error lists the parts of
// cfg that were left out.
func (r *Router) plan(l *ledger, cfg *Config) (*desired, error) {
	p := &desired{}
	if cfg == nil || cfg.Link == "" {
		return p, nil
	}
	li, err := r.k.LinkByName(cfg.Link)
	if err != nil {
		return nil, fmt.Errorf("routing: %w", err)
	}
	p.link = li
	var errs []error
	if cfg.MTU != 0 {
		if cfg.MTU < 68 || cfg.MTU > 65535 {
			errs = append(errs, fmt.Errorf("MTU %d out of range", cfg.MTU))
		} else {
			p.mtu = cfg.MTU
		}
	}

	pb := &planBuilder{r: r, l: l, link: li, p: p}
	has6 := false
	for _, a := range cfg.Addrs {
		if err := validateAddr(a); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := pb.policyAddr(a.Prefix); err != nil {
			errs = append(errs, err)
			continue
		}
		if len(p.addrs) == MaxAddrs {
			errs = append(errs, fmt.Errorf("more than %d addresses", MaxAddrs))
			break
		}
		ka := kaddr{LinkIndex: li.Index, Prefix: a.Prefix, Peer: a.Peer}
		if !slices.Contains(p.addrs, ka) {
			p.addrs = append(p.addrs, ka)
		}
		has6 = has6 || a.Prefix.Addr().Is6()
	}

	var servers []netip.Addr
	for _, s := range cfg.ServerAddrs {
		if s.IsValid() && !s.IsUnspecified() {
			servers = append(servers, s.Unmap())
		}
	}

	pb.servers = servers
	pb.redirect(cfg.Redirect, has6)
	pb.explicit(cfg.Routes)
	pb.serverBypass(cfg.Redirect)
	errs = append(errs, pb.errs...)
	p.routes = append(pb.net, pb.tun...)

	d, err := sanitizeDNS(cfg.DNS)
	if err != nil {
		errs = append(errs, err)
	}
	if d != nil {
		var derrs []error
		d.Search, derrs = pb.policyDomains(d.Search)
		errs = append(errs, derrs...)
		d.RoutingDomains, derrs = pb.policyDomains(d.RoutingDomains)
		errs = append(errs, derrs...)
	}
	p.dns = d
	return p, errors.Join(errs...)
}

type planBuilder struct {
	r       *Router
	l       *ledger
	link    linkInfo
	p       *desired
	servers []netip.Addr
	tun     []kroute // routes into the tunnel
	net     []kroute // routes via net_gateway
	errs    []error
}

// ip6DefaultMetric is what the kernel stores for an IPv6 route added with
// metric 0 (IP6_RT_PRIO_USER); planning with it keeps our record equal to
// what the kernel lists.
const ip6DefaultMetric = 1024

func fixMetric(dst netip.Prefix, metric int) int {
	if metric == 0 && dst.Addr().Is6() {
		return ip6DefaultMetric
	}
	return metric
}

func (b *planBuilder) addTun(dst netip.Prefix, gw netip.Addr, metric int) {
	metric = fixMetric(dst, metric)
	rt := kroute{Dst: dst, Gw: gw, LinkIndex: b.link.Index, Metric: metric, Table: tableMain, Protocol: protoStatic}
	if !gw.IsValid() && dst.Addr().Is4() {
		rt.Scope = scopeLink
	}
	b.add(&b.tun, rt)
}

func (b *planBuilder) addNet(dst netip.Prefix, via path, metric int) {
	metric = fixMetric(dst, metric)
	rt := kroute{Dst: dst, Gw: via.Gw, LinkIndex: via.LinkIndex, Metric: metric, Table: tableMain, Protocol: protoStatic}
	if via.onLink() && dst.Addr().Is4() {
		rt.Scope = scopeLink
	}
	b.add(&b.net, rt)
}

// add appends rt unless a route with the same kernel key is planned already;
// the first one wins, and a conflicting second one is reported.
// addFull adds a redirect-gateway route: every full tunnel may hold one at
// the same key, the most recent in the kernel.
func (b *planBuilder) addFull(dst netip.Prefix, gw netip.Addr, metric int) {
	b.addTun(dst, gw, metric)
	b.p.full = append(b.p.full, routeKey{Dst: dst, Metric: fixMetric(dst, metric), Table: tableMain})
}

func (b *planBuilder) add(list *[]kroute, rt kroute) {
	for _, l := range [][]kroute{b.net, b.tun} {
		for _, o := range l {
			if o.key() == rt.key() {
				if !o.sameRoute(rt) {
					b.errs = append(b.errs, fmt.Errorf("route %v metric %d: conflicts with another route to the same destination", rt.Dst, rt.Metric))
				}
				return
			}
		}
	}
	*list = append(*list, rt)
}

// netGateway finds how addr is reached outside the tunnel. It asks the
// kernel first (which honours policy routing); if the answer goes through
// our link or through a route we installed ourselves (our host route may
// point at a gateway that has since changed), it does a longest prefix
// match over the main table without our routes, and last falls back to
// what it found before.
func (b *planBuilder) netGateway(addr netip.Addr) (path, error) {
	r := b.r
	if rt, err := r.k.RouteGet(addr); err == nil && rt.LinkIndex != b.link.Index && rt.LinkIndex != 0 && !b.ownsPath(addr, rt) && !b.tunnelLink(rt.LinkIndex) {
		p := path{Gw: rt.Gw, LinkIndex: rt.LinkIndex}
		r.st.rememberPath(addr, p)
		return p, nil
	}
	if rt, ok := b.lookupOutside(addr); ok {
		p := path{Gw: rt.Gw, LinkIndex: rt.LinkIndex}
		r.st.rememberPath(addr, p)
		return p, nil
	}
	if p, ok := r.st.NetGW[addr]; ok {
		return p, nil
	}
	return path{}, fmt.Errorf("%v: %w", addr, ErrNoNetGateway)
}

// tunnelLink reports whether link index is another tunnel's: the kernel's
// answer through it may be that tunnel's full-tunnel route, which is no
// path outside the tunnels (it goes when that tunnel goes).
func (b *planBuilder) tunnelLink(index int) bool {
	return slices.ContainsFunc(b.l.Tunnels, func(t *ledgerTunnel) bool { return t.LinkIndex == index && t.ID != b.r.instance })
}

// ownsPath reports whether the kernel's answer rt for addr may come from one
// of our own host routes.
func (b *planBuilder) ownsPath(addr netip.Addr, rt kroute) bool {
	return slices.ContainsFunc(b.r.st.Routes, func(o kroute) bool {
		return o.Dst.Contains(addr) && o.Gw == rt.Gw && o.LinkIndex == rt.LinkIndex
	})
}

// lookupOutside does a longest prefix match over the main table, skipping
// our link, our routes and every tunnel's full-tunnel routes, and including
// the host routes tunnels displaced. Other tunnels' split routes stay
// candidates: a server reached only through another tunnel is nested in it.
func (b *planBuilder) lookupOutside(addr netip.Addr) (kroute, bool) {
	rs, err := b.r.k.RouteList(family(addr))
	if err != nil {
		return kroute{}, false
	}
	rs = append(rs, b.r.st.Displaced...)
	rs = append(rs, b.l.displacedRoutes()...)
	best, found := kroute{}, false
	for _, rt := range rs {
		if rt.LinkIndex == b.link.Index || rt.LinkIndex == 0 || !rt.Dst.Contains(addr) || containsRoute(b.r.st.Routes, rt) {
			continue
		}
		if _, full := b.l.tunnelRoute(rt); full {
			continue
		}
		if !found || rt.Dst.Bits() > best.Dst.Bits() || (rt.Dst.Bits() == best.Dst.Bits() && rt.Metric < best.Metric) {
			best, found = rt, true
		}
	}
	return best, found
}

// defaultRoute returns the best default route of a family outside our link.
func (b *planBuilder) defaultRoute(fam int) (kroute, bool) {
	rs, err := b.r.k.RouteList(fam)
	if err != nil {
		return kroute{}, false
	}
	best, found := kroute{}, false
	for _, rt := range rs {
		if rt.Dst.Bits() != 0 || rt.LinkIndex == b.link.Index || rt.LinkIndex == 0 {
			continue
		}
		if held, _ := b.l.tunnelRoute(rt); held {
			continue // another tunnel's: not the host's default
		}
		if !found || rt.Metric < best.Metric {
			best, found = rt, true
		}
	}
	if !found {
		// While tunnels displace it, the host's default is only in the
		// records.
		for _, d := range append(slices.Clone(b.r.st.Displaced), b.l.displacedRoutes()...) {
			if d.Dst.Bits() == 0 && family(d.Dst.Addr()) == fam {
				return d, true
			}
		}
	}
	return best, found
}

// familyGateway is net_gateway for a family: the path to the first server
// address of that family, or else the default route.
func (b *planBuilder) familyGateway(fam int) (path, error) {
	for _, s := range b.servers {
		if family(s) == fam {
			return b.netGateway(s)
		}
	}
	if rt, ok := b.defaultRoute(fam); ok {
		return path{Gw: rt.Gw, LinkIndex: rt.LinkIndex}, nil
	}
	return path{}, fmt.Errorf("no default route: %w", ErrNoNetGateway)
}

// isLocal reports whether the redirect flags exempt server s from its host route.
func (b *planBuilder) isLocal(rd *Redirect, s netip.Addr) bool {
	if rd == nil {
		return false
	}
	if rd.Local {
		return true
	}
	if rd.AutoLocal {
		p, err := b.netGateway(s)
		return err == nil && p.onLink()
	}
	return false
}

func (b *planBuilder) redirect(rd *Redirect, has6 bool) {
	if rd == nil {
		return
	}
	if !rd.NoIPv4 {
		b.redirect4(rd)
	}
	if rd.IPv6 {
		if !has6 && !rd.BlockIPv6 {
			// Without an IPv6 address in the tunnel the routes would only
			// black-hole IPv6, unless block-ipv6 answers it.
			b.r.logf("redirect-gateway ipv6 ignored: the tunnel has no IPv6 address")
		} else {
			for _, dst := range redirect6 {
				b.addFull(dst, rd.Gateway6, rd.Metric)
			}
		}
	}
}

func (b *planBuilder) redirect4(rd *Redirect) {
	// The gateway interface (OpenVPN's rgi) is the path to the server, or
	// the default route when no IPv4 server address is known.
	gwPath, gwErr := b.familyGateway(unix.AF_INET)
	anyRemote := false
	for _, s := range b.servers {
		if !s.Is4() || b.isLocal(rd, s) {
			continue
		}
		anyRemote = true
		if _, err := b.netGateway(s); err != nil {
			// OpenVPN refuses the redirection here ("Cannot read current
			// default gateway from system"); so do we, loudly.
			b.errs = append(b.errs, fmt.Errorf("redirect-gateway not applied: %w", err))
			b.r.logf("redirect-gateway not applied: %v", err)
			return
		}
	}

	if rd.Def1 {
		for _, dst := range def1 {
			b.addFull(dst, rd.Gateway4, rd.Metric)
		}
	} else {
		b.addFull(netip.PrefixFrom(netip.IPv4Unspecified(), 0), rd.Gateway4, rd.Metric)
		if dr, ok := b.defaultRoute(unix.AF_INET); ok {
			b.p.displaced = append(b.p.displaced, dr)
		}
	}

	if rd.BlockLocal && gwErr == nil && (anyRemote || len(b.servers) == 0) {
		if b.r.privileged {
			b.blockLocal(rd, gwPath)
		} else {
			b.refuse(&PolicyError{"redirect-gateway block-local: the local network belongs to the host"})
		}
	}
	if rd.BypassDHCP || rd.BypassDNS {
		linkIndex := 0
		if gwErr == nil {
			linkIndex = gwPath.LinkIndex
		}
		var addrs []netip.Addr
		if rd.BypassDNS {
			addrs = append(addrs, b.r.preDNS...)
		}
		if rd.BypassDHCP {
			addrs = append(addrs, b.r.bypass(true, false, linkIndex)...)
		}
		for _, a := range addrs {
			a = a.Unmap()
			if !a.IsValid() || a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() || (a.Is6() && a.IsLinkLocalUnicast()) {
				continue
			}
			p, err := b.netGateway(a)
			if err != nil {
				b.r.logf("bypass of %v skipped: %v", a, err)
				continue
			}
			b.addNet(netip.PrefixFrom(a, a.BitLen()), p, 0)
		}
	}
}

// blockLocal routes the subnets of the gateway interface into the tunnel as
// two halves each (more specific than the connected route), keeping a host
// route to the LAN gateway itself.
func (b *planBuilder) blockLocal(rd *Redirect, gw path) {
	addrs, err := b.r.k.AddrList(gw.LinkIndex)
	if err != nil {
		b.errs = append(b.errs, fmt.Errorf("block-local: %w", err))
		return
	}
	if gw.Gw.IsValid() {
		b.addNet(netip.PrefixFrom(gw.Gw, gw.Gw.BitLen()), path{LinkIndex: gw.LinkIndex}, 0)
	}
	for _, a := range addrs {
		pfx := a.Prefix
		if !pfx.Addr().Is4() || a.Peer.IsValid() || pfx.Bits() == 0 || pfx.Bits() >= 32 {
			continue
		}
		lo := netip.PrefixFrom(pfx.Masked().Addr(), pfx.Bits()+1)
		hiAddr := pfx.Masked().Addr().As4()
		bit := pfx.Bits() // index of the first host bit
		hiAddr[bit/8] |= 0x80 >> (bit % 8)
		hi := netip.PrefixFrom(netip.AddrFrom4(hiAddr), pfx.Bits()+1)
		b.addTun(lo, rd.Gateway4, rd.Metric)
		b.addTun(hi, rd.Gateway4, rd.Metric)
	}
}

func (b *planBuilder) explicit(routes []Route) {
	n := 0
	for _, rt := range routes {
		v, err := validateRoute(rt)
		if err != nil {
			b.errs = append(b.errs, err)
			continue
		}
		if n == MaxRoutes {
			b.errs = append(b.errs, fmt.Errorf("more than %d routes; the rest ignored", MaxRoutes))
			return
		}
		n++
		if err := b.policyRoute(v.Dst); err != nil {
			b.refuse(err)
			continue
		}
		if v.ViaNetGateway {
			p, err := b.familyGateway(family(v.Dst.Addr()))
			if err != nil {
				b.errs = append(b.errs, fmt.Errorf("route %v via net_gateway: %w", v.Dst, err))
				continue
			}
			b.addNet(v.Dst, p, v.Metric)
			continue
		}
		b.addTun(v.Dst, v.Gateway, v.Metric)
	}
}

// serverBypass gives each server address that a tunnel route captures a
// host route via net_gateway, or drops the capturing routes when there is
// no such path.
func (b *planBuilder) serverBypass(rd *Redirect) {
	for _, s := range b.servers {
		captured := slices.ContainsFunc(b.tun, func(rt kroute) bool {
			return rt.Dst.Contains(s) && rt.Dst.Bits() < s.BitLen()
		})
		exact := slices.ContainsFunc(b.tun, func(rt kroute) bool { return rt.Dst.Contains(s) && rt.Dst.Bits() == s.BitLen() })
		if exact {
			b.errs = append(b.errs, fmt.Errorf("route %v: a host route to the VPN server into the tunnel; dropped", s))
			b.tun = slices.DeleteFunc(b.tun, func(rt kroute) bool { return rt.Dst.Contains(s) && rt.Dst.Bits() == s.BitLen() })
		}
		if !captured || b.isLocal(rd, s) {
			continue
		}
		p, err := b.netGateway(s)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("routes capturing server %v dropped: %w", s, err))
			b.tun = slices.DeleteFunc(b.tun, func(rt kroute) bool { return rt.Dst.Contains(s) })
			continue
		}
		b.addNet(netip.PrefixFrom(s, s.BitLen()), p, 0)
	}
}
