package session

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine/push"
)

func pushedNet(t *testing.T, lines ...string) *config.NetSettings {
	t.Helper()
	r, err := push.Parse(lines, push.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	n, w := config.PushedNet(r.Net)
	if len(w) > 0 || len(r.Warnings) > 0 {
		t.Fatalf("warnings %v %v", w, r.Warnings)
	}
	return n
}

func TestCheckPushed(t *testing.T) {
	host := hostNet{
		Links: []netip.Prefix{
			netip.MustParsePrefix("192.168.77.10/24"),
			netip.MustParsePrefix("2001:db8:77::10/64"),
			netip.MustParsePrefix("fe80::1/64"),
		},
		Server: netip.MustParseAddr("198.51.100.1"),
	}
	for _, tc := range []struct {
		name  string
		lines []string
		topo  config.Topology
		want  string // "" = accepted
	}{
		{"tunnel address", []string{"ifconfig 10.8.0.2 255.255.255.0"}, config.TopologySubnet, ""},
		{"LAN address", []string{"ifconfig 192.168.77.99 255.255.255.0"}, config.TopologySubnet, "inside 192.168.77.0/24, a network directly connected"},
		{"host's own address", []string{"ifconfig 192.168.77.10 255.255.255.255"}, config.TopologySubnet, "an address this host already has"},
		{"server address", []string{"ifconfig 198.51.100.1 255.255.255.0"}, config.TopologySubnet, "the VPN server's own address"},
		{"network address", []string{"ifconfig 10.8.0.0 255.255.255.0"}, config.TopologySubnet, "the network address of 10.8.0.0/24"},
		{"broadcast address", []string{"ifconfig 10.8.0.255 255.255.255.0"}, config.TopologySubnet, "the broadcast address of 10.8.0.0/24"},
		{"net30 peer is no mask", []string{"ifconfig 10.8.0.6 10.8.0.5"}, config.TopologyNet30, ""},
		{"loopback address", []string{"ifconfig 127.0.0.2 255.0.0.0"}, config.TopologySubnet, "not a unicast address"},
		{"limited broadcast", []string{"ifconfig 255.255.255.255 255.255.255.0"}, config.TopologySubnet, "not a unicast address"},
		{"IPv6 LAN address", []string{"ifconfig-ipv6 2001:db8:77::99/64"}, 0, "inside 2001:db8:77::/64"},
		{"IPv6 tunnel address", []string{"ifconfig-ipv6 fd00:8::1000/64 fd00:8::1"}, 0, ""},
		{"route inside the LAN", []string{"route 192.168.77.5 255.255.255.255"}, 0, "would capture 192.168.77.0/24"},
		{"route equal to the LAN", []string{"route 192.168.77.0 255.255.255.0"}, 0, "would capture 192.168.77.0/24"},
		{"route containing the LAN", []string{"route 192.168.0.0 255.255.0.0"}, 0, ""},
		{"route via net_gateway", []string{"route 192.168.77.5 255.255.255.255 net_gateway"}, 0, ""},
		{"route to remote_host", []string{"route remote_host 255.255.255.255"}, 0, "a route to the VPN server into the tunnel"},
		{"IPv6 route inside the LAN", []string{"route-ipv6 2001:db8:77::/96"}, 0, "would capture 2001:db8:77::/64"},
		{"IPv6 default route", []string{"route-ipv6 ::/0"}, 0, ""},
		{"loopback DNS", []string{"dhcp-option DNS 127.0.0.1"}, 0, "dhcp-option DNS 127.0.0.1: a DNS server on this host's loopback"},
		{"loopback DNS6", []string{"dhcp-option DNS6 ::1"}, 0, "loopback"},
		{"loopback dns server", []string{"dns server 0 address 127.0.0.53"}, 0, "dns server 0 address 127.0.0.53: a DNS server on this host's loopback"},
		{"tunnel DNS", []string{"dhcp-option DNS 10.8.0.1", "dns server 0 address 10.8.0.53"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := pushedNet(t, tc.lines...)
			refused := checkPushed(n, tc.topo, host)
			got := strings.Join(refused, "\n")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("refused %q, want %q", got, tc.want)
			}
			if tc.want != "" {
				left := n.Ifconfig != nil || n.IfconfigIPv6 != nil || len(n.Routes)+len(n.RoutesIPv6)+len(n.DHCPOptions) > 0 ||
					n.DNS != nil && len(n.DNS.Servers) > 0 && len(n.DNS.Servers[0].Addresses) > 0
				if left {
					t.Errorf("refused setting left in place: %+v", n)
				}
			}
		})
	}
}

// TestApplyPushRefusesLANAddress: a refused pushed address is logged and named in
// the Connected state's reason; the rest of the push (routes, DNS) still applies.
func TestApplyPushRefusesLANAddress(t *testing.T) {
	r, fr, logs := newTestRunner(t, &config.Config{TunMTU: 1500})
	r.s.opts.readHost = func(netip.Addr) (hostNet, error) {
		return hostNet{Links: []netip.Prefix{netip.MustParsePrefix("10.8.0.77/24")}}, nil
	}
	if err := applyPushLines(r, labPush, netip.MustParseAddr("198.18.0.1")); err != nil {
		t.Fatal(err)
	}
	rc := fr.last()
	if len(rc.Addrs) != 0 {
		t.Errorf("LAN address applied: %v", rc.Addrs)
	}
	if rc.Redirect == nil || rc.DNS == nil {
		t.Errorf("the rest of the push was not applied: %+v", rc)
	}
	if !strings.Contains(logs(), "refusing pushed ifconfig 10.8.0.2 255.255.255.0: inside 10.8.0.0/24") {
		t.Errorf("refusal not logged:\n%s", logs())
	}
	if len(r.refused) != 1 {
		t.Errorf("refused %q", r.refused)
	}
}

// TestNotApplied: pushed settings the grammar accepts but Linux does not use are
// removed with a warning each, never dropped silently.
func TestNotApplied(t *testing.T) {
	n := pushedNet(t, "dhcp-option WINS 10.8.0.1", "dhcp-option DNS 10.8.0.1", "dhcp-option DISABLE-NBT",
		"route-gateway dhcp", "dns server 1 address 10.8.0.53", "dns server 1 dnssec yes", "dns server 1 sni dns.example")
	got := strings.Join(notApplied(n), "\n")
	for _, want := range []string{"dhcp-option WINS", "dhcp-option DISABLE-NBT",
		"route-gateway dhcp", "dns server 1 dnssec yes", "dns server 1 sni dns.example"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	if len(n.DHCPOptions) != 1 || n.DHCPOptions[0].Type != "DNS" || n.RouteGateway != nil ||
		n.DNS.Servers[0].DNSSEC != "" || n.DNS.Servers[0].SNI != "" || len(n.DNS.Servers[0].Addresses) != 1 {
		t.Errorf("left: %+v", n)
	}
}
