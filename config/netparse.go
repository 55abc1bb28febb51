package config

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

var routeKeywords = map[string]bool{"vpn_gateway": true, "net_gateway": true, "remote_host": true}

// validHost accepts DNS names as OpenVPN does for remote and route: letters, digits, '-', '.', '_'.
func validHost(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

func parseIPv4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return a, nil
}

func parseIPv6(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv6 address", s)
	}
	return a, nil
}

func parseNetmask(s string) (netip.Addr, error) {
	m, err := parseIPv4(s)
	if err != nil {
		return m, fmt.Errorf("netmask %q is not a dotted IPv4 mask", s)
	}
	v := m.As4()
	x := uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
	if x != 0 && (^x)&(^x+1) != 0 {
		return m, fmt.Errorf("netmask %s is not contiguous", s)
	}
	return m, nil
}

func parseMetric(s string) (int, error) {
	if s == "default" {
		return -1, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > 1<<31-1 {
		return 0, fmt.Errorf("metric %q is not a number", s)
	}
	return int(n), nil
}

// parseRoute reads "route NETWORK [NETMASK [GATEWAY [METRIC]]]".
func parseRoute(a []string) (Route, error) {
	r := Route{Netmask: netip.AddrFrom4([4]byte{255, 255, 255, 255}), Metric: -1}
	if _, err := parseIPv4(a[0]); err != nil && !routeKeywords[a[0]] && !validHost(a[0]) {
		return r, fmt.Errorf("network %q is not an IPv4 address, host name, vpn_gateway, net_gateway or remote_host", a[0])
	}
	r.Network = a[0]
	if len(a) > 1 && a[1] != "default" {
		m, err := parseNetmask(a[1])
		if err != nil {
			return r, err
		}
		r.Netmask = m
	}
	if len(a) > 2 && a[2] != "default" {
		if _, err := parseIPv4(a[2]); err != nil && !routeKeywords[a[2]] {
			return r, fmt.Errorf("gateway %q is not an IPv4 address, vpn_gateway, net_gateway or remote_host", a[2])
		}
		r.Gateway = a[2]
	}
	if len(a) > 3 {
		m, err := parseMetric(a[3])
		if err != nil {
			return r, err
		}
		r.Metric = m
	}
	return r, nil
}

// parseRouteIPv6 reads "route-ipv6 NETWORK/BITS [GATEWAY [METRIC]]".
func parseRouteIPv6(a []string) (RouteIPv6, error) {
	r := RouteIPv6{Metric: -1}
	pfx, err := netip.ParsePrefix(a[0])
	if err != nil || !pfx.Addr().Is6() {
		return r, fmt.Errorf("%q is not an IPv6 prefix (address/bits)", a[0])
	}
	r.Prefix = pfx.Masked()
	if len(a) > 1 && a[1] != "default" && a[1] != "vpn_gateway" {
		g, err := parseIPv6(a[1])
		if err != nil {
			return r, fmt.Errorf("gateway: %w", err)
		}
		r.Gateway = g
	}
	if len(a) > 2 {
		if r.Metric, err = parseMetric(a[2]); err != nil {
			return r, err
		}
	}
	return r, nil
}

func parseRouteGateway(a []string) (*RouteGateway, error) {
	if a[0] == "dhcp" {
		return &RouteGateway{DHCP: true}, nil
	}
	g, err := parseIPv4(a[0])
	if err != nil {
		return nil, err
	}
	return &RouteGateway{Addr: g}, nil
}

// parseRedirect reads redirect-gateway's (or redirect-private's) flags.
func parseRedirect(a []string) (*RedirectGateway, error) {
	r := &RedirectGateway{}
	for _, f := range a {
		switch f {
		case "local":
			r.Local = true
		case "autolocal":
			r.AutoLocal = true
		case "def1":
			r.Def1 = true
		case "bypass-dhcp":
			r.BypassDHCP = true
		case "bypass-dns":
			r.BypassDNS = true
		case "block-local":
			r.BlockLocal = true
		case "ipv6":
			r.IPv6 = true
		case "!ipv4":
			r.NoIPv4 = true
		default:
			return nil, fmt.Errorf("unknown flag %q", f)
		}
	}
	return r, nil
}

func (r *RedirectGateway) flags() []string {
	var out []string
	add := func(b bool, s string) {
		if b {
			out = append(out, s)
		}
	}
	add(r.Local, "local")
	add(r.AutoLocal, "autolocal")
	add(r.Def1, "def1")
	add(r.BypassDHCP, "bypass-dhcp")
	add(r.BypassDNS, "bypass-dns")
	add(r.BlockLocal, "block-local")
	add(r.IPv6, "ipv6")
	add(r.NoIPv4, "!ipv4")
	return out
}

func parseIfconfig(a []string) (*Ifconfig, error) {
	l, err := parseIPv4(a[0])
	if err != nil {
		return nil, err
	}
	r, err := parseIPv4(a[1])
	if err != nil {
		return nil, err
	}
	return &Ifconfig{Local: l, Remote: r}, nil
}

func parseIfconfigIPv6(a []string) (*IfconfigIPv6, error) {
	pfx, err := netip.ParsePrefix(a[0])
	if err != nil || !pfx.Addr().Is6() {
		return nil, fmt.Errorf("%q is not an IPv6 address/bits", a[0])
	}
	ic := &IfconfigIPv6{Local: pfx}
	if len(a) > 1 {
		if ic.Remote, err = parseIPv6(a[1]); err != nil {
			return nil, err
		}
	}
	return ic, nil
}

func parseTopology(s string) (Topology, error) {
	switch s {
	case "net30":
		return TopologyNet30, nil
	case "p2p":
		return TopologyP2P, nil
	case "subnet":
		return TopologySubnet, nil
	}
	return 0, fmt.Errorf("unknown topology %q (want net30, p2p or subnet)", s)
}

// parseDHCPOption reads "dhcp-option TYPE [VALUE...]".
func parseDHCPOption(a []string) (DHCPOption, error) {
	typ := strings.ToUpper(a[0])
	for _, x := range a {
		if x == "" || strings.ContainsAny(x, " \t") {
			return DHCPOption{}, fmt.Errorf("value %q is empty or contains spaces", x)
		}
	}
	o := DHCPOption{Type: typ, Value: strings.Join(a[1:], " ")}
	want := func(n int) error {
		if len(a)-1 != n {
			return fmt.Errorf("%s takes %d value(s)", typ, n)
		}
		return nil
	}
	switch typ {
	case "DNS":
		if err := want(1); err != nil {
			return o, err
		}
		if _, err := netip.ParseAddr(a[1]); err != nil {
			return o, fmt.Errorf("DNS %q is not an IP address", a[1])
		}
	case "DNS6":
		if err := want(1); err != nil {
			return o, err
		}
		if _, err := parseIPv6(a[1]); err != nil {
			return o, err
		}
	case "WINS", "NBDD", "NTP":
		if err := want(1); err != nil {
			return o, err
		}
		if _, err := parseIPv4(a[1]); err != nil {
			return o, err
		}
	case "DOMAIN", "ADAPTER_DOMAIN_SUFFIX", "NBS":
		if err := want(1); err != nil {
			return o, err
		}
	case "DOMAIN-SEARCH":
		if len(a) < 2 {
			return o, errors.New("DOMAIN-SEARCH needs at least one domain")
		}
	case "NBT":
		if err := want(1); err != nil {
			return o, err
		}
		if n, err := strconv.Atoi(a[1]); err != nil || n < 1 || n > 8 {
			return o, fmt.Errorf("NBT %q is not 1, 2, 4 or 8", a[1])
		}
	case "DISABLE-NBT":
		if err := want(0); err != nil {
			return o, err
		}
	case "PROXY_HTTP":
		if err := want(2); err != nil {
			return o, err
		}
	default:
		return o, fmt.Errorf("unknown dhcp-option type %q", a[0])
	}
	return o, nil
}

// applyDNS applies one "dns ..." option (OpenVPN 2.6) to *d.
func applyDNS(d **DNS, a []string) error {
	if *d == nil {
		*d = &DNS{}
	}
	dns := *d
	switch a[0] {
	case "search-domains":
		if len(a) < 2 {
			return errors.New("search-domains needs at least one domain")
		}
		for _, x := range a[1:] {
			if !validHost(x) {
				return fmt.Errorf("%q is not a domain", x)
			}
		}
		dns.SearchDomains = append(dns.SearchDomains, a[1:]...)
		return nil
	case "server":
	default:
		return fmt.Errorf("unknown dns option %q (want search-domains or server)", a[0])
	}
	if len(a) < 4 {
		return errors.New("usage: dns server PRIORITY address|resolve-domains|dnssec|transport|sni VALUE")
	}
	prio, err := strconv.Atoi(a[1])
	if err != nil || prio < -128 || prio > 127 {
		return fmt.Errorf("priority %q is not between -128 and 127", a[1])
	}
	i := slices.IndexFunc(dns.Servers, func(s DNSServer) bool { return s.Priority == prio })
	if i < 0 {
		dns.Servers = append(dns.Servers, DNSServer{Priority: prio})
		slices.SortStableFunc(dns.Servers, func(x, y DNSServer) int { return x.Priority - y.Priority })
		i = slices.IndexFunc(dns.Servers, func(s DNSServer) bool { return s.Priority == prio })
	}
	s := &dns.Servers[i]
	vals := a[3:]
	switch a[2] {
	case "address":
		if len(s.Addresses)+len(vals) > 8 {
			return errors.New("more than 8 addresses for one server")
		}
		for _, v := range vals {
			ap, err := parseDNSAddr(v)
			if err != nil {
				return err
			}
			s.Addresses = append(s.Addresses, ap)
		}
	case "resolve-domains":
		for _, x := range vals {
			if !validHost(x) {
				return fmt.Errorf("%q is not a domain", x)
			}
		}
		s.ResolveDomains = append(s.ResolveDomains, vals...)
	case "dnssec":
		if len(vals) != 1 || (vals[0] != "yes" && vals[0] != "no" && vals[0] != "optional") {
			return errors.New("dnssec takes yes, no or optional")
		}
		s.DNSSEC = vals[0]
	case "transport":
		if len(vals) != 1 || (vals[0] != "plain" && vals[0] != "DoH" && vals[0] != "DoT") {
			return errors.New("transport takes plain, DoH or DoT")
		}
		s.Transport = vals[0]
	case "sni":
		if len(vals) != 1 || !validHost(vals[0]) {
			return errors.New("sni takes one host name")
		}
		s.SNI = vals[0]
	default:
		return fmt.Errorf("unknown dns server option %q", a[2])
	}
	return nil
}

// parseDNSAddr reads ADDR, ADDR:PORT or [IPv6]:PORT.
func parseDNSAddr(v string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(v); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a, 0), nil
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil || ap.Addr().Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("%q is not an address or address:port", v)
	}
	return ap, nil
}

