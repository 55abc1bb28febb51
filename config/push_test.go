package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ovpnd/ovpnd/engine/push"
)

// TestPushedNet: the network options of a push, parsed by push.Parse, get their values read
// with the profile grammar.
func TestPushedNet(t *testing.T) {
	lines := strings.Split("route-gateway 10.8.0.1,topology subnet,ifconfig 10.8.0.2 255.255.255.0,route 192.168.1.0 255.255.255.0,"+
		"route-ipv6 2001:db8:1::/64,ifconfig-ipv6 2001:db8::1000/64 2001:db8::1,redirect-gateway def1 bypass-dhcp,dhcp-option DNS 10.8.0.1,"+
		"dhcp-option DNS6 2001:db8::53,dhcp-option DOMAIN-SEARCH corp.example,dns server 0 address 10.8.0.53,block-ipv6,route-metric 50,"+
		"\"route\" 10.9.0.0 255.255.0.0,route 10.0.0.0 255.0.255.0", ",")
	r, err := push.Parse(lines, push.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	n, w := PushedNet(r.Net)
	if len(w) != 1 || !strings.Contains(w[0].String(), `PUSH_REPLY:15: warning: ignoring pushed option "route 10.0.0.0 255.0.255.0": netmask 255.0.255.0 is not contiguous`) {
		t.Errorf("warnings: %s", warnText(w))
	}
	if n.RouteGateway.Addr != netip.MustParseAddr("10.8.0.1") || n.Topology != TopologySubnet || n.Ifconfig.Local.String() != "10.8.0.2" ||
		len(n.Routes) != 2 || n.Routes[1].Network != "10.9.0.0" || len(n.RoutesIPv6) != 1 || n.IfconfigIPv6.Remote.String() != "2001:db8::1" ||
		!n.RedirectGateway.Def1 || len(n.DHCPOptions) != 3 || n.DNS.Servers[0].Addresses[0].Addr().String() != "10.8.0.53" ||
		!n.BlockIPv6 || n.RouteMetric != 50 {
		t.Errorf("%+v", n)
	}
}

// TestPushPolicyFromProfile: the profile's pull-filter and route-nopull reach push.Parse as
// data, and act on the canonical option text.
func TestPushPolicyFromProfile(t *testing.T) {
	c, _, err := parseText(t, base+"pull-filter accept \"route 10.\"\npull-filter ignore \"route \"\npull-filter ignore ping\npull-filter reject \"ifconfig-ipv6\"\nroute-nopull\n")
	if err != nil {
		t.Fatal(errText(err))
	}
	// route-nopull only drops what the filters let through; route 10. is accepted by the
	// filter but then dropped by route-nopull.
	r, err := push.Parse([]string{"route 10.1.0.0 255.255.0.0", `"route" 192.168.0.0 255.255.0.0`, `dhcp-option DNS 1.1.1.1`, "ping-exit 5", "peer-id 3"}, c.PushPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Net) != 0 || r.PingTimeout != nil || r.PeerID == nil || *r.PeerID != 3 {
		t.Errorf("%+v", r)
	}
	var got []string
	for _, w := range r.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		`PUSH_REPLY:1: warning: ignoring pushed option "route 10.1.0.0 255.255.0.0" (route-nopull)`,
		`PUSH_REPLY:2: warning: ignoring pushed option "route 192.168.0.0 255.255.0.0" (pull-filter)`,
		`PUSH_REPLY:3: warning: ignoring pushed option "dhcp-option DNS 1.1.1.1" (route-nopull)`,
		`PUSH_REPLY:4: warning: ignoring pushed option "ping-exit 5" (pull-filter)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	_, err = push.Parse([]string{"ping 5", `'ifconfig-ipv6' 2001:db8::2/64 2001:db8::1`}, c.PushPolicy())
	if err == nil || err.Error() != `PUSH_REPLY:2: pushed option "ifconfig-ipv6 2001:db8::2/64 2001:db8::1" rejected by pull-filter` {
		t.Errorf("err = %v", err)
	}
}

// TestTunMaxMTU: tun-max-mtu is read, printed, and bounded by the receive buffers.
func TestTunMaxMTU(t *testing.T) {
	c, _, err := parseText(t, base+"tun-max-mtu 9000\n")
	if err != nil {
		t.Fatal(errText(err))
	}
	if c.TunMaxMTU != 9000 || !strings.Contains(string(c.Format()), "\ntun-max-mtu 9000\n") {
		t.Errorf("tun-max-mtu %d; printed:\n%s", c.TunMaxMTU, c.Format())
	}
	for _, bad := range []string{"tun-max-mtu 20000\n", "tun-max-mtu 100\n", "tun-max-mtu x\n"} {
		if _, _, err := parseText(t, base+bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
