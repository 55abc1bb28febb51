package daemon

import (
	"net/netip"
	"sort"
	"strings"

	"github.com/godbus/dbus/v5"

	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/session"
)

// startOptions are the Manager.Start options the daemon understands.
type startOptions struct {
	// external is external network mode (api.StartOptionExternalNetwork).
	external bool
}

// parseStartOptions reads Start's a{sv}; unknown keys and wrong types are refused, and
// external network mode is root's only: its configuration goes to whoever applies it.
func parseStartOptions(options map[string]dbus.Variant, uid uint32) (startOptions, *dbus.Error) {
	var so startOptions
	var unknown []string
	for k, v := range options {
		switch k {
		case api.StartOptionExternalNetwork:
			b, ok := v.Value().(bool)
			if !ok {
				return so, errInvalidArg("option %s: want a boolean, got %s", k, v.Signature())
			}
			so.external = b
		default:
			unknown = append(unknown, truncate(k, 64))
		}
	}
	if len(unknown) > 0 {
		return so, errInvalidArg("unknown options: %s", joinSorted(unknown))
	}
	if so.external && uid != 0 {
		return so, errAccessDenied("option %s is for root only (NetworkManager's plugin)", api.StartOptionExternalNetwork)
	}
	return so, nil
}

// netConfigOf is the NetworkConfig property of a session's status: the configuration an
// external-mode session published, or the empty dictionary.
func netConfigOf(st session.Status) map[string]dbus.Variant {
	rc := st.NetConfig
	if rc == nil {
		return (*api.NetConfig)(nil).Variants()
	}
	c := &api.NetConfig{Generation: st.NetGen, Device: rc.Link}
	if rc.MTU > 0 {
		c.MTU = uint32(rc.MTU)
	}
	if len(rc.ServerAddrs) > 0 {
		c.Server = rc.ServerAddrs[0]
	} else if st.Remote.IsValid() {
		c.Server = st.Remote.Addr().Unmap()
	}
	for _, a := range rc.Addrs {
		c.Addrs = append(c.Addrs, api.NetAddr{Prefix: a.Prefix, Peer: a.Peer})
		// A point-to-point peer is the tunnel's next hop (net30, p2p).
		if a.Peer.IsValid() && a.Peer.Is4() && !c.Gateway4.IsValid() {
			c.Gateway4 = a.Peer
		}
	}
	for _, r := range rc.Routes {
		c.Routes = append(c.Routes, api.NetRoute{Dst: r.Dst, Gateway: r.Gateway, ViaNetGateway: r.ViaNetGateway, Metric: uint32(max(r.Metric, 0))})
		// route-gateway is what routes without their own next hop use.
		if r.Gateway.Is4() && !c.Gateway4.IsValid() {
			c.Gateway4 = r.Gateway
		}
		if r.Gateway.Is6() && !c.Gateway6.IsValid() {
			c.Gateway6 = r.Gateway
		}
	}
	if rd := rc.Redirect; rd != nil {
		c.Redirect4, c.Redirect6 = !rd.NoIPv4, rd.IPv6
		if rd.Gateway4.IsValid() {
			c.Gateway4 = rd.Gateway4
		}
		if rd.Gateway6.IsValid() {
			c.Gateway6 = rd.Gateway6
		}
		for _, f := range []struct {
			on   bool
			name string
		}{{rd.Def1, "def1"}, {rd.Local, "local"}, {rd.AutoLocal, "autolocal"}, {rd.BypassDHCP, "bypass-dhcp"}, {rd.BypassDNS, "bypass-dns"}, {rd.BlockLocal, "block-local"}} {
			if f.on {
				c.RedirectFlags = append(c.RedirectFlags, f.name)
			}
		}
	}
	if d := rc.DNS; d != nil {
		c.DNS = append([]netip.Addr(nil), d.Servers...)
		c.SearchDomains = d.Search
		c.RoutingDomains = d.RoutingDomains
		c.DNSDefault = d.FullTunnel
	}
	return c.Variants()
}

// externalNote is the start log's remark for an external-mode session.
func externalNote(so startOptions) string {
	if !so.external {
		return ""
	}
	return "; external network mode: the caller applies the network settings"
}

// joinSorted lists names in a stable order for an error message.
func joinSorted(names []string) string {
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// applierGone ends an external-mode session whose applier left the bus: nobody applies or
// removes its network settings any more (NetworkManager's plugin was killed, or
// NetworkManager restarted and the plugin went with it), so keeping the tunnel would leave
// an orphaned tun device and session.
func (o *object) applierGone(name string) {
	if o.applier == "" || o.applier != name {
		return
	}
	t := o.tunnel()
	if t == nil {
		return
	}
	o.logf("%s, which applies this session's network settings, left the bus; disconnecting", name)
	t.Disconnect()
}
