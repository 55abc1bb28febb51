package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/godbus/dbus/v5"

	api "github.com/ovpnd/ovpnd/dbus"
)

// nmConfig is what the plugin hands NetworkManager for one configuration: the Config,
// Ip4Config and Ip6Config signals' dictionaries (ip4/ip6 nil when the family is absent).
type nmConfig struct {
	config, ip4, ip6 map[string]dbus.Variant
}

// ip4u is an IPv4 address as NetworkManager's u: the network-order bytes read as a
// native-endian uint32.
func ip4u(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

func ip6ay(a netip.Addr) []byte {
	b := a.As16()
	return b[:]
}

// route6 is one element of Ip6Config's routes a(ayuayu).
type route6 struct {
	Dst     []byte
	Prefix  uint32
	NextHop []byte
	Metric  uint32
}

// mapConfig turns ovpnd's NetworkConfig into NetworkManager's dictionaries, as
// docs/networkmanager.md describes. What NetworkManager cannot express or would get wrong
// is left out with a line for logf: routes whose next hop is outside the tunnel (NM would
// put them on the tun and pull the LAN gateway in), redirect-gateway flags, addresses
// beyond the first of each family.
func mapConfig(c *api.NetConfig, logf func(string, ...any)) (*nmConfig, error) {
	if c == nil {
		return nil, errors.New("no network configuration")
	}
	if !c.Server.IsValid() {
		return nil, errors.New("the configuration names no VPN server address (NetworkManager needs it as gateway)")
	}
	var a4, a6 *api.NetAddr
	for i := range c.Addrs {
		a := &c.Addrs[i]
		switch {
		case a.Prefix.Addr().Is4() && a4 == nil:
			a4 = a
		case a.Prefix.Addr().Is6() && a6 == nil:
			a6 = a
		default:
			logf("address %v: NetworkManager takes one address per family; left out", a.Prefix)
		}
	}
	if a4 == nil && a6 == nil {
		return nil, errors.New("the server pushed no tunnel address")
	}
	out := &nmConfig{config: map[string]dbus.Variant{
		"tundev":  dbus.MakeVariant(c.Device),
		"has-ip4": dbus.MakeVariant(a4 != nil),
		"has-ip6": dbus.MakeVariant(a6 != nil),
	}}
	if c.Server.Is4() {
		out.config["gateway"] = dbus.MakeVariant(ip4u(c.Server))
	} else {
		out.config["gateway"] = dbus.MakeVariant(ip6ay(c.Server))
	}
	if c.MTU > 0 {
		out.config["mtu"] = dbus.MakeVariant(c.MTU)
	}

	// inTunnel: a next hop NetworkManager can reach through the tun device.
	inTunnel := func(gw netip.Addr) bool {
		for _, a := range []*api.NetAddr{a4, a6} {
			if a == nil {
				continue
			}
			if a.Peer == gw || a.Prefix.Bits() < a.Prefix.Addr().BitLen() && a.Prefix.Contains(gw) {
				return true
			}
		}
		return false
	}
	for _, f := range c.RedirectFlags {
		switch f {
		case "def1":
			logf("redirect-gateway def1: NetworkManager adds its own default route on the tunnel (metric 50) instead of the two halves")
		default:
			logf("redirect-gateway %s: not available under NetworkManager; ignored", f)
		}
	}
	var dns4, dns6 []netip.Addr
	for _, d := range c.DNS {
		if d.Is4() {
			dns4 = append(dns4, d)
		} else {
			dns6 = append(dns6, d)
		}
	}
	domains := append([]string(nil), c.SearchDomains...)
	for _, d := range c.RoutingDomains {
		// NetworkManager passes a ~domain to systemd-resolved as a routing-only domain.
		domains = append(domains, "~"+strings.TrimPrefix(d, "~"))
	}
	if c.DNSDefault && len(c.DNS) > 0 && !c.Redirect4 && !c.Redirect6 {
		logf("the server asks for every DNS name to go to its servers, but sends no redirect-gateway; NetworkManager resolves only the search domains through the tunnel")
	}

	var routes4 [][]uint32
	var routes6 []route6
	for _, r := range c.Routes {
		if r.ViaNetGateway || r.Gateway.IsValid() && !inTunnel(r.Gateway) {
			via := "net_gateway"
			if !r.ViaNetGateway {
				via = r.Gateway.String()
			}
			logf("route %v via %s: its next hop is outside the tunnel, which NetworkManager cannot express (it would put the route on the tunnel); dropped", r.Dst, via)
			continue
		}
		if r.Dst.Addr().Is4() {
			if a4 == nil {
				logf("route %v: no IPv4 address on the tunnel; dropped", r.Dst)
				continue
			}
			var nh uint32
			if r.Gateway.IsValid() {
				nh = ip4u(r.Gateway)
			}
			routes4 = append(routes4, []uint32{ip4u(r.Dst.Addr()), uint32(r.Dst.Bits()), nh, r.Metric})
		} else {
			if a6 == nil {
				logf("route %v: no IPv6 address on the tunnel; dropped", r.Dst)
				continue
			}
			nh := make([]byte, 16)
			if r.Gateway.IsValid() {
				nh = ip6ay(r.Gateway)
			}
			routes6 = append(routes6, route6{ip6ay(r.Dst.Addr()), uint32(r.Dst.Bits()), nh, r.Metric})
		}
	}

	if a4 != nil {
		ip4 := map[string]dbus.Variant{
			"address":       dbus.MakeVariant(ip4u(a4.Prefix.Addr())),
			"prefix":        dbus.MakeVariant(uint32(a4.Prefix.Bits())),
			"never-default": dbus.MakeVariant(!c.Redirect4),
			"routes":        dbus.MakeVariant(orEmpty(routes4)),
		}
		if a4.Peer.IsValid() {
			ip4["ptp"] = dbus.MakeVariant(ip4u(a4.Peer))
		}
		if c.Gateway4.IsValid() && inTunnel(c.Gateway4) {
			ip4["internal-gateway"] = dbus.MakeVariant(ip4u(c.Gateway4))
		}
		d := make([]uint32, 0, len(dns4))
		for _, a := range dns4 {
			d = append(d, ip4u(a))
		}
		ip4["dns"] = dbus.MakeVariant(d)
		ip4["domains"] = dbus.MakeVariant(orEmpty(domains))
		out.ip4 = ip4
	} else {
		if c.Redirect4 {
			logf("redirect-gateway for IPv4 without an IPv4 tunnel address; ignored")
		}
		if len(dns4) > 0 {
			logf("IPv4 DNS servers %v without an IPv4 tunnel address; dropped", dns4)
		}
	}
	if a6 != nil {
		ip6 := map[string]dbus.Variant{
			"address":       dbus.MakeVariant(ip6ay(a6.Prefix.Addr())),
			"prefix":        dbus.MakeVariant(uint32(a6.Prefix.Bits())),
			"never-default": dbus.MakeVariant(!c.Redirect6),
			"routes":        dbus.MakeVariant(orEmpty(routes6)),
		}
		if c.Gateway6.IsValid() && inTunnel(c.Gateway6) {
			ip6["internal-gateway"] = dbus.MakeVariant(ip6ay(c.Gateway6))
		}
		d := make([][]byte, 0, len(dns6))
		for _, a := range dns6 {
			d = append(d, ip6ay(a))
		}
		ip6["dns"] = dbus.MakeVariant(d)
		if a4 == nil {
			ip6["domains"] = dbus.MakeVariant(orEmpty(domains))
		}
		out.ip6 = ip6
	} else {
		if c.Redirect6 {
			logf("redirect-gateway ipv6 without an IPv6 tunnel address; ignored")
		}
		if len(dns6) > 0 {
			logf("IPv6 DNS servers %v without an IPv6 tunnel address; dropped", dns6)
		}
	}
	return out, nil
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// describe is the one-line summary logged when a configuration goes to NetworkManager.
func (n *nmConfig) describe(c *api.NetConfig) string {
	var parts []string
	for _, a := range c.Addrs {
		parts = append(parts, a.Prefix.String())
	}
	return fmt.Sprintf("%s: addresses %s, server %v, default route %v/%v, %d DNS servers",
		c.Device, strings.Join(parts, " "), c.Server, c.Redirect4 && n.ip4 != nil, c.Redirect6 && n.ip6 != nil, len(c.DNS))
}
