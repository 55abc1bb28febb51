package session

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/ovpnd/ovpnd/config"
)

// hostNet is what the checks of pushed settings know about the host: the
// networks directly connected to it outside any tunnel, and the VPN server's
// address in use. Policy that spans sessions and owners (another session's
// routes, who may override) extends this type and checkPushed.
type hostNet struct {
	// Links are the addresses, with their prefixes, of the host's interfaces
	// other than loopback and tun devices (tunnels are not the host's LAN;
	// conflicts between tunnels are a matter of cross-session policy).
	Links []netip.Prefix
	// Server is the VPN server's address in use (invalid when unknown).
	Server netip.Addr
}

// readHostNet lists the host's directly connected networks.
func readHostNet(server netip.Addr) (hostNet, error) {
	h := hostNet{Server: server.Unmap()}
	links, err := netlink.LinkList()
	if err != nil {
		return h, fmt.Errorf("listing interfaces: %w", err)
	}
	// Addresses of tun devices (this tunnel's and others') and of loopback do not count,
	// nor those of a link that appeared after the list. One dump of every address: asking
	// per link dumps them all once per link.
	count := make(map[int]bool, len(links))
	for _, l := range links {
		a := l.Attrs()
		if _, tun := l.(*netlink.Tuntap); !tun && a.Flags&net.FlagLoopback == 0 {
			count[a.Index] = true
		}
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return h, fmt.Errorf("listing addresses: %w", err)
	}
	for _, ad := range addrs {
		if ad.IPNet == nil || !count[ad.LinkIndex] {
			continue
		}
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok {
			continue
		}
		ones, _ := ad.Mask.Size()
		h.Links = append(h.Links, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return h, nil
}

// checkPushed removes from n, a server's pushed network settings, what the
// server may not claim on this host, and returns one line per refusal saying
// what and why. What is left still works: a refused address or route does not
// stop the rest of the push.
//
//   - ifconfig / ifconfig-ipv6: not a unicast address, the server's own
//     address, the network or broadcast address of its own subnet, or an
//     address inside a network directly connected to the host (the host
//     would answer ARP/ND for it on that LAN);
//   - route / route-ipv6: a destination equal to or inside a directly
//     connected network (it would capture that LAN), or a host route to
//     the server through the tunnel (route remote_host);
//   - DNS servers (dhcp-option DNS/DNS6, dns server address) on loopback:
//     they would send the tunnel's queries to whatever listens locally.
//
// topology is the one in effect (pushed, else the profile's).
func checkPushed(n *config.NetSettings, topology config.Topology, h hostNet) []string {
	var refused []string
	refuse := func(format string, args ...any) { refused = append(refused, fmt.Sprintf(format, args...)) }

	if ic := n.Ifconfig; ic != nil {
		bits := 32 // net30 and p2p: a point-to-point address
		if b := maskBits(ic.Remote); topology == config.TopologySubnet && b > 0 {
			bits = b
		}
		if why := h.badAddress(netip.PrefixFrom(ic.Local, bits)); why != "" {
			refuse("ifconfig %v %v: %s", ic.Local, ic.Remote, why)
			n.Ifconfig = nil
		}
	}
	if ic := n.IfconfigIPv6; ic != nil {
		if why := h.badAddress(ic.Local); why != "" {
			refuse("ifconfig-ipv6 %v: %s", ic.Local, why)
			n.IfconfigIPv6 = nil
		}
	}
	n.Routes = slices.DeleteFunc(n.Routes, func(r config.Route) bool {
		if r.Gateway == "net_gateway" {
			return false // outside the tunnel: nothing captured
		}
		if r.Network == "remote_host" {
			refuse("route remote_host: a route to the VPN server into the tunnel")
			return true
		}
		a, err := netip.ParseAddr(r.Network)
		if err != nil || !a.Is4() {
			return false // keywords and names are routingConfig's to judge
		}
		bits := 32
		if r.Netmask.IsValid() {
			if bits = maskBits(r.Netmask); bits < 0 {
				return false
			}
		}
		if why := h.captures(netip.PrefixFrom(a, bits).Masked()); why != "" {
			refuse("route %s %s: %s", r.Network, r.Netmask, why)
			return true
		}
		return false
	})
	n.RoutesIPv6 = slices.DeleteFunc(n.RoutesIPv6, func(r config.RouteIPv6) bool {
		if why := h.captures(r.Prefix.Masked()); why != "" {
			refuse("route-ipv6 %v: %s", r.Prefix, why)
			return true
		}
		return false
	})
	n.DHCPOptions = slices.DeleteFunc(n.DHCPOptions, func(o config.DHCPOption) bool {
		if o.Type != "DNS" && o.Type != "DNS6" {
			return false
		}
		if a, err := netip.ParseAddr(o.Value); err == nil && (a.Unmap().IsLoopback() || a.IsUnspecified()) {
			refuse("dhcp-option %s %s: a DNS server on this host's loopback", o.Type, o.Value)
			return true
		}
		return false
	})
	if d := n.DNS; d != nil {
		for i := range d.Servers {
			s := &d.Servers[i]
			s.Addresses = slices.DeleteFunc(s.Addresses, func(ap netip.AddrPort) bool {
				if a := ap.Addr().Unmap(); a.IsLoopback() || a.IsUnspecified() {
					shown := ap.String()
					if ap.Port() == 0 {
						shown = a.String()
					}
					refuse("dns server %d address %s: a DNS server on this host's loopback", s.Priority, shown)
					return true
				}
				return false
			})
		}
	}
	return refused
}

// badAddress says why a pushed tunnel address (with its prefix) may not go on
// the tun device, or "" when it may.
func (h hostNet) badAddress(p netip.Prefix) string {
	a := p.Addr()
	switch {
	case !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() ||
		a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "not a unicast address"
	case h.Server.IsValid() && a == h.Server:
		return "the VPN server's own address"
	}
	if a.Is4() && p.Bits() <= 30 {
		if a == p.Masked().Addr() {
			return fmt.Sprintf("the network address of %v", p.Masked())
		}
		if a == lastAddr(p) {
			return fmt.Sprintf("the broadcast address of %v", p.Masked())
		}
	}
	for _, l := range h.Links {
		if l.Addr().Is4() != a.Is4() || l.Addr().IsLinkLocalUnicast() {
			continue
		}
		if l.Addr() == a {
			return fmt.Sprintf("an address this host already has (%v)", l)
		}
		if l.Contains(a) {
			return fmt.Sprintf("inside %v, a network directly connected to this host", l.Masked())
		}
	}
	return ""
}

// captures says why a pushed route to dst would take traffic that belongs to
// a directly connected network, or "" when it does not. A route that only
// contains such a network (a default route, def1's halves) does not capture
// it: the connected route is more specific.
func (h hostNet) captures(dst netip.Prefix) string {
	for _, l := range h.Links {
		if l.Addr().Is4() != dst.Addr().Is4() || l.Addr().IsLinkLocalUnicast() {
			continue
		}
		if dst.Bits() >= l.Bits() && l.Contains(dst.Addr()) {
			return fmt.Sprintf("would capture %v, a network directly connected to this host", l.Masked())
		}
	}
	return ""
}

// lastAddr is the highest address of an IPv4 prefix (its broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// notApplied removes from n, a server's pushed network settings, what ovpnd
// accepts in the grammar but does not apply on Linux, and says so for each:
// nothing a server pushed may be dropped without a word.
func notApplied(n *config.NetSettings) []string {
	var out []string
	n.DHCPOptions = slices.DeleteFunc(n.DHCPOptions, func(o config.DHCPOption) bool {
		switch o.Type {
		case "DNS", "DNS6", "DOMAIN", "DOMAIN-SEARCH", "ADAPTER_DOMAIN_SUFFIX":
			return false
		}
		out = append(out, fmt.Sprintf("dhcp-option %s: only DNS, DNS6, DOMAIN, DOMAIN-SEARCH and ADAPTER_DOMAIN_SUFFIX apply on Linux (the rest are DHCP options for a Windows TAP adapter)", o.Type))
		return true
	})
	if rg := n.RouteGateway; rg != nil && rg.DHCP {
		out = append(out, "route-gateway dhcp: there is no DHCP on a tun device")
		n.RouteGateway = nil
	}
	if d := n.DNS; d != nil {
		for i := range d.Servers {
			s := &d.Servers[i]
			if s.DNSSEC != "" {
				out = append(out, fmt.Sprintf("dns server %d dnssec %s: DNSSEC is left to the system resolver's own setting", s.Priority, s.DNSSEC))
				s.DNSSEC = ""
			}
			if s.SNI != "" {
				out = append(out, fmt.Sprintf("dns server %d sni %s: the server name for DNS over TLS is not passed on", s.Priority, s.SNI))
				s.SNI = ""
			}
		}
	}
	return out
}