func formatDNSAddr(ap netip.AddrPort) string {
	if ap.Port() == 0 {
		return ap.Addr().String()
	}
	return ap.String()
}

// parseMSSFix reads "mssfix [N [mtu|fixed]]".
func parseMSSFix(a []string) (n int, mtu, fixed bool, err error) {
	n = 1492
	if len(a) > 0 {
		if n, err = parseInt(a[0], 65535); err != nil {
			return
		}
	}
	if len(a) > 1 {
		switch a[1] {
		case "mtu":
			mtu = true
		case "fixed":
			fixed = true
		default:
			err = fmt.Errorf("unknown flag %q (want mtu or fixed)", a[1])
		}
	}
	return
}

func parseTunMTU(s string) (int, error) {
	n, err := parseInt(s, 65535)
	if err != nil {
		return 0, err
	}
	if n < 576 && n != 0 {
		return 0, fmt.Errorf("tun-mtu %d is below 576", n)
	}
	return n, nil
}

// parseCompression reads comp-lzo or compress.
func parseCompression(name string, a []string) (Compression, error) {
	var c Compression
	if name == "comp-lzo" {
		c.Mode, c.CompLZO = CompressCompLZO, "adaptive"
		if len(a) > 0 {
			switch a[0] {
			case "yes", "no", "adaptive":
				c.CompLZO = a[0]
			default:
				return c, fmt.Errorf("unknown mode %q (want yes, no or adaptive)", a[0])
			}
		}
		return c, nil
	}
	c.Mode = CompressStub
	if len(a) > 0 {
		switch a[0] {
		case "stub":
			c.Mode = CompressStub
		case "stub-v2":
			c.Mode = CompressStubV2
		case "lzo":
			c.Mode = CompressLZO
		case "lz4":
			c.Mode = CompressLZ4
		case "lz4-v2":
			c.Mode = CompressLZ4V2
		case "migrate":
			return c, errors.New("compress migrate is a server option")
		default:
			return c, fmt.Errorf("unknown algorithm %q", a[0])
		}
	}
	return c, nil
}

var compressNames = map[CompressMode]string{
	CompressStub: "stub", CompressStubV2: "stub-v2", CompressLZO: "lzo", CompressLZ4: "lz4", CompressLZ4V2: "lz4-v2",
}

// validRemote accepts a host name or an IP address literal.
func validRemote(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	return validHost(s)
}
