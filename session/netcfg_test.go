package session

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/routing"
)

func TestRoutingConfig(t *testing.T) {
	ip := netip.MustParseAddr
	pfx := netip.MustParsePrefix
	server := ip("198.18.0.1")
	for _, tc := range []struct {
		name      string
		net       config.NetSettings
		noExec    bool
		want      *routing.Config
		wantWarns int
	}{
		{
			name: "subnet with route-gateway and routes",
			net: config.NetSettings{
				Topology:     config.TopologySubnet,
				Ifconfig:     &config.Ifconfig{Local: ip("10.8.0.2"), Remote: ip("255.255.255.0")},
				RouteGateway: &config.RouteGateway{Addr: ip("10.8.0.1")},
				RouteMetric:  5,
				Routes: []config.Route{
					{Network: "10.9.0.0", Netmask: ip("255.255.255.0"), Metric: -1},
					{Network: "192.0.2.7", Gateway: "net_gateway", Metric: 3},
					{Network: "remote_host", Netmask: ip("255.255.255.255"), Gateway: "net_gateway", Metric: -1},
				},
				RedirectGateway: &config.RedirectGateway{Def1: true, BypassDHCP: true},
				DHCPOptions:     []config.DHCPOption{{Type: "DNS", Value: "10.8.0.1"}, {Type: "DOMAIN", Value: "lab.test"}},
			},
			want: &routing.Config{
				Link: "tun0", MTU: 1500,
				Addrs: []routing.Addr{{Prefix: pfx("10.8.0.2/24")}},
				Routes: []routing.Route{
					{Dst: pfx("10.9.0.0/24"), Gateway: ip("10.8.0.1"), Metric: 5},
					{Dst: pfx("192.0.2.7/32"), ViaNetGateway: true, Metric: 3},
					{Dst: pfx("198.18.0.1/32"), ViaNetGateway: true, Metric: 5},
				},
				Redirect:    &routing.Redirect{Def1: true, BypassDHCP: true, Gateway4: ip("10.8.0.1"), Metric: 5},
				ServerAddrs: []netip.Addr{server},
				DNS:         &routing.DNS{Servers: []netip.Addr{ip("10.8.0.1")}, Search: []string{"lab.test"}, FullTunnel: true},
			},
		},
		{
			name: "net30 uses the peer as gateway",
			net: config.NetSettings{
				Topology: config.TopologyNet30,
				Ifconfig: &config.Ifconfig{Local: ip("10.8.0.6"), Remote: ip("10.8.0.5")},
				Routes:   []config.Route{{Network: "10.8.0.1", Metric: -1}},
			},
			want: &routing.Config{
				Link: "tun0", MTU: 1500,
				Addrs:       []routing.Addr{{Prefix: pfx("10.8.0.6/32"), Peer: ip("10.8.0.5")}},
				Routes:      []routing.Route{{Dst: pfx("10.8.0.1/32"), Gateway: ip("10.8.0.5")}},
				ServerAddrs: []netip.Addr{server},
			},
		},
		{
			name: "ipv6 and bad entries",
			net: config.NetSettings{
				Topology:     config.TopologySubnet,
				Ifconfig:     &config.Ifconfig{Local: ip("10.8.0.2"), Remote: ip("255.0.255.0")},
				IfconfigIPv6: &config.IfconfigIPv6{Local: pfx("fd00::1000/64"), Remote: ip("fd00::1")},
				RoutesIPv6:   []config.RouteIPv6{{Prefix: pfx("fd01::/64"), Metric: -1}},
				Routes:       []config.Route{{Network: "vpn.example", Metric: -1}},
			},
			want: &routing.Config{
				Link: "tun0", MTU: 1500,
				Addrs:       []routing.Addr{{Prefix: pfx("10.8.0.2/32")}, {Prefix: pfx("fd00::1000/64")}},
				Routes:      []routing.Route{{Dst: pfx("fd01::/64"), Gateway: ip("fd00::1")}},
				ServerAddrs: []netip.Addr{server},
			},
			wantWarns: 2,
		},
		{
			name: "route-noexec and ifconfig-noexec",
			net: config.NetSettings{
				Topology: config.TopologySubnet,
				Ifconfig: &config.Ifconfig{Local: ip("10.8.0.2"), Remote: ip("255.255.255.0")},
				Routes:   []config.Route{{Network: "10.9.0.0", Netmask: ip("255.255.255.0"), Metric: -1}},
			},
			noExec: true,
			want:   &routing.Config{Link: "tun0", MTU: 1500, ServerAddrs: []netip.Addr{server}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, warns := routingConfig(netInput{Net: &tc.net, Link: "tun0", MTU: 1500, Server: server,
				RouteNoExec: tc.noExec, IfconfigNoExec: tc.noExec})
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("routing config (-want +got):\n%s", diff)
			}
			if len(warns) != tc.wantWarns {
				t.Errorf("warnings %q, want %d", warns, tc.wantWarns)
			}
		})
	}
}

func TestMergeNet(t *testing.T) {
	ip := netip.MustParseAddr
	base := config.NetSettings{
		Topology:    config.TopologyNet30,
		Routes:      []config.Route{{Network: "10.1.0.0", Netmask: ip("255.255.0.0")}},
		DHCPOptions: []config.DHCPOption{{Type: "DNS", Value: "192.0.2.1"}},
	}
	pushed := config.NetSettings{
		Topology:    config.TopologySubnet,
		Routes:      []config.Route{{Network: "10.2.0.0", Netmask: ip("255.255.0.0")}},
		DHCPOptions: []config.DHCPOption{{Type: "DNS", Value: "10.8.0.1"}},
		Ifconfig:    &config.Ifconfig{Local: ip("10.8.0.2"), Remote: ip("255.255.255.0")},
	}
	got := mergeNet(&base, &pushed)
	if got.Topology != config.TopologySubnet || len(got.Routes) != 2 || len(got.DHCPOptions) != 2 || got.Ifconfig == nil {
		t.Errorf("merged %+v", got)
	}
	if len(base.Routes) != 1 {
		t.Error("merge modified the profile's settings")
	}
}

func TestMaskBits(t *testing.T) {
	for _, tc := range []struct {
		mask string
		want int
	}{
		{"255.255.255.0", 24}, {"255.255.255.255", 32}, {"0.0.0.0", 0}, {"255.255.255.252", 30}, {"255.0.255.0", -1}, {"::", -1},
	} {
		if got := maskBits(netip.MustParseAddr(tc.mask)); got != tc.want {
			t.Errorf("maskBits(%s) = %d, want %d", tc.mask, got, tc.want)
		}
	}
}
