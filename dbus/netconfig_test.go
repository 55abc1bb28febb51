package dbus

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	godbus "github.com/godbus/dbus/v5"
)

func sampleNetConfig() *NetConfig {
	return &NetConfig{
		Generation: 7, Device: "tun0", MTU: 1400, Server: netip.MustParseAddr("198.18.0.1"),
		Addrs:    []NetAddr{{Prefix: netip.MustParsePrefix("10.8.0.6/32"), Peer: netip.MustParseAddr("10.8.0.5")}, {Prefix: netip.MustParsePrefix("fd00::1000/64")}},
		Gateway4: netip.MustParseAddr("10.8.0.5"), Gateway6: netip.MustParseAddr("fd00::1"),
		Routes: []NetRoute{
			{Dst: netip.MustParsePrefix("10.9.0.0/16"), Gateway: netip.MustParseAddr("10.8.0.5")},
			{Dst: netip.MustParsePrefix("192.0.2.0/24"), ViaNetGateway: true, Metric: 3},
			{Dst: netip.MustParsePrefix("fd01::/64")},
		},
		Redirect4: true, Redirect6: true, RedirectFlags: []string{"def1", "bypass-dhcp"},
		DNS:           []netip.Addr{netip.MustParseAddr("10.8.0.1"), netip.MustParseAddr("fd00::53")},
		SearchDomains: []string{"corp.example"}, RoutingDomains: []string{"svc.example"}, DNSDefault: true,
	}
}

// TestNetConfigRoundTrip: what the daemon sends is what the plugin reads, through a real
// D-Bus marshalling of the a{sv}.
func TestNetConfigRoundTrip(t *testing.T) {
	want := sampleNetConfig()
	msg := &godbus.Message{Type: godbus.TypeSignal, Headers: map[godbus.HeaderField]godbus.Variant{
		godbus.FieldPath: godbus.MakeVariant(godbus.ObjectPath("/x")), godbus.FieldInterface: godbus.MakeVariant("a.b"),
		godbus.FieldMember: godbus.MakeVariant("C"), godbus.FieldSignature: godbus.MakeVariant(godbus.SignatureOf(map[string]godbus.Variant{})),
	}, Body: []any{want.Variants()}}
	var buf strings.Builder
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	back, err := godbus.DecodeMessage(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseNetConfig(back.Body[0].(map[string]godbus.Variant))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if c, err := ParseNetConfig(map[string]godbus.Variant{}); c != nil || err != nil {
		t.Errorf("empty: %v %v", c, err)
	}
}

// TestParseNetConfigRefuses: malformed values name the key and are never half-used.
func TestParseNetConfigRefuses(t *testing.T) {
	many := make([]string, MaxNetDNS+1)
	for i := range many {
		many[i] = "10.0.0.1"
	}
	for _, tc := range []struct {
		key  string
		val  any
		want string
	}{
		{netKeyDevice, "", "device"},
		{netKeyDevice, "../../etc", "device"},
		{netKeyDevice, uint32(3), "device"},
		{netKeyServer, "not-an-ip", "server"},
		{netKeyAddresses, []wireAddr{{"10.8.0.2", ""}}, "addresses"},
		{netKeyAddresses, []wireAddr{{"10.8.0.2/24", "fd00::1"}}, "other family"},
		{netKeyRoutes, []wireRoute{{"10.0.0.0/8", "fd00::1", false, 0}}, "other family"},
		{netKeyRoutes, []wireRoute{{"fe80::1%eth0/64", "", false, 0}}, "routes"},
		{netKeyGateway4, "fd00::1", "not IPv4"},
		{netKeyDNS, many, "limit"},
		{netKeySearchDomains, []string{"a\nb"}, "not a name"},
	} {
		m := sampleNetConfig().Variants()
		m[tc.key] = godbus.MakeVariant(tc.val)
		c, err := ParseNetConfig(m)
		if err == nil || c != nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%v: %v, %v; want an error with %q", tc.key, tc.val, c, err, tc.want)
		}
	}
}

// FuzzParseNetConfig: whatever a peer puts in the dictionary, the parser returns a valid
// configuration or an error, and never panics.
func FuzzParseNetConfig(f *testing.F) {
	f.Add("tun0", "198.18.0.1", "10.8.0.2/24", "10.8.0.1", "10.9.0.0/16", "10.8.0.1", "corp.example", uint32(1400))
	f.Add("tun0", "fd00::1", "fd00::2/64", "", "::/0", "fd00::1", "", uint32(0))
	f.Add("", "x", "1.2.3.4/33", "::ffff:1.2.3.4", "0/0", "1.2.3.4%x", "a..b", uint32(1<<31))
	f.Fuzz(func(t *testing.T, dev, server, addr, peer, dst, gw, dom string, mtu uint32) {
		m := map[string]godbus.Variant{
			netKeyDevice: godbus.MakeVariant(dev), netKeyServer: godbus.MakeVariant(server), netKeyMTU: godbus.MakeVariant(mtu),
			netKeyAddresses:     godbus.MakeVariant([]wireAddr{{addr, peer}}),
			netKeyRoutes:        godbus.MakeVariant([]wireRoute{{dst, gw, false, 0}}),
			netKeyGateway4:      godbus.MakeVariant(gw),
			netKeySearchDomains: godbus.MakeVariant([]string{dom}),
			netKeyDNS:           godbus.MakeVariant([]string{peer}),
		}
		c, err := ParseNetConfig(m)
		if err != nil {
			return
		}
		if c.Device == "" || len(c.Addrs) != 1 || !c.Addrs[0].Prefix.IsValid() || len(c.Routes) != 1 || !c.Routes[0].Dst.IsValid() {
			t.Fatalf("accepted %+v", c)
		}
		for _, d := range c.DNS {
			if !d.IsValid() {
				t.Fatalf("invalid DNS accepted: %+v", c)
			}
		}
	})
}
