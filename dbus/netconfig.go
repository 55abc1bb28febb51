package dbus

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"

	godbus "github.com/godbus/dbus/v5"
)

// StartOptionExternalNetwork is the Manager.Start option (b) that starts a session in
// external network mode: the daemon creates the tun device and runs the protocol but
// applies no addresses, routes or DNS; the session's NetworkConfig property carries what
// the caller is to apply. Root only (NetworkManager's plugin).
const StartOptionExternalNetwork = "external-network"

// PropNetworkConfig is the session property (a{sv}) with the pushed network configuration
// of a session in external network mode; empty otherwise and while there is none.
const PropNetworkConfig = "NetworkConfig"

// Limits of a NetworkConfig (the daemon's routing limits: routing.MaxAddrs, MaxRoutes,
// MaxDNS). A decoder refuses more.
const (
	MaxNetAddrs   = 16
	MaxNetRoutes  = 1000
	MaxNetDNS     = 64
	maxNetTextLen = 255
)

// Keys of the NetworkConfig dictionary.
const (
	netKeyGeneration     = "generation"      // t: counts configurations; a reconnect's is new
	netKeyDevice         = "device"          // s: the tun device
	netKeyMTU            = "mtu"             // u: 0 = unchanged
	netKeyServer         = "server"          // s: the VPN server address in use
	netKeyAddresses      = "addresses"       // a(ss): local address/prefix, peer ("" = none)
	netKeyGateway4       = "gateway4"        // s: next hop inside the tunnel ("" = unknown)
	netKeyGateway6       = "gateway6"        // s
	netKeyRoutes         = "routes"          // a(ssbu): destination, gateway ("" = on-link), via net_gateway, metric
	netKeyRedirect4      = "redirect-ipv4"   // b: redirect-gateway for IPv4
	netKeyRedirect6      = "redirect-ipv6"   // b: redirect-gateway ipv6
	netKeyRedirectFlags  = "redirect-flags"  // as: def1 local autolocal bypass-dhcp bypass-dns block-local
	netKeyDNS            = "dns"             // as: DNS server addresses
	netKeySearchDomains  = "search-domains"  // as
	netKeyRoutingDomains = "routing-domains" // as: domains resolved by the tunnel's servers, not searched
	netKeyDNSDefault     = "dns-default"     // b: every name goes to the tunnel's servers
)

// NetAddr is one tunnel address.
type NetAddr struct {
	Prefix netip.Prefix
	Peer   netip.Addr // point-to-point peer (net30, p2p); zero for subnet topology
}

// NetRoute is one explicit route.
type NetRoute struct {
	Dst           netip.Prefix
	Gateway       netip.Addr // next hop inside the tunnel; zero = on-link on the tun device
	ViaNetGateway bool       // OpenVPN's net_gateway: a route outside the tunnel
	Metric        uint32
}

// NetConfig is the NetworkConfig property: what a session in external network mode asks
// its client to apply.
type NetConfig struct {
	Generation     uint64
	Device         string
	MTU            uint32
	Server         netip.Addr
	Addrs          []NetAddr
	Gateway4       netip.Addr
	Gateway6       netip.Addr
	Routes         []NetRoute
	Redirect4      bool
	Redirect6      bool
	RedirectFlags  []string
	DNS            []netip.Addr
	SearchDomains  []string
	RoutingDomains []string
	DNSDefault     bool
}

type wireAddr struct{ Prefix, Peer string }

