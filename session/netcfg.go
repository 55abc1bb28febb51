package session

import (
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

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
				IPv6: rg.IPv6, NoIPv4: rg.NoIPv4, BlockIPv6: n.BlockIPv6,
				Gateway4: onTunnel(gw4), Gateway6: onTunnel(gw6),
				Metric: max(n.RouteMetric, 0),
			}
		}
		if n.RedirectPrivate != nil {
			warnf("redirect-private is not supported; ignored")
		}
	}

	rc.DNS = dnsConfig(n, warnf)
	return rc, warns
}

// redirectsDefault reports whether redirect-gateway sends a default route of
// either family into the tunnel, which makes the tunnel's DNS servers the
// resolvers for every name.
func redirectsDefault(rg *config.RedirectGateway) bool {
	return rg != nil && (!rg.NoIPv4 || rg.IPv6)
}

// dnsConfig collects dhcp-option DNS/DNS6/DOMAIN/DOMAIN-SEARCH and the 2.6
// dns option into routing's DNS. As OpenVPN 2.6, "dns server" entries take
// the place of dhcp-option DNS/DNS6 and "dns search-domains" that of
// DOMAIN/DOMAIN-SEARCH; without any server nothing is configured.
func dnsConfig(n *config.NetSettings, warnf func(string, ...any)) *routing.DNS {
	var d routing.DNS
	var resolveDomains []string
	d.Servers = n.DNSServers()
	d.Search = n.SearchDomains()
	if dn := n.DNS; dn != nil {
		if len(dn.Servers) > 0 {
			d.Servers = nil
		}
		for _, s := range dn.Servers {
			switch {
			case s.Transport == "" || strings.EqualFold(s.Transport, "plain"):
			case d.Transport == "":
				// Applied by resolved where it can; otherwise routing says
				// plainly that DNS goes unencrypted.
				d.Transport = s.Transport
			case d.Transport != s.Transport:
				warnf("dns server %d: transport %s differs from the first server's %s; using %s for all", s.Priority, s.Transport, d.Transport, d.Transport)
			}
			for _, a := range s.Addresses {
				if a.Port() != 0 && a.Port() != 53 {
					warnf("dns server %v: only port 53 is supported; skipped", a)
					continue
				}
				d.Servers = append(d.Servers, a.Addr())
			}
			resolveDomains = append(resolveDomains, s.ResolveDomains...)
		}
		if len(dn.SearchDomains) > 0 {
			d.Search = append([]string(nil), dn.SearchDomains...)
		}
	}
	if len(d.Servers) == 0 {
		if len(d.Search) > 0 || len(resolveDomains) > 0 {
			warnf("DNS domains without a DNS server; ignored")
		}
		return nil
	}
	d.Search = dedupe(d.Search, nil)
	d.FullTunnel = redirectsDefault(n.RedirectGateway)
	if !d.FullTunnel {
		// A split tunnel answers only for its own domains. Search domains
		// route their names to the tunnel's servers as well (resolved treats
		// a search domain as a routing domain too), so only resolve-domains
		// need listing as routing-only domains.
		d.RoutingDomains = dedupe(resolveDomains, d.Search)
	}
	return &d
}

// dedupe returns in without repeats (case-insensitive) and without entries of skip.
func dedupe(in, skip []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range skip {
		seen[strings.ToLower(strings.TrimSuffix(s, "."))] = true
	}
	for _, s := range in {
		k := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(s, "~"), "."))
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, s)
	}
	return out
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

// routeDebounce is how long the route monitor waits for a burst of route
// changes (DHCP renewing, NetworkManager switching networks) to settle
// before routing re-plans.
const routeDebounce = 500 * time.Millisecond

// resubscribeWait is the pause before the route monitor subscribes again
// after the kernel dropped its subscription (receive buffer overrun).
const resubscribeWait = time.Second

// routeSubscriber starts a route-change subscription that sends updates on
// ch until done is closed, then closes ch.
type routeSubscriber func(ch chan<- netlink.RouteUpdate, done <-chan struct{}, errf func(error)) error

func netlinkRouteSubscriber(ch chan<- netlink.RouteUpdate, done <-chan struct{}, errf func(error)) error {
	return netlink.RouteSubscribeWithOptions(ch, done, netlink.RouteSubscribeOptions{ErrorCallback: errf})
}

// routeWatcher follows the underlay's routing table for the life of a
// Session.Run: when a default route or a route towards the VPN server
// changes outside the tunnel, it calls refresh once the changes settle, so
// that routing moves the server's host route to the new net_gateway (or
// applies a redirect that found no gateway at connect time). It owns one
// goroutine, started by start and ended by stop.
type routeWatcher struct {
	refresh   func()
	logf      func(level int, format string, args ...any)
	subscribe routeSubscriber
	debounce  time.Duration

	tunIndex atomic.Int64
	servers  atomic.Pointer[[]netip.Addr]
	// ending is set before the loop releases its subscription: the receive error that
	// closing the socket causes is then expected, not worth a line.
	ending atomic.Bool

	quit chan struct{}
	done chan struct{}
}

