// Package routing applies the network state of one tunnel (addresses, MTU,
// routes, DNS) to the kernel and to the resolver, as a diff against what it
// applied before, and records every change under a state directory so that a
// later process can undo it after a crash.
package routing

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// MaxRoutes bounds the number of explicit routes one Config may carry, so that
// a hostile or broken server cannot make us install an unbounded routing table.
const MaxRoutes = 1000

// MaxAddrs bounds the number of tunnel addresses in one Config.
const MaxAddrs = 16

// MaxDNS bounds the number of DNS servers and of domains in one Config.
const MaxDNS = 64

// ErrNoNetGateway reports that a route would capture a VPN server address but
// the path to that server before the tunnel (net_gateway) could not be found,
// so the route was not installed: installing it would loop the tunnel into
// itself.
var ErrNoNetGateway = errors.New("no route to the VPN server outside the tunnel (net_gateway)")

// Config is the complete desired network state of one tunnel. A nil or zero
// Config means nothing: everything applied before is removed.
type Config struct {
	// Link is the tun device name. The device exists already; the session
	// creates and destroys it.
	Link string
	// MTU is the link MTU to set; 0 leaves the MTU alone.
	MTU int
	// Addrs are the tunnel addresses (ifconfig, ifconfig-ipv6).
	Addrs []Addr
	// Routes are explicit routes (route, route-ipv6), pushed or configured.
	Routes []Route
	// Redirect asks for redirect-gateway; nil means no redirection.
	Redirect *Redirect
	// ServerAddrs are the VPN server addresses in use. Any of them that a
	// tunnel route would capture gets a host route via net_gateway, unless
	// Redirect.Local (or AutoLocal on an on-link server) says otherwise.
	ServerAddrs []netip.Addr
	// DNS is the resolver configuration; nil leaves DNS alone.
	DNS *DNS
}

// Addr is one address on the tunnel link.
type Addr struct {
	// Prefix is the local address with its prefix length (10.8.0.2/24).
	Prefix netip.Prefix
	// Peer is the remote end of a point-to-point (p2p/net30) address; zero
	// for subnet topology.
	Peer netip.Addr
}

// Route is one explicit route.
type Route struct {
	// Dst is the destination network.
	Dst netip.Prefix
	// Gateway is the next hop inside the tunnel; zero means on-link via the
	// tunnel device.
	Gateway netip.Addr
	// ViaNetGateway routes Dst through the gateway and interface that were
	// in use before the tunnel (OpenVPN's net_gateway keyword).
	ViaNetGateway bool
	// Metric is the route priority (route-metric or a per-route metric).
	Metric int
}

// Redirect is the redirect-gateway option with its flags.
type Redirect struct {
	// Def1 adds 0.0.0.0/1 and 128.0.0.0/1 instead of replacing the default route.
	Def1 bool
	// Local means the server is on the local network: no host route to it.
	Local bool
	// AutoLocal decides Local by asking whether the server is on-link.
	AutoLocal bool
	// BypassDHCP and BypassDNS add host routes via net_gateway for the
	// pre-VPN DHCP and DNS servers.
	BypassDHCP, BypassDNS bool
	// BlockLocal routes the local LAN subnets into the tunnel too.
	BlockLocal bool
	// IPv6 also redirects IPv6 (global unicast and ULA space).
	IPv6 bool
	// NoIPv4 disables the IPv4 redirection (redirect-gateway !ipv4).
	NoIPv4 bool
	// BlockIPv6 (block-ipv6) means the session answers IPv6 in the tunnel
	// with ICMPv6 unreachable: the IPv6 routes then go in even without an
	// IPv6 address in the tunnel, as OpenVPN 2.6 adds them.
	BlockIPv6 bool
	// Gateway4 and Gateway6 are the VPN-side next hops; zero means on-link
	// via the tunnel device.
	Gateway4, Gateway6 netip.Addr
	// Metric is the metric of the redirect routes (route-metric).
	Metric int
}

