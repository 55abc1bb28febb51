package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParsePushReply(t *testing.T) {
	msg := "PUSH_REPLY,route-gateway 10.8.0.1,topology subnet,ping 10,ping-restart 120,ifconfig 10.8.0.2 255.255.255.0," +
		"peer-id 7,cipher AES-256-GCM,protocol-flags cc-exit tls-ekm dyn-tls-crypt,tun-mtu 1500,route 192.168.1.0 255.255.255.0," +
		"route-ipv6 2001:db8:1::/64,ifconfig-ipv6 2001:db8::1000/64 2001:db8::1,redirect-gateway def1 bypass-dhcp,dhcp-option DNS 10.8.0.1," +
		"dhcp-option DNS6 2001:db8::53,dhcp-option DOMAIN-SEARCH corp.example,dns server 0 address 10.8.0.53,auth-token SESS_ID_abc," +
		"auth-token-user Ym9i,explicit-exit-notify 2,key-derivation tls-ekm,block-ipv6,route-metric 50,mssfix 1400,route-delay 2 10,push-continuation 1\x00"
	p, w, err := ParsePushReply(msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != 0 {
		t.Errorf("warnings: %s", warnText(w))
	}
	if p.Net.RouteGateway.Addr != netip.MustParseAddr("10.8.0.1") || p.Net.Topology != TopologySubnet || *p.Ping != 10*time.Second ||
		*p.PingTimeout != 120*time.Second || p.PingTimeoutAction != PingRestart || p.Net.Ifconfig.Local.String() != "10.8.0.2" || *p.PeerID != 7 ||
		p.Cipher != "AES-256-GCM" || *p.TunMTU != 1500 || len(p.Net.Routes) != 1 || len(p.Net.RoutesIPv6) != 1 ||
		p.Net.IfconfigIPv6.Remote.String() != "2001:db8::1" || !p.Net.RedirectGateway.Def1 || len(p.Net.DHCPOptions) != 3 ||
		p.Net.DNS.Servers[0].Addresses[0].Addr().String() != "10.8.0.53" || p.AuthToken != "SESS_ID_abc" || p.AuthTokenUser != "bob" ||
		*p.ExplicitExitNotify != 2 || p.KeyDerivation != "tls-ekm" || !p.Net.BlockIPv6 || p.Net.RouteMetric != 50 || *p.MSSFix != 1400 || *p.RouteDelay != 2*time.Second || *p.RouteDelayWin != 10*time.Second || p.PushContinuation != 1 {
		t.Errorf("%+v", p)
	}
	if diff := cmp.Diff([]string{"cc-exit", "tls-ekm", "dyn-tls-crypt"}, p.ProtocolFlags); diff != "" {
		t.Error(diff)
	}
	if len(p.Options) != 26 {
		t.Errorf("%d options kept", len(p.Options))
	}
}

func TestParsePushDrops(t *testing.T) {
	tests := []struct{ opt, want string }{
		{"dev tun5", "PUSH_REPLY:1: warning: dropping pushed option dev: a server may not push it"},
		{"remote evil.example 1194", "dropping pushed option remote"},
		{"up /bin/sh", "dropping pushed option up"},
		{"ca /etc/passwd", "dropping pushed option ca"},
		{"script-security 3", "dropping pushed option script-security"},
		{"frobnicate 1", "ignoring unknown pushed option \"frobnicate\""},
		{"block-outside-dns", "ignoring pushed option block-outside-dns: Windows only"},
		{"route 10.0.0.0 255.0.255.0", "ignoring pushed option \"route 10.0.0.0 255.0.255.0\": netmask 255.0.255.0 is not contiguous"},
		{"cipher BF-CBC", "cipher BF-CBC is not supported"},
		{"peer-id 99999999", "is not a number below 2^24"},
		{"ifconfig 10.0.0.1", "wrong number of arguments"},
		{"route \"unterminated", "malformed pushed option"},
	}
	for _, tc := range tests {
		t.Run(tc.opt, func(t *testing.T) {
			p, w := ParsePush([]string{tc.opt})
			if len(p.Options) != 0 {
				t.Errorf("option kept: %v", p.Options)
			}
			if !strings.Contains(warnText(w), tc.want) {
				t.Errorf("warnings %q, want %q", warnText(w), tc.want)
			}
		})
	}
}

func TestConfigParsePushFilters(t *testing.T) {
	c, _, err := parseText(t, base+"pull-filter accept \"route 10.\"\npull-filter ignore \"route \"\npull-filter reject \"ifconfig-ipv6\"\nroute-nopull\n")
	if err != nil {
		t.Fatal(errText(err))
	}
	// route-nopull only drops what the filters let through; route 10. is accepted by the
	// filter but then dropped by route-nopull.
	p, w, err := c.ParsePush([]string{"route 10.1.0.0 255.255.0.0", "route 192.168.0.0 255.255.0.0", "dhcp-option DNS 1.1.1.1", "ping 5"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Net.Routes) != 0 || len(p.Net.DHCPOptions) != 0 || *p.Ping != 5*time.Second {
		t.Errorf("%+v", p)
	}
	got := warnText(w)
	for _, want := range []string{
		"PUSH_REPLY:1: warning: ignoring pushed option \"route 10.1.0.0 255.255.0.0\" (route-nopull)",
		"PUSH_REPLY:2: warning: ignoring pushed option \"route 192.168.0.0 255.255.0.0\" (pull-filter)",
		"PUSH_REPLY:3: warning: ignoring pushed option \"dhcp-option DNS 1.1.1.1\" (route-nopull)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings:\n%s\nwant %s", got, want)
		}
	}
	_, _, err = c.ParsePush([]string{"ping 5", "ifconfig-ipv6 2001:db8::2/64 2001:db8::1"})
	if err == nil || err.Error() != `PUSH_REPLY:2: pushed option "ifconfig-ipv6 2001:db8::2/64 2001:db8::1" rejected by pull-filter` {
		t.Errorf("err = %v", err)
	}
}

func TestConfigParsePushAcceptWins(t *testing.T) {
	c, _, err := parseText(t, base+"pull-filter accept \"route 10.\"\npull-filter ignore \"route \"\n")
	if err != nil {
		t.Fatal(errText(err))
	}
	p, _, err := c.ParsePush([]string{"route 10.1.0.0 255.255.0.0", "route 192.168.0.0 255.255.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Net.Routes) != 1 || p.Net.Routes[0].Network != "10.1.0.0" {
		t.Errorf("%+v", p.Net.Routes)
	}
}

func TestSplitPushReply(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"PUSH_REPLY,a,b 1,,c\x00", []string{"a", "b 1", "c"}, false},
		{"PUSH_REPLY", nil, false},
		{"PUSH_REPLYX,a", nil, true},
		{"AUTH_FAILED", nil, true},
		{"PUSH_REPLY," + strings.Repeat("a", MaxPushReplySize), nil, true},
	}
	for _, tc := range tests {
		got, err := SplitPushReply(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%.20q: err = %v", tc.in, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%.20q: %s", tc.in, diff)
		}
	}
}