func newRouteWatcher(refresh func(), logf func(int, string, ...any)) *routeWatcher {
	return &routeWatcher{refresh: refresh, logf: logf, subscribe: netlinkRouteSubscriber, debounce: routeDebounce}
}

// setTunIndex names the tunnel's link: changes on it are the session's own.
func (w *routeWatcher) setTunIndex(i int) { w.tunIndex.Store(int64(i)) }

// setServers names the VPN server addresses in use.
func (w *routeWatcher) setServers(s []netip.Addr) {
	c := append([]netip.Addr(nil), s...)
	w.servers.Store(&c)
}

// start subscribes and starts the goroutine; the first subscription must
// work, later ones are retried.
func (w *routeWatcher) start() error {
	w.ending.Store(false)
	ch := make(chan netlink.RouteUpdate, 64)
	nlDone := make(chan struct{})
	if err := w.subscribe(ch, nlDone, w.subscriptionError); err != nil {
		return fmt.Errorf("subscribing to route changes: %w", err)
	}
	w.quit, w.done = make(chan struct{}), make(chan struct{})
	go w.loop(ch, nlDone)
	return nil
}

// stop ends the goroutine and waits for it.
func (w *routeWatcher) stop() {
	if w.quit == nil {
		return
	}
	close(w.quit)
	<-w.done
	w.quit = nil
}

func (w *routeWatcher) subscriptionError(err error) {
	if w.ending.Load() {
		return
	}
	w.logf(3, "route monitor: %v", err)
}

func (w *routeWatcher) loop(ch chan netlink.RouteUpdate, nlDone chan struct{}) {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var retry <-chan time.Time
	defaultChanged := false // a default route changed since the last refresh
	// end releases the subscription; its sender blocks until ch is drained.
	end := func() {
		if ch == nil {
			return
		}
		w.ending.Store(true)
		close(nlDone)
		for range ch {
		}
		ch = nil
	}
	defer end()
	for {
		select {
		case <-w.quit:
			timer.Stop()
			return
		case u, ok := <-ch:
			if !ok {
				// The kernel dropped us (usually ENOBUFS); changes may have
				// been missed, so re-plan once we are back.
				ch = nil
				w.logf(1, "route monitor lost its subscription; subscribing again")
				retry = time.After(resubscribeWait)
				continue
			}
			if why, isDefault := w.relevant(u); why != "" {
				w.logf(3, "route change: %s", why)
				defaultChanged = defaultChanged || isDefault
				timer.Reset(w.debounce)
			}
		case <-retry:
			retry = nil
			nc, nd := make(chan netlink.RouteUpdate, 64), make(chan struct{})
			if err := w.subscribe(nc, nd, w.subscriptionError); err != nil {
				w.logf(1, "route monitor: %v", err)
				retry = time.After(resubscribeWait)
				continue
			}
			ch, nlDone = nc, nd
			timer.Reset(w.debounce)
		case <-timer.C:
			// Our own host route to the server shows up here too; only a
			// changed default route is news worth a normal-level line.
			level := 3
			if defaultChanged {
				level = 1
			}
			defaultChanged = false
			w.logf(level, "underlying routes changed; re-checking the routes via net_gateway")
			w.refresh()
		}
	}
}

// relevant says why an update can change net_gateway, or "" when it cannot:
// only main-table routes outside the tunnel that are default routes or
// cover a VPN server address matter. isDefault reports a default route.
func (w *routeWatcher) relevant(u netlink.RouteUpdate) (why string, isDefault bool) {
	if u.Type != unix.RTM_NEWROUTE && u.Type != unix.RTM_DELROUTE {
		return "", false
	}
	if u.Table != 0 && u.Table != unix.RT_TABLE_MAIN {
		return "", false
	}
	if u.LinkIndex != 0 && int64(u.LinkIndex) == w.tunIndex.Load() {
		return "", false
	}
	verb := "added"
	if u.Type == unix.RTM_DELROUTE {
		verb = "deleted"
	}
	desc := func() string {
		s := verb + " "
		if u.Dst == nil {
			s += "default"
		} else {
			s += u.Dst.String()
		}
		if u.Gw != nil {
			s += " via " + u.Gw.String()
		}
		return s + fmt.Sprintf(" dev #%d", u.LinkIndex)
	}
	if u.Dst == nil {
		return desc(), true
	}
	ones, _ := u.Dst.Mask.Size()
	if ones == 0 {
		return desc(), true
	}
	pfx, ok := netip.AddrFromSlice(u.Dst.IP)
	if !ok {
		return "", false
	}
	p := netip.PrefixFrom(pfx.Unmap(), ones)
	if sp := w.servers.Load(); sp != nil {
		for _, s := range *sp {
			if p.Contains(s.Unmap()) {
				return desc(), false
			}
		}
	}
	return "", false
}
