package push

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"route 10.0.0.0 255.0.0.0", []string{"route", "10.0.0.0", "255.0.0.0"}, false},
		{`"redirect-gateway" def1`, []string{"redirect-gateway", "def1"}, false},
		{`'route' "10.0.0.0"`, []string{"route", "10.0.0.0"}, false},
		{`r"ou"te x`, []string{"route", "x"}, false},
		{`\route x`, []string{"route", "x"}, false},
		{"\t route\v\fx\r", []string{"route", "x"}, false},
		{`dhcp-option DOMAIN "a b"`, []string{"dhcp-option", "DOMAIN", "a b"}, false},
		{`a "b\"c"`, []string{"a", `b"c`}, false},
		{`a 'b\c'`, []string{"a", `b\c`}, false},
		{"a #comment", []string{"a"}, false},
		{"a b#c", []string{"a", "b#c"}, false},
		{"; all comment", nil, false},
		{`"unterminated`, nil, true},
		{`trailing\`, nil, true},
		{`""`, []string{""}, false},
	} {
		got, err := Words(tc.in)
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Words(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseTyped(t *testing.T) {
	lines := strings.Split("route-gateway 10.8.0.1,topology subnet,ping 10,ping-restart 120,ifconfig 10.8.0.2 255.255.255.0,"+
		"peer-id 7,cipher aes-256-gcm,protocol-flags cc-exit tls-ekm,tun-mtu 1500,route 192.168.1.0 255.255.255.0,"+
		"auth-token SESS_ID_abc,auth-token-user Ym9i,explicit-exit-notify 2,key-derivation tls-ekm,mssfix 1400,route-delay 2 10,"+
		"reneg-sec 600 300,compress lz4-v2,push-continuation 1", ",")
	r, err := Parse(lines, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Warnings) != 0 {
		t.Errorf("warnings: %v", r.Warnings)
	}
	if *r.Ping != 10*time.Second || *r.PingTimeout != 120*time.Second || r.PingTimeoutAction != PingRestart || *r.PeerID != 7 ||
		r.Cipher != "AES-256-GCM" || *r.TunMTU != 1500 || r.AuthToken != "SESS_ID_abc" || r.AuthTokenUser != "bob" ||
		*r.ExplicitExitNotify != 2 || r.KeyDerivation != "tls-ekm" || *r.MSSFix != 1400 || *r.RouteDelay != 2*time.Second ||
		*r.RouteDelayWin != 10*time.Second || *r.Reneg != (Reneg{Max: 600 * time.Second, Min: 300 * time.Second}) || r.Compression != CompLZ4V2 {
		t.Errorf("%+v", r)
	}
	if !reflect.DeepEqual(r.ProtocolFlags, []string{"cc-exit", "tls-ekm"}) {
		t.Errorf("protocol-flags %q", r.ProtocolFlags)
	}
	var net []string
	for _, o := range r.Net {
		net = append(net, o.String())
	}
	if want := []string{"route-gateway 10.8.0.1", "topology subnet", "ifconfig 10.8.0.2 255.255.255.0", "route 192.168.1.0 255.255.255.0"}; !reflect.DeepEqual(net, want) {
		t.Errorf("net %q, want %q", net, want)
	}
	if len(r.Accepted) != 18 {
		t.Errorf("%d accepted", len(r.Accepted))
	}
	r, _ = Parse([]string{"keepalive 10 60"}, Policy{})
	if *r.Ping != 10*time.Second || *r.PingTimeout != time.Minute || r.PingTimeoutAction != PingRestart {
		t.Errorf("keepalive: %+v", r)
	}
	r, _ = Parse([]string{"ping-restart 60", "ping-exit 30"}, Policy{})
	if *r.PingTimeout != 30*time.Second || r.PingTimeoutAction != PingExit {
		t.Errorf("ping-exit after ping-restart: %+v", r)
	}
}

func TestParseWarnings(t *testing.T) {
	for _, tc := range []struct{ opt, want string }{
		{"dev tun5", `PUSH_REPLY:1: warning: ignoring pushed option "dev": unknown, or a server may not push it`},
		{"up /bin/sh", `ignoring pushed option "up": unknown`},
		{"--route 10.0.0.0", `ignoring pushed option "--route": unknown`},
		{"ROUTE 10.0.0.0", `ignoring pushed option "ROUTE": unknown`},
		{"block-outside-dns", "ignoring pushed option block-outside-dns: Windows only"},
		{"peer-id 99999999", "is not a number below 2^24"},
		{"ifconfig 10.0.0.1", "wrong number of arguments"},
		{`route "unterminated`, "malformed pushed option"},
		{"tun-mtu 100", "below 576"},
		{"reneg-sec 10 20", "above maximum"},
		{"ping soon", "not a number of seconds"},
		{"compress zstd", "unknown algorithm"},
		{"auth-token-user !!", "not base64"},
		{"route " + strings.Repeat("x ", MaxArgs+1), "wrong number of arguments"},
	} {
		r, err := Parse([]string{tc.opt}, Policy{})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Accepted) != 0 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0].String(), tc.want) {
			t.Errorf("%q: accepted %v, warnings %v; want %q", tc.opt, r.Accepted, r.Warnings, tc.want)
		}
	}
}

