package session

import (
	"fmt"
	"net/netip"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/routing"
)

// netInput is what routingConfig needs: the merged network settings (profile,
// then pushed options on top) and the facts of the running connection.
type netInput struct {
	Net            *config.NetSettings
	Link           string
	MTU            int
	Server         netip.Addr // the remote in use (remote_host)
	RouteNoExec    bool       // leave routes alone
	IfconfigNoExec bool       // leave addresses alone
}

// routingConfig turns OpenVPN's network options into routing's declarative
// Config. Problems with single entries (an unresolvable route, a route that
// needs a gateway nobody supplied) are returned as warnings and the entry is
// skipped, as OpenVPN does; only the tunnel itself must come up.
func routingConfig(in netInput) (*routing.Config, []string) {
	var warns []string
	warnf := func(format string, args ...any) { warns = append(warns, fmt.Sprintf(format, args...)) }
	n := in.Net
	rc := &routing.Config{Link: in.Link, MTU: in.MTU}
	if in.Server.IsValid() {
		rc.ServerAddrs = []netip.Addr{in.Server.Unmap()}
	}
	if n == nil {
		return rc, nil
	}

	var local4 netip.Prefix
	var peer4, gw4, gw6 netip.Addr
	if ic := n.Ifconfig; ic != nil && ic.Local.Is4() {
		switch n.Topology {
		case config.TopologySubnet:
			bits := maskBits(ic.Remote)
			if bits < 0 {
				warnf("ifconfig %v %v: netmask is not contiguous; using /32", ic.Local, ic.Remote)
				bits = 32
			}
			local4 = netip.PrefixFrom(ic.Local, bits)
		default: // net30 and p2p: a point-to-point address with the peer on the other end
			local4 = netip.PrefixFrom(ic.Local, 32)
			peer4 = ic.Remote
			gw4 = ic.Remote
		}
		if !in.IfconfigNoExec {
			rc.Addrs = append(rc.Addrs, routing.Addr{Prefix: local4, Peer: peer4})
		}
	}
	if rg := n.RouteGateway; rg != nil && rg.Addr.IsValid() {
		gw4 = rg.Addr
	}
	if ic6 := n.IfconfigIPv6; ic6 != nil && ic6.Local.IsValid() {
		if !in.IfconfigNoExec {
			rc.Addrs = append(rc.Addrs, routing.Addr{Prefix: ic6.Local})
		}
		gw6 = ic6.Remote
	}
	if n.RouteIPv6Gateway.IsValid() {
		gw6 = n.RouteIPv6Gateway
	}

	// The next hop inside a tun device only matters to the kernel for
	// reachability checks; use it when the kernel can resolve it, else on-link.
	onTunnel := func(gw netip.Addr) netip.Addr {
		if !gw.IsValid() {
			return netip.Addr{}
		}
		for _, a := range rc.Addrs {
			if a.Peer == gw || a.Prefix.Contains(gw) && a.Prefix.Bits() < a.Prefix.Addr().BitLen() {
				return gw
			}
		}
		return netip.Addr{}
	}
	metric := func(m int) int {
		if m >= 0 {
			return m
		}
		return n.RouteMetric
	}

	if !in.RouteNoExec {
		for _, r := range n.Routes {
			var dst netip.Addr
			switch r.Network {
			case "vpn_gateway":
				dst = gw4
			case "net_gateway":
				warnf("route net_gateway: the pre-tunnel gateway is routing's to find; skipped")
				continue
			case "remote_host":
				dst = in.Server.Unmap()
			default:
				a, err := netip.ParseAddr(r.Network)
				if err != nil {
					warnf("route %s: only IPv4 addresses and keywords are supported; skipped", r.Network)
					continue
				}
				dst = a
			}
			if !dst.Is4() {
				warnf("route %s: no IPv4 address for it; skipped", r.Network)
				continue
			}
			bits := 32
			if r.Netmask.IsValid() {
				bits = maskBits(r.Netmask)
				if bits < 0 {
					warnf("route %s %s: netmask is not contiguous; skipped", r.Network, r.Netmask)
					continue
				}
			}
			rt := routing.Route{Dst: netip.PrefixFrom(dst, bits).Masked(), Metric: metric(r.Metric)}
			switch r.Gateway {
			case "", "vpn_gateway":
				rt.Gateway = onTunnel(gw4)
			case "net_gateway":
				rt.ViaNetGateway = true
			case "remote_host":
				warnf("route %s via remote_host: not a next hop; skipped", r.Network)
				continue
			default:
				g, err := netip.ParseAddr(r.Gateway)
				if err != nil || !g.Is4() {
					warnf("route %s: gateway %q is not an IPv4 address; skipped", r.Network, r.Gateway)
					continue
				}
				rt.Gateway = onTunnel(g)
			}
			rc.Routes = append(rc.Routes, rt)
		}
		for _, r := range n.RoutesIPv6 {
			rt := routing.Route{Dst: r.Prefix.Masked(), Metric: metric(r.Metric)}
			if r.Gateway.IsValid() {
				rt.Gateway = onTunnel(r.Gateway)
			} else {
				rt.Gateway = onTunnel(gw6)
			}
			rc.Routes = append(rc.Routes, rt)
		}
		if rg := n.RedirectGateway; rg != nil {
			rc.Redirect = &routing.Redirect{
				Def1: rg.Def1, Local: rg.Local, AutoLocal: rg.AutoLocal,
				BypassDHCP: rg.BypassDHCP, BypassDNS: rg.BypassDNS, BlockLocal: rg.BlockLocal,
				IPv6: rg.IPv6, NoIPv4: rg.NoIPv4,
				Gateway4: onTunnel(gw4), Gateway6: onTunnel(gw6),
				Metric: max(n.RouteMetric, 0),
			}
		}
		if n.RedirectPrivate != nil {
			warnf("redirect-private is not supported; ignored")
		}
	}

	var dns routing.DNS
	dns.Servers = n.DNSServers()
	dns.Search = n.SearchDomains()
	if d := n.DNS; d != nil {
		for _, s := range d.Servers {
			for _, a := range s.Addresses {
				if a.Port() != 0 && a.Port() != 53 {
					warnf("dns server %v: only port 53 is supported; skipped", a)
					continue
				}
				dns.Servers = append(dns.Servers, a.Addr())
			}
			dns.RoutingDomains = append(dns.RoutingDomains, s.ResolveDomains...)
		}
		dns.Search = append(dns.Search, d.SearchDomains...)
	}
	if len(dns.Servers) > 0 {
		dns.FullTunnel = n.RedirectGateway != nil && !n.RedirectGateway.NoIPv4
		rc.DNS = &dns
	}
	return rc, warns
}

// maskBits returns the prefix length of a dotted IPv4 netmask, or -1.
func maskBits(m netip.Addr) int {
	if !m.Is4() {
		return -1
	}
	b := m.As4()
	x := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for x&0x80000000 != 0 {
		n++
		x <<= 1
	}
	if x != 0 {
		return -1
	}
	return n
}
