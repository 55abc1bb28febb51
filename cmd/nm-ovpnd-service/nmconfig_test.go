package main

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	api "github.com/ovpnd/ovpnd/dbus"
)

// TestMapConfig covers the mapping rules of docs/networkmanager.md that the connect
// sequence test does not: point-to-point addresses, routes via a next hop outside the
// tunnel, split tunnels, routing domains, IPv6-only tunnels, and refusals.
func TestMapConfig(t *testing.T) {
	var logs []string
	logf := func(f string, a ...any) {
		logs = append(logs, strings.TrimSpace(strings.ReplaceAll(fmtS(f, a...), "\n", " ")))
	}

	// net30: the peer is the next hop; a route via 10.8.0.1 (outside the /32) is dropped,
	// one via the peer kept; no redirect: never-default.
	c := &api.NetConfig{Generation: 1, Device: "tun3", Server: mustAddr("192.0.2.7"),
		Addrs:          []api.NetAddr{{Prefix: mustPrefix("10.8.0.6/32"), Peer: mustAddr("10.8.0.5")}},
		Gateway4:       mustAddr("10.8.0.5"),
		Routes:         []api.NetRoute{{Dst: mustPrefix("10.30.0.0/16"), Gateway: mustAddr("10.8.0.5")}, {Dst: mustPrefix("10.31.0.0/16"), Gateway: mustAddr("10.8.0.1")}},
		RedirectFlags:  nil,
		RoutingDomains: []string{"svc.example"},
	}
	nc, err := mapConfig(c, logf)
	if err != nil {
		t.Fatal(err)
	}
	if nc.ip6 != nil || nc.config["has-ip6"].Value() != false || nc.config["has-ip4"].Value() != true {
		t.Errorf("families: %v", nc.config)
	}
	if _, ok := nc.config["mtu"]; ok {
		t.Errorf("an MTU of 0 was sent")
	}
	ip4 := nc.ip4
	if ip4["ptp"].Value() != u32("10.8.0.5") || ip4["internal-gateway"].Value() != u32("10.8.0.5") || ip4["never-default"].Value() != true {
		t.Errorf("Ip4Config %v", ip4)
	}
	if r := ip4["routes"].Value().([][]uint32); len(r) != 1 || r[0][0] != u32("10.30.0.0") || r[0][2] != u32("10.8.0.5") {
		t.Errorf("routes %v", r)
	}
	if d := ip4["domains"].Value().([]string); len(d) != 1 || d[0] != "~svc.example" {
		t.Errorf("domains %v", d)
	}
	if !strings.Contains(strings.Join(logs, "\n"), "route 10.31.0.0/16 via 10.8.0.1: its next hop is outside the tunnel") {
		t.Errorf("log: %q", logs)
	}

	// IPv6 only, with an IPv6 server: gateway as ay, routes a(ayuayu), redirect ipv6.
	logs = nil
	c6 := &api.NetConfig{Generation: 1, Device: "tun4", Server: mustAddr("2001:db8::1"),
		Addrs:  []api.NetAddr{{Prefix: mustPrefix("fd00::2/64")}},
		Routes: []api.NetRoute{{Dst: mustPrefix("fd01::/48")}, {Dst: mustPrefix("10.0.0.0/8")}},
		DNS:    []netipAddr{mustAddr("10.8.0.1"), mustAddr("fd00::53")}, Redirect6: true, RedirectFlags: []string{"block-local"},
		SearchDomains: []string{"corp.example"},
	}
	nc, err = mapConfig(c6, logf)
	if err != nil {
		t.Fatal(err)
	}
	if nc.ip4 != nil || len(nc.config["gateway"].Value().([]byte)) != 16 {
		t.Errorf("Config %v", nc.config)
	}
	if nc.ip6["never-default"].Value() != false || nc.ip6["routes"].Signature() != dbus.ParseSignatureMust("a(ayuayu)") {
		t.Errorf("Ip6Config %v", nc.ip6)
	}
	if r := nc.ip6["routes"].Value().([]route6); len(r) != 1 || r[0].Prefix != 48 {
		t.Errorf("IPv6 routes %v", r)
	}
	if d := nc.ip6["domains"].Value().([]string); len(d) != 1 {
		t.Errorf("IPv6 domains %v", d)
	}
	all := strings.Join(logs, "\n")
	for _, want := range []string{"route 10.0.0.0/8: no IPv4 address", "IPv4 DNS servers [10.8.0.1] without an IPv4 tunnel address", "redirect-gateway block-local: not available"} {
		if !strings.Contains(all, want) {
			t.Errorf("log lacks %q:\n%s", want, all)
		}
	}

	// NetworkManager needs an address and the server.
	if _, err := mapConfig(&api.NetConfig{Device: "tun0", Server: mustAddr("192.0.2.1")}, logf); err == nil {
		t.Error("a configuration without addresses was accepted")
	}
	if _, err := mapConfig(&api.NetConfig{Device: "tun0", Addrs: c.Addrs}, logf); err == nil {
		t.Error("a configuration without the server was accepted")
	}
}

type netipAddr = netip.Addr

func fmtS(f string, a ...any) string { return fmt.Sprintf(f, a...) }