type wireRoute struct {
	Dst, Gateway  string
	ViaNetGateway bool
	Metric        uint32
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Variants is c as the a{sv} of the property; nil c is the empty dictionary.
func (c *NetConfig) Variants() map[string]godbus.Variant {
	m := map[string]godbus.Variant{}
	if c == nil {
		return m
	}
	addrs := make([]wireAddr, 0, len(c.Addrs))
	for _, a := range c.Addrs {
		addrs = append(addrs, wireAddr{a.Prefix.String(), addrText(a.Peer)})
	}
	routes := make([]wireRoute, 0, len(c.Routes))
	for _, r := range c.Routes {
		routes = append(routes, wireRoute{r.Dst.String(), addrText(r.Gateway), r.ViaNetGateway, r.Metric})
	}
	dns := make([]string, 0, len(c.DNS))
	for _, d := range c.DNS {
		dns = append(dns, d.String())
	}
	strs := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	m[netKeyGeneration] = godbus.MakeVariant(c.Generation)
	m[netKeyDevice] = godbus.MakeVariant(c.Device)
	m[netKeyMTU] = godbus.MakeVariant(c.MTU)
	m[netKeyServer] = godbus.MakeVariant(addrText(c.Server))
	m[netKeyAddresses] = godbus.MakeVariant(addrs)
	m[netKeyGateway4] = godbus.MakeVariant(addrText(c.Gateway4))
	m[netKeyGateway6] = godbus.MakeVariant(addrText(c.Gateway6))
	m[netKeyRoutes] = godbus.MakeVariant(routes)
	m[netKeyRedirect4] = godbus.MakeVariant(c.Redirect4)
	m[netKeyRedirect6] = godbus.MakeVariant(c.Redirect6)
	m[netKeyRedirectFlags] = godbus.MakeVariant(strs(c.RedirectFlags))
	m[netKeyDNS] = godbus.MakeVariant(dns)
	m[netKeySearchDomains] = godbus.MakeVariant(strs(c.SearchDomains))
	m[netKeyRoutingDomains] = godbus.MakeVariant(strs(c.RoutingDomains))
	m[netKeyDNSDefault] = godbus.MakeVariant(c.DNSDefault)
	return m
}

// ParseNetConfig decodes the NetworkConfig property. An empty dictionary is nil, nil (no
// configuration yet). Anything malformed (a wrong type, a bad address, too many entries)
// is an error naming the key; unknown keys are ignored, for later versions.
func ParseNetConfig(m map[string]godbus.Variant) (*NetConfig, error) {
	if len(m) == 0 {
		return nil, nil
	}
	c := &NetConfig{}
	var err error
	get := func(key string, dst any) bool {
		v, ok := m[key]
		if !ok || err != nil {
			return false
		}
		// Store converts between kinds (a u into an s as a rune): the signature must match.
		if want := godbus.SignatureOf(reflect.ValueOf(dst).Elem().Interface()); v.Signature() != want {
			err = fmt.Errorf("NetworkConfig %s: type %s, want %s", key, v.Signature(), want)
			return false
		}
		if e := v.Store(dst); e != nil {
			err = fmt.Errorf("NetworkConfig %s: %w", key, e)
			return false
		}
		return true
	}
	addr := func(key, s string, opt bool) netip.Addr {
		if s == "" && opt || err != nil {
			return netip.Addr{}
		}
		a, e := netip.ParseAddr(s)
		if e != nil || a.Zone() != "" {
			err = fmt.Errorf("NetworkConfig %s: %q is not an IP address", key, clip(s))
			return netip.Addr{}
		}
		return a.Unmap()
	}
	prefix := func(key, s string) netip.Prefix {
		p, e := netip.ParsePrefix(s)
		if e != nil || p.Addr().Zone() != "" {
			if err == nil {
				err = fmt.Errorf("NetworkConfig %s: %q is not an address/prefix", key, clip(s))
			}
			return netip.Prefix{}
		}
		return p
	}
	names := func(key string, max int) []string {
		var l []string
		if !get(key, &l) {
			return nil
		}
		if len(l) > max {
			err = fmt.Errorf("NetworkConfig %s: %d entries; the limit is %d", key, len(l), max)
			return nil
		}
		for _, s := range l {
			if len(s) > maxNetTextLen || strings.ContainsAny(s, "\x00\n\r\t ,;") || !validUTF8(s) {
				err = fmt.Errorf("NetworkConfig %s: %q is not a name", key, clip(s))
				return nil
			}
		}
		return l
	}

	get(netKeyGeneration, &c.Generation)
	if get(netKeyDevice, &c.Device) && (c.Device == "" || len(c.Device) > 15 || strings.ContainsAny(c.Device, "/\x00 \n")) {
		err = fmt.Errorf("NetworkConfig %s: %q is not a network device name", netKeyDevice, clip(c.Device))
	}
	if c.Device == "" && err == nil {
		err = fmt.Errorf("NetworkConfig: no %s", netKeyDevice)
	}
	get(netKeyMTU, &c.MTU)
	var s string
	if get(netKeyServer, &s) {
		c.Server = addr(netKeyServer, s, true)
	}
	var wa []wireAddr
	if get(netKeyAddresses, &wa) {
		if len(wa) > MaxNetAddrs {
			err = fmt.Errorf("NetworkConfig %s: %d entries; the limit is %d", netKeyAddresses, len(wa), MaxNetAddrs)
		}
		for _, a := range wa {
			if err != nil {
				break
			}
			na := NetAddr{Prefix: prefix(netKeyAddresses, a.Prefix), Peer: addr(netKeyAddresses, a.Peer, true)}
			if err == nil && na.Peer.IsValid() && na.Peer.Is4() != na.Prefix.Addr().Is4() {
				err = fmt.Errorf("NetworkConfig %s: peer %v of the other family than %v", netKeyAddresses, na.Peer, na.Prefix)
			}
			c.Addrs = append(c.Addrs, na)
		}
	}
	if get(netKeyGateway4, &s) {
		c.Gateway4 = addr(netKeyGateway4, s, true)
		if c.Gateway4.IsValid() && !c.Gateway4.Is4() && err == nil {
			err = fmt.Errorf("NetworkConfig %s: %v is not IPv4", netKeyGateway4, c.Gateway4)
		}
	}
	if get(netKeyGateway6, &s) {
		c.Gateway6 = addr(netKeyGateway6, s, true)
		if c.Gateway6.IsValid() && !c.Gateway6.Is6() && err == nil {
			err = fmt.Errorf("NetworkConfig %s: %v is not IPv6", netKeyGateway6, c.Gateway6)
		}
	}
	var wr []wireRoute
	if get(netKeyRoutes, &wr) {
		if len(wr) > MaxNetRoutes {
			err = fmt.Errorf("NetworkConfig %s: %d entries; the limit is %d", netKeyRoutes, len(wr), MaxNetRoutes)
		}
		for _, r := range wr {
			if err != nil {
				break
			}
			nr := NetRoute{Dst: prefix(netKeyRoutes, r.Dst), Gateway: addr(netKeyRoutes, r.Gateway, true), ViaNetGateway: r.ViaNetGateway, Metric: r.Metric}
			if err == nil && nr.Gateway.IsValid() && nr.Gateway.Is4() != nr.Dst.Addr().Is4() {
				err = fmt.Errorf("NetworkConfig %s: gateway %v of the other family than %v", netKeyRoutes, nr.Gateway, nr.Dst)
			}
			nr.Dst = nr.Dst.Masked()
			c.Routes = append(c.Routes, nr)
		}
	}
	get(netKeyRedirect4, &c.Redirect4)
	get(netKeyRedirect6, &c.Redirect6)
	c.RedirectFlags = names(netKeyRedirectFlags, 16)
	var dns []string
	if get(netKeyDNS, &dns) {
		if len(dns) > MaxNetDNS {
			err = fmt.Errorf("NetworkConfig %s: %d entries; the limit is %d", netKeyDNS, len(dns), MaxNetDNS)
		}
		for _, d := range dns {
			if err != nil {
				break
			}
			c.DNS = append(c.DNS, addr(netKeyDNS, d, false))
		}
	}
	c.SearchDomains = names(netKeySearchDomains, MaxNetDNS)
	c.RoutingDomains = names(netKeyRoutingDomains, MaxNetDNS)
	get(netKeyDNSDefault, &c.DNSDefault)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// HasRedirectFlag reports whether redirect-gateway carried flag (def1, local, ...).
func (c *NetConfig) HasRedirectFlag(flag string) bool {
	for _, f := range c.RedirectFlags {
		if f == flag {
			return true
		}
	}
	return false
}

func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return Printable(s)
}

func validUTF8(s string) bool { return Printable(s) == s }