// DNS is the resolver configuration for the tunnel.
type DNS struct {
	// Servers are the DNS server addresses (dhcp-option DNS/DNS6, dns server).
	Servers []netip.Addr
	// Search are search domains (dhcp-option DOMAIN/DOMAIN-SEARCH).
	Search []string
	// RoutingDomains are domains whose queries go to Servers without being
	// used for search (split DNS).
	RoutingDomains []string
	// FullTunnel sends every query to Servers: "~." and default-route true.
	FullTunnel bool
	// Transport is the encryption the server asked for: "" (plain),
	// TransportDoT or TransportDoH. What cannot be honoured is applied
	// unencrypted and reported as a DNSError saying so.
	Transport string
}

// DNS transports (the 2.6 "dns server N transport" values).
const (
	TransportDoT = "DoT"
	TransportDoH = "DoH"
)

// validateRoute checks one explicit route and returns it with host bits cleared.
func validateRoute(rt Route) (Route, error) {
	if !rt.Dst.IsValid() {
		return rt, fmt.Errorf("route %v: invalid destination", rt.Dst)
	}
	a := rt.Dst.Addr()
	if a.Is4In6() {
		return rt, fmt.Errorf("route %v: IPv4-mapped destination", rt.Dst)
	}
	if rt.Dst.Bits() > 0 && (a.IsLoopback() || a.IsMulticast() || (a.Is6() && a.IsLinkLocalUnicast())) {
		return rt, fmt.Errorf("route %v: loopback, multicast or link-local destination", rt.Dst)
	}
	if rt.Gateway.IsValid() {
		if rt.Gateway.Is4() != a.Is4() {
			return rt, fmt.Errorf("route %v: gateway %v of the other address family", rt.Dst, rt.Gateway)
		}
		if rt.ViaNetGateway {
			return rt, fmt.Errorf("route %v: both a gateway and net_gateway", rt.Dst)
		}
	}
	if rt.Metric < 0 {
		return rt, fmt.Errorf("route %v: negative metric %d", rt.Dst, rt.Metric)
	}
	rt.Dst = rt.Dst.Masked()
	return rt, nil
}

func validateAddr(a Addr) error {
	if !a.Prefix.IsValid() {
		return fmt.Errorf("address %v: invalid", a.Prefix)
	}
	ip := a.Prefix.Addr()
	if ip.Is4In6() || ip.IsUnspecified() || ip.IsMulticast() || ip.IsLoopback() {
		return fmt.Errorf("address %v: not a unicast address", a.Prefix)
	}
	if a.Peer.IsValid() && a.Peer.Is4() != ip.Is4() {
		return fmt.Errorf("address %v: peer %v of the other address family", a.Prefix, a.Peer)
	}
	return nil
}

// validDomain accepts the characters a DNS name may carry; it rejects
// anything that could break a resolv.conf line.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, c := range d {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return !strings.Contains(d, "..")
}

// sanitizeDNS returns a copy of d with invalid entries dropped, and the
// reasons they were dropped.
func sanitizeDNS(d *DNS) (*DNS, error) {
	if d == nil {
		return nil, nil
	}
	var errs []error
	out := &DNS{FullTunnel: d.FullTunnel}
	switch d.Transport {
	case "", TransportDoT, TransportDoH:
		out.Transport = d.Transport
	default:
		errs = append(errs, fmt.Errorf("DNS transport %q: unknown; using plain DNS", d.Transport))
	}
	for _, s := range d.Servers {
		if !s.IsValid() || s.IsUnspecified() || s.IsMulticast() {
			errs = append(errs, fmt.Errorf("DNS server %v: invalid", s))
			continue
		}
		if len(out.Servers) == MaxDNS {
			errs = append(errs, fmt.Errorf("more than %d DNS servers", MaxDNS))
			break
		}
		out.Servers = append(out.Servers, s.Unmap())
	}
	clean := func(in []string, what string) []string {
		var res []string
		for _, dom := range in {
			dom = strings.TrimSuffix(strings.TrimPrefix(dom, "~"), ".")
			if !validDomain(dom) {
				errs = append(errs, fmt.Errorf("%s %q: invalid", what, dom))
				continue
			}
			if len(res) == MaxDNS {
				errs = append(errs, fmt.Errorf("more than %d %ss", MaxDNS, what))
				break
			}
			res = append(res, dom)
		}
		return res
	}
	out.Search = clean(d.Search, "search domain")
	out.RoutingDomains = clean(d.RoutingDomains, "routing domain")
	return out, errors.Join(errs...)
}