func TestFilters(t *testing.T) {
	pol := Policy{Filters: []Filter{
		{Accept, "route 10."},
		{Ignore, "route "},
		{Ignore, "ping"},
		{Ignore, "dhcp-option  DNS"}, // runs of blanks count as one
		{Reject, "ifconfig-ipv6"},
	}}
	r, err := Parse([]string{
		"route 10.1.0.0 255.255.0.0",
		`"route" 192.168.0.0 255.255.0.0`,
		"route-ipv6 2001:db8::/64",
		`"ping-exit" 60`,
		`p\ing 5`,
		"keepalive 10 60",
		`dhcp-option "DNS" 10.0.0.1`,
		`dhcp-option DOMAIN corp`,
	}, pol)
	if err != nil {
		t.Fatal(err)
	}
	var acc []string
	for _, o := range r.Accepted {
		acc = append(acc, o.String())
	}
	if want := []string{"route 10.1.0.0 255.255.0.0", "route-ipv6 2001:db8::/64", "keepalive 10 60", "dhcp-option DOMAIN corp"}; !reflect.DeepEqual(acc, want) {
		t.Errorf("accepted %q, want %q", acc, want)
	}
	if r.PingTimeout == nil || r.PingTimeoutAction != PingRestart {
		t.Errorf("keepalive not applied: %+v", r)
	}
	_, err = Parse([]string{"ping 1", `ifconfig-ipv6 "2001:db8::2/64"`}, pol)
	var rej *RejectError
	if !errors.As(err, &rej) || rej.Line != 2 || rej.Option != "ifconfig-ipv6 2001:db8::2/64" {
		t.Errorf("reject: %v", err)
	}
	r, _ = Parse([]string{`"redirect-gateway" def1`, "route-gateway 10.8.0.1", "ifconfig 10.8.0.2 255.255.255.0", "dns server 0 address 1.1.1.1"}, Policy{RouteNoPull: true})
	if len(r.Net) != 2 || r.Net[1].Name != "ifconfig" || len(r.Warnings) != 2 {
		t.Errorf("route-nopull: net %v warnings %v", r.Net, r.Warnings)
	}
}

// TestNeverEchoesToken sends auth-token in every shape that makes Parse warn or fail.
func TestNeverEchoesToken(t *testing.T) {
	const secret = "S3CRETTOKEN"
	for _, tc := range []struct {
		name    string
		filters []Filter
		opt     string
	}{
		{"wrong argument count", nil, "auth-token " + secret + " more"},
		{"malformed quoting", nil, `auth-token "` + secret},
		{"malformed quoted name", nil, `"auth-token" ` + secret + ` "`},
		{"bad base64 user", nil, "auth-token-user " + secret + "!"},
		{"too long", nil, "auth-token " + secret + strings.Repeat("x", 200)},
		{"pull-filter ignore", []Filter{{Ignore, "auth-token"}}, `"auth-token" ` + secret},
		{"pull-filter reject", []Filter{{Reject, "auth-token"}}, `auth\-token ` + secret},
	} {
		r, err := Parse([]string{"route 10.0.0.0 255.0.0.0", tc.opt}, Policy{Filters: tc.filters})
		if err != nil {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error leaks the token: %v", tc.name, err)
			}
			continue
		}
		if len(r.Warnings) == 0 {
			t.Errorf("%s: no warning", tc.name)
		}
		for _, w := range r.Warnings {
			if strings.Contains(w.String(), secret) {
				t.Errorf("%s: warning leaks the token: %v", tc.name, w)
			}
		}
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"auth-token SECRET", "auth-token [REDACTED]"},
		{"  auth-token\tSECRET", "auth-token [REDACTED]"},
		{`"auth-token" SECRET`, "auth-token [REDACTED]"},
		{`auth\-token SECRET`, "auth-token [REDACTED]"},
		{`au"th-token SECRET`, "auth-token [REDACTED]"},
		{"auth-token-user U0VDUkVU", "auth-token-user [REDACTED]"},
		{"auth-token SECRET extra", "auth-token [REDACTED]"},
		{"auth-token", "auth-token"},
		{"route 10.0.0.0 255.0.0.0", "route 10.0.0.0 255.0.0.0"},
		{"auth-tokenX SECRET", "auth-tokenX SECRET"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestParseOptionalNumbers: mssfix and explicit-exit-notify without their number take
// OpenVPN's defaults, and a number past the bound is not accepted.
func TestParseOptionalNumbers(t *testing.T) {
	r, err := Parse([]string{"mssfix", "explicit-exit-notify"}, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if r.MSSFix == nil || *r.MSSFix != 1492 || r.ExplicitExitNotify == nil || *r.ExplicitExitNotify != 1 {
		t.Errorf("mssfix %v, explicit-exit-notify %v; want 1492 and 1", r.MSSFix, r.ExplicitExitNotify)
	}
	for _, line := range []string{"mssfix 65536", "explicit-exit-notify 1001"} {
		r, err := Parse([]string{line}, Policy{})
		if err == nil && (r.MSSFix != nil || r.ExplicitExitNotify != nil) {
			t.Errorf("%q accepted: %+v", line, r)
		}
	}
}
