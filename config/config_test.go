package config

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/asn1"
	"github.com/ovpnd/ovpnd/engine/statickey"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestSplitWords(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		err      bool
	}{
		{"plain", "remote a.example 1194", []string{"remote", "a.example", "1194"}, false},
		{"tabs and CR", "remote\ta.example  1194\r", []string{"remote", "a.example", "1194"}, false},
		{"hash comment", "# remote x", nil, false},
		{"semicolon comment after space", "remote x ;comment", []string{"remote", "x"}, false},
		{"hash inside word", "verify-x509-name a#b", []string{"verify-x509-name", "a#b"}, false},
		{"double quotes", `ca "my keys/ca.crt"`, []string{"ca", "my keys/ca.crt"}, false},
		{"single quotes keep backslash", `ca 'a\b c'`, []string{"ca", `a\b c`}, false},
		{"backslash space", `ca my\ keys/ca.crt`, []string{"ca", "my keys/ca.crt"}, false},
		{"escaped quote in double quotes", `x "a\"b"`, []string{"x", `a"b`}, false},
		{"escaped backslash", `x a\\b`, []string{"x", `a\b`}, false},
		{"empty quoted word", `x ""`, []string{"x", ""}, false},
		{"hash in quotes", `x "#not a comment"`, []string{"x", "#not a comment"}, false},
		{"unterminated", `x "abc`, nil, true},
		{"trailing backslash", `x abc\`, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitWords(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("words (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDirectives checks the effect of each supported directive on the model.
func TestDirectives(t *testing.T) {
	sha := sha256.Sum256(nil)
	_ = sha
	tests := []struct {
		name  string
		extra string
		check func(t *testing.T, c *Config)
	}{
		{"defaults", "", func(t *testing.T, c *Config) {
			cn := c.Connections[0]
			if cn.Port != 1194 || cn.Proto != ProtoUDP || cn.ConnectRetry != time.Second || cn.ConnectRetryMaxWait != 300*time.Second ||
				cn.ConnectTimeout != 120*time.Second || !cn.Bind || cn.LocalPort != 1194 {
				t.Errorf("connection defaults: %+v", cn)
			}
			if !c.TLSClient || !c.Pull || c.Auth != "SHA1" || c.RenegInterval != time.Hour || c.HandWindow != time.Minute ||
				c.TLSVersionMin.Version != tls.VersionTLS12 || c.PingTimeout != 120*time.Second || c.Net.Topology != TopologyNet30 ||
				c.ResolvRetry != ResolvRetryInfinite || c.TunMTU != 1500 || c.Verb != 1 || c.ReplayWindow != 64 {
				t.Errorf("defaults: %+v", c)
			}
			if diff := cmp.Diff([]string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"}, c.DataCiphers); diff != "" {
				t.Error(diff)
			}
		}},
		{"remotes and proto", "remote b.example 443 tcp6\nproto udp4\nrport 1195\nnobind\n", func(t *testing.T, c *Config) {
			if len(c.Connections) != 2 {
				t.Fatalf("%d connections", len(c.Connections))
			}
			a, b := c.Connections[0], c.Connections[1]
			if a.Port != 1194 || a.Proto != ProtoUDP || a.Family != FamilyIPv4 || a.Bind {
				t.Errorf("first: %+v", a)
			}
			if b.Remote != "b.example" || b.Port != 443 || b.Proto != ProtoTCP || b.Family != FamilyIPv6 {
				t.Errorf("second: %+v", b)
			}
		}},
		{"port then rport", "rport 2000\nport 3000\n", func(t *testing.T, c *Config) {
			// remote names 1194 explicitly, so only lport changes.
			if c.Connections[0].Port != 1194 || c.Connections[0].LocalPort != 3000 {
				t.Errorf("%+v", c.Connections[0])
			}
		}},
		{"tcp does not bind", "proto tcp\n", func(t *testing.T, c *Config) {
			if c.Connections[0].Bind || c.Connections[0].LocalPort != 0 {
				t.Errorf("%+v", c.Connections[0])
			}
		}},
		{"lport binds tcp", "proto tcp\nlport 5000\nlocal 192.0.2.1\n", func(t *testing.T, c *Config) {
			cn := c.Connections[0]
			if !cn.Bind || cn.LocalPort != 5000 || cn.Local != "192.0.2.1" {
				t.Errorf("%+v", cn)
			}
		}},
		{"retry settings", "connect-retry 5 60\nconnect-retry-max 3\nserver-poll-timeout 10\nexplicit-exit-notify\n", func(t *testing.T, c *Config) {
			cn := c.Connections[0]
			if cn.ConnectRetry != 5*time.Second || cn.ConnectRetryMaxWait != time.Minute || cn.ConnectRetryMax != 3 || cn.ConnectTimeout != 10*time.Second || cn.ExplicitExitNotify != 1 {
				t.Errorf("%+v", cn)
			}
		}},
		{"keepalive", "keepalive 10 60\n", func(t *testing.T, c *Config) {
			if c.Ping != 10*time.Second || c.PingTimeout != time.Minute || c.PingTimeoutAction != PingRestart {
				t.Errorf("ping %v timeout %v", c.Ping, c.PingTimeout)
			}
		}},
		{"ping-exit", "ping 5\nping-exit 30\n", func(t *testing.T, c *Config) {
			if c.Ping != 5*time.Second || c.PingTimeout != 30*time.Second || c.PingTimeoutAction != PingExit {
				t.Errorf("ping %v timeout %v", c.Ping, c.PingTimeout)
			}
		}},
		{"timers", "reneg-sec 600\nreneg-bytes 1000\nreneg-pkts 50\nhand-window 30\ntran-window 60\ntls-timeout 4\nreplay-window 512 60\nresolv-retry 30\n", func(t *testing.T, c *Config) {
			if c.RenegInterval != 10*time.Minute || c.RenegBytes != 1000 || c.RenegPkts != 50 || c.HandWindow != 30*time.Second ||
				c.TranWindow != time.Minute || c.TLSTimeout != 4*time.Second || c.ReplayWindow != 512 || c.ReplayTime != time.Minute || c.ResolvRetry != 30*time.Second {
				t.Errorf("%+v", c)
			}
		}},
		{"data-ciphers DEFAULT", "data-ciphers AES-192-GCM:DEFAULT:AES-128-GCM\n", func(t *testing.T, c *Config) {
			if diff := cmp.Diff([]string{"AES-192-GCM", "AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"}, c.DataCiphers); diff != "" {
				t.Error(diff)
			}
		}},
		{"dns-updown disable", "dns-updown disable\n", func(t *testing.T, c *Config) {}},
		{"ciphers", "data-ciphers aes-128-gcm:CHACHA20-POLY1305\ndata-ciphers-fallback AES-256-CBC\ncipher AES-256-GCM\nauth sha256\n", func(t *testing.T, c *Config) {
			// An explicit list is negotiated as given: cipher is not appended to it.
			if diff := cmp.Diff([]string{"AES-128-GCM", "CHACHA20-POLY1305"}, c.DataCiphers); diff != "" {
				t.Error(diff)
			}
			if c.DataCiphersFallback != "AES-256-CBC" || c.Auth != "SHA256" {
				t.Errorf("fallback %q auth %q", c.DataCiphersFallback, c.Auth)
			}
		}},
		{"tls options", "tls-version-min 1.3 or-highest\ntls-version-max 1.3\ntls-cipher ECDHE-RSA-AES256-GCM-SHA384:TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256\ntls-ciphersuites TLS_AES_128_GCM_SHA256\ntls-cert-profile preferred\n", func(t *testing.T, c *Config) {
			if c.TLSVersionMin != (TLSVersion{tls.VersionTLS13, true}) || c.TLSVersionMax.Version != tls.VersionTLS13 ||
				c.TLSCipher != "ECDHE-RSA-AES256-GCM-SHA384:TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256" || c.TLSCipherSuites != "TLS_AES_128_GCM_SHA256" || c.TLSCertProfile != "preferred" {
				t.Errorf("%+v", c)
			}
		}},
		{"server verification", "verify-x509-name 'CN=vpn, O=x' subject\nremote-cert-tls server\n", func(t *testing.T, c *Config) {
			if *c.VerifyX509Name != (VerifyX509Name{"CN=vpn, O=x", "subject"}) || c.RemoteCertTLS != "server" || c.RemoteCertKU != nil {
				t.Errorf("%+v %q %v", c.VerifyX509Name, c.RemoteCertTLS, c.RemoteCertKU)
			}
		}},
		{"remote-cert-ku values", "remote-cert-ku a0 0x88\nremote-cert-eku serverAuth\n", func(t *testing.T, c *Config) {
			if diff := cmp.Diff([]uint16{0xa0, 0x88}, c.RemoteCertKU); diff != "" {
				t.Error(diff)
			}
		}},
		{"remote-cert-ku without values", "remote-cert-ku\n", func(t *testing.T, c *Config) {
			if diff := cmp.Diff([]uint16{KURequired}, c.RemoteCertKU); diff != "" {
				t.Error(diff)
			}
		}},
		{"peer fingerprint", "peer-fingerprint " + strings.Repeat("AB:", 31) + "CD\n", func(t *testing.T, c *Config) {
			if len(c.PeerFingerprints) != 1 || c.PeerFingerprints[0][0] != 0xAB || c.PeerFingerprints[0][31] != 0xCD {
				t.Errorf("%x", c.PeerFingerprints)
			}
		}},
		{"comp-lzo", "comp-lzo\nallow-compression asym\n", func(t *testing.T, c *Config) {
			if c.Compression != (Compression{Mode: CompressCompLZO, CompLZO: "adaptive", Allow: AllowAsym}) {
				t.Errorf("%+v", c.Compression)
			}
		}},
		{"stub framing with allow-compression no", "allow-compression no\ncompress stub-v2\n", func(t *testing.T, c *Config) {
			if c.Compression.Mode != CompressStubV2 || c.Compression.Allow != AllowNo {
				t.Errorf("%+v", c.Compression)
			}
		}},
		{"compress lz4-v2", "compress lz4-v2\n", func(t *testing.T, c *Config) {
			if c.Compression.Mode != CompressLZ4V2 || c.Compression.Allow != AllowAsym {
				t.Errorf("%+v", c.Compression)
			}
		}},
		{"network", "route 10.0.0.0 255.0.0.0 vpn_gateway 5\nroute net_gateway\nroute-ipv6 2001:db8:1::/48 2001:db8::1 7\nroute-gateway 10.8.0.1\nroute-metric 20\n" +
			"redirect-gateway def1 bypass-dhcp ipv6\nifconfig 10.8.0.2 255.255.255.0\nifconfig-ipv6 2001:db8::2/64 2001:db8::1\ntopology subnet\nblock-ipv6\n" +
			"dhcp-option DNS 10.8.0.1\ndhcp-option DNS6 2001:db8::53\ndhcp-option DOMAIN corp.example\ndhcp-option DOMAIN-SEARCH a.example b.example\n" +
			"route-nopull\nroute-noexec\nifconfig-noexec\nroute-delay 2 10\n", func(t *testing.T, c *Config) {
			n := c.Net
			want := []Route{
				{Network: "10.0.0.0", Netmask: netip.MustParseAddr("255.0.0.0"), Gateway: "vpn_gateway", Metric: 5},
				{Network: "net_gateway", Netmask: netip.MustParseAddr("255.255.255.255"), Metric: -1},
			}
			if diff := cmp.Diff(want, n.Routes, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Error(diff)
			}
			if len(n.RoutesIPv6) != 1 || n.RoutesIPv6[0].Prefix.String() != "2001:db8:1::/48" || n.RoutesIPv6[0].Metric != 7 {
				t.Errorf("%+v", n.RoutesIPv6)
			}
			if n.RouteGateway.Addr.String() != "10.8.0.1" || n.RouteMetric != 20 || !n.RedirectGateway.Def1 || !n.RedirectGateway.IPv6 ||
				!n.RedirectGateway.BypassDHCP || n.Ifconfig.Remote.String() != "255.255.255.0" || n.IfconfigIPv6.Local.String() != "2001:db8::2/64" ||
				n.Topology != TopologySubnet || !n.BlockIPv6 {
				t.Errorf("%+v", n)
			}
			if got := n.DNSServers(); len(got) != 2 {
				t.Errorf("DNS servers %v", got)
			}
			if diff := cmp.Diff([]string{"corp.example", "a.example b.example"}, n.SearchDomains()); diff != "" {
				t.Error(diff)
			}
			if !c.RouteNoPull || !c.RouteNoExec || !c.IfconfigNoExec || c.RouteDelay != 2*time.Second {
				t.Errorf("flags %+v", c)
			}
		}},
		{"dns option", "dns search-domains a.example\ndns server 2 address 10.0.0.53 [2001:db8::53]:853\ndns server 1 address 10.0.0.1\ndns server 2 transport DoT\ndns server 2 sni dns.example\ndns server 2 dnssec yes\ndns server 1 resolve-domains corp.example\n", func(t *testing.T, c *Config) {
			d := c.Net.DNS
			if len(d.Servers) != 2 || d.Servers[0].Priority != 1 || d.Servers[1].Transport != "DoT" || d.Servers[1].Addresses[1].Port() != 853 ||
				d.Servers[1].SNI != "dns.example" || d.Servers[1].DNSSEC != "yes" || d.Servers[0].ResolveDomains[0] != "corp.example" {
				t.Errorf("%+v", d)
			}
		}},
		{"pull-filter", "pull-filter ignore \"route \"\npull-filter reject redirect-gateway\n", func(t *testing.T, c *Config) {
			want := []PullFilter{{FilterIgnore, "route "}, {FilterReject, "redirect-gateway"}}
			if diff := cmp.Diff(want, c.PullFilters); diff != "" {
				t.Error(diff)
			}
		}},
		{"misc flags", "persist-tun\npersist-key\nremote-random\nauth-nocache\nauth-retry interact\nverb 4\nverb 5\nmssfix 1400 mtu\ntun-mtu 1400\n", func(t *testing.T, c *Config) {
			if !c.PersistTun || !c.PersistKey || !c.RemoteRandom || !c.AuthNoCache || c.AuthRetry != AuthRetryInteract ||
				c.Verb != 5 || c.MSSFix != 1400 || !c.MSSFixMTU || c.TunMTU != 1400 {
				t.Errorf("%+v", c)
			}
		}},
		{"static-challenge", "static-challenge \"Enter OTP: \" 1\n", func(t *testing.T, c *Config) {
			if d := cmp.Diff(&StaticChallenge{Text: "Enter OTP: ", Echo: true}, c.StaticChallenge); d != "" {
				t.Error(d)
			}
		}},
		{"static-challenge concat", "static-challenge PIN 0 concat\n", func(t *testing.T, c *Config) {
			if d := cmp.Diff(&StaticChallenge{Text: "PIN", Concat: true}, c.StaticChallenge); d != "" {
				t.Error(d)
			}
		}},
		{"tls-auth with key-direction", "tls-auth ta.key\nkey-direction 1\n", func(t *testing.T, c *Config) {
			if c.TLSWrap.Mode != WrapTLSAuth || c.TLSWrap.Direction != KeyDir1 || len(c.TLSWrap.Key) != 256 {
				t.Errorf("%+v", c.TLSWrap)
			}
		}},
		{"tls-auth direction argument", "tls-auth ta.key 0\n", func(t *testing.T, c *Config) {
			if c.TLSWrap.Direction != KeyDir0 {
				t.Errorf("%+v", c.TLSWrap)
			}
		}},
		{"tls-crypt", "tls-crypt ta.key\n", func(t *testing.T, c *Config) {
			if c.TLSWrap.Mode != WrapTLSCrypt || len(c.TLSWrap.Key) != 256 {
				t.Errorf("%+v", c.TLSWrap)
			}
		}},
		{"tls-crypt-v2", "tls-crypt-v2 tc2-client.key\n", func(t *testing.T, c *Config) {
			w := c.TLSWrap
			if w.Mode != WrapTLSCryptV2 || len(w.Key) != 256 || len(w.WKc) < statickey.MinWKcLen || !bytes.Contains(w.PEM, []byte(statickey.TLSCryptV2ClientPEMType)) {
				t.Errorf("mode %v key %d wkc %d", w.Mode, len(w.Key), len(w.WKc))
			}
		}},
		{"cert and key", "cert client.crt\nkey client.key\nextra-certs ca.crt\n", func(t *testing.T, c *Config) {
			if c.Cert == nil || c.Cert.Leaf.Subject.CommonName != "client1" || len(c.Cert.Certificate) != 2 || len(c.ExtraCerts) != 1 {
				t.Errorf("%+v", c.Cert)
			}
		}},
		{"rsa pkcs1 key", "cert rsa-client.crt\nkey rsa-client.key\n", func(t *testing.T, c *Config) {
			if c.Cert == nil || c.Cert.Leaf.Subject.CommonName != "client2" {
				t.Errorf("%+v", c.Cert)
			}
		}},
		{"auth-user-pass file with CRLF", "auth-user-pass user.txt\n", func(t *testing.T, c *Config) {
			if *c.AuthUserPass != (AuthUserPass{Username: "alice", Password: "s3cret pass"}) {
				t.Errorf("%+v", c.AuthUserPass)
			}
		}},
		{"dev name with dev-type", "dev vpn0\ndev-type tun\n", func(t *testing.T, c *Config) {
			if c.Dev != "vpn0" || c.DevType != DevTUN {
				t.Errorf("%q", c.Dev)
			}
		}},
		{"dev null", "dev null\n", func(t *testing.T, c *Config) {
			if c.DevType != DevNull {
				t.Errorf("%v", c.DevType)
			}
		}},
		{"ping-restart 0 stays off", "ping-restart 0\n", func(t *testing.T, c *Config) {
			if c.PingTimeout != 0 {
				t.Errorf("ping timeout %v, want 0 (off)", c.PingTimeout)
			}
		}},
		{"ping-exit", "ping-exit 30\n", func(t *testing.T, c *Config) {
			if c.PingTimeout != 30*time.Second || c.PingTimeoutAction != PingExit {
				t.Errorf("%v %v", c.PingTimeout, c.PingTimeoutAction)
			}
		}},
		{"later reneg-sec wins", "reneg-sec 0\nreneg-sec 432000\n", func(t *testing.T, c *Config) {
			if c.RenegInterval != 432000*time.Second {
				t.Errorf("%v", c.RenegInterval)
			}
		}},
		{"comp-lzo then compress lzo", "comp-lzo\ncompress lzo\n", func(t *testing.T, c *Config) {
			if c.Compression.Mode != CompressLZO {
				t.Errorf("%v", c.Compression.Mode)
			}
		}},
		{"proto tcp-client then udp", "proto tcp-client\nproto udp\n", func(t *testing.T, c *Config) {
			if c.Connections[0].Proto != ProtoUDP || !c.Connections[0].Bind {
				t.Errorf("%+v", c.Connections[0])
			}
		}},
		{"remote-cert-tls then eku keeps the key usage part", "remote-cert-tls server\nremote-cert-eku 1.2.3\n", func(t *testing.T, c *Config) {
			if c.RemoteCertTLS != "" || c.RemoteCertEKU != "1.2.3" || !slices.Equal(c.RemoteCertKU, []uint16{KURequired}) {
				t.Errorf("tls %q eku %q ku %v", c.RemoteCertTLS, c.RemoteCertEKU, c.RemoteCertKU)
			}
		}},
		{"remote-cert-tls then ku keeps the extended key usage part", "remote-cert-tls server\nremote-cert-ku a0\n", func(t *testing.T, c *Config) {
			if c.RemoteCertTLS != "" || c.RemoteCertEKU != oidServerAuth || !slices.Equal(c.RemoteCertKU, []uint16{0xa0}) {
				t.Errorf("tls %q eku %q ku %v", c.RemoteCertTLS, c.RemoteCertEKU, c.RemoteCertKU)
			}
		}},
		{"remote-cert-ku then remote-cert-tls", "remote-cert-ku a0\nremote-cert-eku 1.2.3\nremote-cert-tls server\n", func(t *testing.T, c *Config) {
			if c.RemoteCertTLS != "server" || c.RemoteCertEKU != "" || c.RemoteCertKU != nil {
				t.Errorf("tls %q eku %q ku %v", c.RemoteCertTLS, c.RemoteCertEKU, c.RemoteCertKU)
			}
		}},
		{"ns-cert-type", "ns-cert-type server\n", func(t *testing.T, c *Config) {
			if c.NSCertType != "server" {
				t.Errorf("%q", c.NSCertType)
			}
		}},
		{"tls-auth file then inline keeps the direction", "tls-auth missing.key 1\n<tls-auth>\n" + readKey(t, "ta.key") + "</tls-auth>\n", func(t *testing.T, c *Config) {
			if c.TLSWrap.Mode != WrapTLSAuth || c.TLSWrap.Direction != KeyDir1 {
				t.Errorf("%+v", c.TLSWrap)
			}
		}},
		{"cipher not appended to the default list either", "cipher AES-192-CBC\n", func(t *testing.T, c *Config) {
			if !slices.Equal(c.DataCiphers, []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"}) {
				t.Errorf("%v", c.DataCiphers)
			}
		}},
		{"cipher not appended to an explicit list", "data-ciphers AES-128-CBC\ncipher AES-192-CBC\n", func(t *testing.T, c *Config) {
			if !slices.Equal(c.DataCiphers, []string{"AES-128-CBC"}) {
				t.Errorf("%v", c.DataCiphers)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := base + tc.extra
			if strings.Contains(tc.extra, "auth-user-pass ") {
				text = strings.Replace(base, "auth-user-pass\n", "", 1) + tc.extra
			}
			if strings.HasPrefix(tc.extra, "dev ") {
				text = strings.Replace(text, "dev tun\n", "", 1)
			}
			c, _, err := parseText(t, text)
			if err != nil {
				t.Fatalf("unexpected error:\n%s", errText(err))
			}
			tc.check(t, c)
			// Every configuration must print to a fixpoint.
			checkFixpoint(t, c)
		})
	}
}

func checkFixpoint(t *testing.T, c *Config) {
	t.Helper()
	out := c.Format()
	c2, _, err := ParseInline("printed", out)
	if err != nil {
		t.Fatalf("printed profile does not parse:\n%s\n---\n%s", errText(err), out)
	}
	if out2 := c2.Format(); !bytes.Equal(out, out2) {
		t.Fatalf("printing is not a fixpoint:\n%s", cmp.Diff(string(out), string(out2)))
	}
	if d := modelDiff(c, c2); d != "" {
		t.Fatalf("the printed profile means something else (-original +printed):\n%s\n---\n%s", d, out)
	}
}

// modelDiff compares two parsed profiles by meaning: every exported field, certificates and
// keys by value (their Equal methods); the printer's own sources are left out.
func modelDiff(a, b *Config) string {
	return cmp.Diff(a, b, cmpopts.IgnoreUnexported(Config{}), cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}, netip.AddrPort{}))
}

// TestErrors checks error messages, including those that name both lines of a conflict.
func TestErrors(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"tls-client without pull", strings.Replace(base, "client\n", "tls-client\n", 1), "test.conf: tls-client without pull (peer-to-peer TLS mode) is not supported"},
		{"static-challenge format", base + "static-challenge OTP 0 base64\n", "test.conf:6: static-challenge: unknown format \"base64\" (want scrv1 or concat)"},
		{"static-challenge echo", base + "static-challenge OTP yes\n", "test.conf:6: static-challenge: ECHO must be 0 or 1, not \"yes\""},
		{"unknown directive", base + "frobnicate\n", "test.conf:6: unknown directive \"frobnicate\""},
		{"ignore-unknown-option", base + "ignore-unknown-option frob\nfrob 1\nfrab\n", "test.conf:8: unknown directive \"frab\""},
		{"wrong arg count", base + "ping\n", "test.conf:6: ping: wrong number of arguments; usage: ping SECONDS"},
		{"bad number", base + "ping x\n", "test.conf:6: ping: \"x\" is not a number"},
		{"tls-auth and tls-crypt", base + "tls-auth ta.key 1\ntls-crypt ta.key\n", "test.conf:7: tls-crypt ta.key conflicts with tls-auth ta.key 1 on line 6"},
		{"keepalive and ping", base + "keepalive 10 60\nping 20\n", "test.conf:7: ping 20 conflicts with keepalive 10 60 on line 6"},
		{"ping-restart and ping-exit", base + "ping-restart 60\nping-exit 60\n", "test.conf:7: ping-exit 60 conflicts with ping-restart 60 on line 6"},
		{"key-direction conflict", base + "tls-auth ta.key 0\nkey-direction 1\n", "test.conf:7: key-direction 1 conflicts with the direction 0 given by tls-auth on line 6"},
		{"cert without key", base + "cert client.crt\n", "test.conf:6: cert given without key"},
		{"key mismatch", base + "cert client.crt\nkey other.key\n", "test.conf:7: key other.key does not match the certificate client.crt on line 6"},
		{"pkcs12 and cert", base + "pkcs12 client.p12\ncert client.crt\nkey client.key\n", "test.conf:7: cert conflicts with pkcs12 on line 6"},
		{"wrong pem for key", base + "cert client.crt\nkey ca.crt\n", "test.conf:7: key: ca.crt: PEM type is \"CERTIFICATE\", want a private key"},
		{"static key for tls-crypt-v2", base + "tls-crypt-v2 ta.key\n", `test.conf:6: tls-crypt-v2: ta.key: parsing tls-crypt-v2 client key: this is an "OpenVPN Static key V1" (a tls-auth or tls-crypt key), not an "OpenVPN tls-crypt-v2 client key"; use it with tls-crypt`},
		{"tls-cipher of unknown names only", base + "tls-cipher FOO-BAR:BAZ-QUX\n", `test.conf:6: tls-cipher: no cipher suite in "FOO-BAR:BAZ-QUX" is known`},
		{"tls-cipher only dhe with tls-version-max 1.2", base + "tls-version-max 1.2\ntls-cipher DHE-RSA-AES128-GCM-SHA256\n", "test.conf:7: tls-cipher leaves no suite for TLS 1.2 and below, and tls-version-max 1.2 rules out TLS 1.3"},
		{"removed option", base + "ncp-disable\n", "test.conf:6: ncp-disable is not supported: removed in OpenVPN 2.6; ignore-unknown-option ncp-disable skips it"},
		{"ns-cert-type value", base + "ns-cert-type peer\n", `test.conf:6: ns-cert-type: want server or client, not "peer"`},
		{"compression refused", base + "allow-compression no\ncomp-lzo yes\n", "test.conf:7: comp-lzo yes conflicts with allow-compression no"},
		{"v2 key as tls-auth", base + "tls-auth tc2-client.key\n", `test.conf:6: tls-auth: tc2-client.key: parsing static key: this is a PEM "OpenVPN tls-crypt-v2 client key", not an OpenVPN static key`},
		{"missing file", base + "cert nope.crt\nkey client.key\n", "test.conf:6: cert: nope.crt: file does not exist"},
		{"remote-cert-ku not hex", base + "remote-cert-ku a0 zz\n", `test.conf:6: remote-cert-ku: key usage "zz" is not a hex number`},
		{"tls-cipher rule", base + "tls-cipher HIGH:!aNULL\n", `test.conf:6: tls-cipher: OpenSSL cipher rule "HIGH" is not supported`},
		{"tls-ciphersuites unknown", base + "tls-ciphersuites TLS_AES_256_GCM_SHA384:TLS_FOO\n", `test.conf:6: tls-ciphersuites: unknown TLS 1.3 cipher suite "TLS_FOO"`},
		{"tls-ciphersuites only ccm", base + "tls-ciphersuites TLS_AES_128_CCM_SHA256\n", "test.conf:6: tls-ciphersuites: no cipher suite in"},
		{"tls-ciphersuites tls12 suite", base + "tls-ciphersuites ECDHE-RSA-AES256-GCM-SHA384\n", "test.conf:6: tls-ciphersuites: unknown TLS 1.3 cipher suite"},
		{"tap", base + "dev-type tap\n", "test.conf:6: dev-type: tap devices"},
		{"server proto", base + "proto tcp-server\n", "test.conf:6: proto: tcp-server is a server mode"},
		{"unsupported cipher", base + "data-ciphers BF-CBC\n", "test.conf:6: data-ciphers: cipher \"BF-CBC\" is not supported"},
		{"bad route", base + "route 10.0.0.0 255.0.255.0\n", "test.conf:6: route: netmask 255.0.255.0 is not contiguous"},
		{"bad dhcp option", base + "dhcp-option DNS nope\n", "test.conf:6: dhcp-option: DNS \"nope\" is not an IP address"},
		{"connection block with global only directive", base2() + "<connection>\nremote a.example\nverb 3\n</connection>\n", "test.conf:7: verb is not allowed inside <connection>"},
		{"nested connection", base2() + "<connection>\nremote a.example\n<connection>\nremote b\n</connection>\n</connection>\n", "inline block <connection> has no closing"},
		{"connection without remote", base2() + "<connection>\nproto tcp\n</connection>\n", "test.conf:5: <connection> block must contain exactly one remote, found 0"},
		{"inline without block", base + "tls-crypt [inline]\n", "test.conf:6: tls-crypt [inline] but no <tls-crypt> block follows"},
		{"unknown block", base + "<foo>\nx\n</foo>\n", "test.conf:6: unknown inline block <foo>"},
		{"stray close", base + "</ca>\n", "test.conf:6: </ca> without an opening block"},
		{"inline for non-inline directive", base + "<secret>\nx\n</secret>\n", "test.conf:6: secret is not supported"},
		{"not a client", "dev tun\nremote a\nca ca.crt\nauth-user-pass\n", "test.conf: not a client profile"},
		{"dns-updown script", base + "dns-updown /etc/openvpn/dns-updown\n", "test.conf:6: dns-updown: \"/etc/openvpn/dns-updown\" is refused: ovpnd never runs scripts"},
		{"dns-updown force", base + "dns-updown force\n", "test.conf:6: dns-updown: \"force\" is refused"},
		{"route-table", base + "route-table 100\n", "test.conf:6: route-table is not supported: ovpnd installs routes in the main routing table only"},
		{"no credentials", "client\ndev tun\nremote a\nca ca.crt\n", "test.conf: no client credentials"},
		{"custom dev needs type", "client\ndev vpn0\nremote a\nca ca.crt\nauth-user-pass\n", "test.conf:2: cannot tell the type of device \"vpn0\""},
		{"bad fingerprint", base + "peer-fingerprint AB:CD\n", "test.conf:6: peer-fingerprint: fingerprint \"AB:CD\" is not 32"},
		{"encrypted key", base + "cert client.crt\n<key>\n-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n</key>\n", "private key (inline block on line 7) is encrypted and there is no passphrase for it: ovpnctl up and ovpnd run ask for it"},
		{"tls-version-max too low", base + "tls-version-max 1.1\n", "test.conf:6: tls-version-max: TLS 1.1 is below"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := parseText(t, tc.text)
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if c != nil {
				t.Error("config returned with an error")
			}
			if !strings.Contains(errText(err), tc.want) {
				t.Errorf("errors:\n%s\nwant one containing:\n%s", errText(err), tc.want)
			}
			for _, e := range Errors(err) {
				if _, ok := e.(*Error); !ok {
					t.Errorf("error %v is %T, want *Error", e, e)
				}
			}
		})
	}
}

func base2() string { return "client\ndev tun\nca ca.crt\nauth-user-pass\n" }

func TestWarnings(t *testing.T) {
	tests := []struct{ name, extra, want string }{
		{"script", "script-security 2\n", "test.conf:6: warning: ignoring script-security: ovpnd never runs scripts"},
		{"up", "up /etc/openvpn/up.sh\n", "test.conf:6: warning: ignoring up:"},
		{"windows", "block-outside-dns\n", "test.conf:6: warning: ignoring block-outside-dns: Windows only"},
		{"legacy cipher ignored", "cipher AES-256-CBC\n", "test.conf:6: warning: DEPRECATED OPTION: --cipher set to 'AES-256-CBC' but missing in --data-ciphers (AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305) (the default). OpenVPN ignores --cipher for cipher negotiations, and so does ovpnd"},
		{"cipher missing from explicit data-ciphers", "data-ciphers AES-128-CBC\ncipher AES-192-CBC\n", "test.conf:7: warning: DEPRECATED OPTION: --cipher set to 'AES-192-CBC' but missing in --data-ciphers (AES-128-CBC) on line 6. OpenVPN ignores --cipher for cipher negotiations, and so does ovpnd"},
		{"ns-cert-type", "ns-cert-type server\n", "test.conf:6: warning: --ns-cert-type is DEPRECATED.  Use --remote-cert-tls instead. (ovpnd still enforces it, as OpenVPN does.)"},
		{"ignore-unknown-option for a removed option", "ignore-unknown-option ncp-disable\nncp-disable\n", "test.conf:7: warning: ignoring ncp-disable (listed in ignore-unknown-option)"},
		{"proxy retry", "http-proxy-retry\nsocks-proxy-retry\n", "test.conf:7: warning: ignoring socks-proxy-retry: deprecated"},
		{"tls-cipher unknown name", "tls-cipher ECDHE-RSA-AES256-GCM-SHA384:FOO-BAR\n", `test.conf:6: warning: tls-cipher: dropping unknown cipher suite "FOO-BAR"`},
		{"tls-cipher tls13 name", "tls-cipher TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES256-GCM-SHA384\n", "test.conf:6: warning: tls-cipher: dropping TLS_AES_128_GCM_SHA256: it is a TLS 1.3 suite"},
		{"tls-cipher only dhe", "tls-cipher TLS-DHE-RSA-WITH-AES-256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256\n", "test.conf:6: warning: tls-cipher: no suite in the list is left for TLS 1.2 and below; only TLS 1.3 can be negotiated"},
		{"dev twice", "dev tun1\n", "test.conf:6: warning: dev tun1 overrides dev tun on line 2 (the later line wins, as in OpenVPN)"},
		{"proto twice", "proto tcp-client\nproto tcp\n", "test.conf:7: warning: proto tcp overrides proto tcp-client on line 6"},
		{"comp-lzo then compress", "comp-lzo\ncompress lzo\n", "test.conf:7: warning: compress lzo overrides comp-lzo on line 6"},
		{"reneg-sec twice", "reneg-sec 0\nreneg-sec 432000\n", "test.conf:7: warning: reneg-sec 432000 overrides reneg-sec 0 on line 6"},
		{"remote-cert-tls then eku", "remote-cert-tls server\nremote-cert-eku 1.2.3\n", "test.conf:7: warning: remote-cert-eku 1.2.3 overrides the extended key usage check of remote-cert-tls server on line 6"},
		{"remote-cert-ku then tls", "remote-cert-ku a0\nremote-cert-tls server\n", "test.conf:7: warning: remote-cert-tls server overrides remote-cert-ku a0 on line 6"},
		{"ca file then inline", "<ca>\n" + readKey(t, "ca.crt") + "</ca>\n", "test.conf:6: warning: <ca> overrides ca ca.crt on line 4"},
		{"unknown cipher", "cipher BF-CBC\n", "test.conf:6: warning: DEPRECATED OPTION: --cipher set to 'BF-CBC' but missing in --data-ciphers"},
		{"tls-auth bidi", "tls-auth ta.key\n", "test.conf:6: warning: tls-auth without a key direction"},
		{"key-direction with tls-crypt", "tls-crypt ta.key\nkey-direction 1\n", "test.conf:7: warning: key-direction has no effect with tls-crypt"},
		{"ignore-unknown-option", "ignore-unknown-option frob\nfrob 1\n", "test.conf:7: warning: ignoring unknown directive \"frob\""},
		{"link-mtu", "link-mtu 1500\n", "test.conf:6: warning: ignoring link-mtu: deprecated in OpenVPN 2.6 and not used by ovpnd, which sizes packets from tun-mtu; set tun-mtu instead"},
		{"replay-window time", "replay-window 128 30\n", "test.conf:6: warning: replay-window: the time part (30 seconds) is not applied"},
		{"tls-cipher dropped", "tls-cipher DHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384\n", "test.conf:6: warning: tls-cipher: dropping DHE-RSA-AES256-GCM-SHA384: crypto/tls does not implement it"},
		{"tls-cipher seclevel", "tls-cipher DEFAULT:@SECLEVEL=0\n", "test.conf:6: warning: tls-cipher: dropping @SECLEVEL=0"},
		{"tls-cipher insecure", "tls-cipher AES128-SHA\n", "test.conf:6: warning: tls-cipher: TLS_RSA_WITH_AES_128_CBC_SHA is an insecure cipher suite"},
		{"tls-ciphersuites restriction", "tls-ciphersuites TLS-AES-256-GCM-SHA384\n", "test.conf:6: warning: tls-ciphersuites: crypto/tls still offers every TLS 1.3 suite"},
		{"bind ipv6only", "bind ipv6only\n", "test.conf:6: warning: bind ipv6only: the ipv6only flag is not applied"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, w, err := parseText(t, base+tc.extra)
			if err != nil {
				t.Fatal(errText(err))
			}
			if !strings.Contains(warnText(w), tc.want) {
				t.Errorf("warnings:\n%s\nwant:\n%s", warnText(w), tc.want)
			}
		})
	}
}

func TestConnectionBlocks(t *testing.T) {
	text := base2() + "connect-retry 3\nproto tcp\n<connection>\nremote a.example 1000\n</connection>\n<connection>\nremote b.example\nproto udp6\nconnect-retry 9 90\nnobind\nfloat\n</connection>\n"
	c, _, err := parseText(t, text)
	if err != nil {
		t.Fatal(errText(err))
	}
	want := []Connection{
		{Remote: "a.example", Port: 1000, Proto: ProtoTCP, ConnectRetry: 3 * time.Second, ConnectRetryMaxWait: 300 * time.Second, ConnectTimeout: 120 * time.Second},
		{Remote: "b.example", Port: 1194, Proto: ProtoUDP, Family: FamilyIPv6, ConnectRetry: 9 * time.Second, ConnectRetryMaxWait: 90 * time.Second, ConnectTimeout: 120 * time.Second, Float: true},
	}
	if diff := cmp.Diff(want, c.Connections); diff != "" {
		t.Errorf("connections (-want +got):\n%s", diff)
	}
	checkFixpoint(t, c)
}

func TestInlineBinding(t *testing.T) {
	ta := readKey(t, "ta.key")
	text := base + "tls-auth [inline] 1\n<tls-auth>\r\n" + strings.ReplaceAll(ta, "\n", "\r\n") + "</tls-auth>\r\n"
	c, _, err := parseText(t, text)
	if err != nil {
		t.Fatal(errText(err))
	}
	if c.TLSWrap.Mode != WrapTLSAuth || c.TLSWrap.Direction != KeyDir1 {
		t.Errorf("%+v", c.TLSWrap)
	}
}

func TestParseInlineRefusesFiles(t *testing.T) {
	_, _, err := ParseInline("daemon", []byte(base))
	want := `daemon:4: ca: names the file "ca.crt"; only inline blocks are accepted here`
	if err == nil || !strings.Contains(errText(err), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestLimits(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"file size", base + strings.Repeat("# filler\n", MaxConfigSize/9+1), "configuration is larger than"},
		{"line length", base + "verify-x509-name " + strings.Repeat("a", MaxLineLength) + "\n", "test.conf:6: line is longer than"},
		{"inline size", base + "<ca>\n" + strings.Repeat("A", 64) + strings.Repeat("\n"+strings.Repeat("A", 64), MaxInlineSize/65+1) + "\n</ca>\n", "test.conf:6: inline block <ca> is larger than"},
		{"args", base + "route" + strings.Repeat(" x", MaxArgs+1) + "\n", "test.conf:6: route: more than 16 arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseText(t, tc.text)
			if err == nil || !strings.Contains(errText(err), tc.want) {
				t.Fatalf("err = %v, want %q", errText(err), tc.want)
			}
		})
	}
}

// TestCorpusValid loads every profile in testdata/valid from disk (so relative paths resolve
// against the profile's folder) and checks that printing is a fixpoint.
func TestCorpusValid(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*")
	if len(files) == 0 {
		t.Fatal("empty corpus")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, _, err := Load(f)
			if err != nil {
				t.Fatal(errText(err))
			}
			checkFixpoint(t, c)
		})
	}
}

// TestCorpusInvalid loads every profile in testdata/invalid; each lists the errors it must
// produce as "# want: LINE: text" comments.
func TestCorpusInvalid(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = Load(f)
			if err == nil {
				t.Fatal("no error")
			}
			got := errText(err)
			n := 0
			for _, l := range strings.Split(string(data), "\n") {
				want, ok := strings.CutPrefix(l, "# want: ")
				if !ok {
					continue
				}
				n++
				line, msg, _ := strings.Cut(want, ": ")
				prefix := f + ":" + line + ": "
				if line == "0" {
					prefix = f + ": "
				}
				if !strings.Contains(got, prefix+msg) {
					t.Errorf("errors:\n%s\nwant:\n%s%s", got, prefix, msg)
				}
			}
			if n == 0 {
				t.Fatal("no # want: lines")
			}
			if c := len(Errors(err)); c != n {
				t.Errorf("%d errors, want %d:\n%s", c, n, got)
			}
		})
	}
}

// TestDebianSampleClient parses the client.conf shipped with Debian's openvpn package, with
// its ca.crt, client.crt and client.key supplied from the test keys.
func TestDebianSampleClient(t *testing.T) {
	const path = "/usr/share/doc/openvpn/examples/sample-config-files/client.conf"
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skip(path + " is absent (install the openvpn package)")
	}
	if err != nil {
		t.Fatal(err)
	}
	c, w, err := Parse(path, data, FSOpener(material(t)))
	if err != nil {
		t.Fatal(errText(err))
	}
	if len(c.Connections) != 1 || c.Connections[0].Remote != "my-server-1" || c.Connections[0].Bind || c.RemoteCertTLS != "server" || c.Cert == nil {
		t.Errorf("%+v", c)
	}
	t.Log(warnText(w))
	checkFixpoint(t, c)
}

func TestLoadResolvesAgainstConfigDir(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "my profiles")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "ca.crt"), []byte(readKey(t, "ca.crt")), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(sub, "a.conf")
	if err := os.WriteFile(p, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir) // the working directory has no ca.crt
	if _, _, err := Load(p); err != nil {
		t.Fatal(errText(err))
	}
}

func TestPKCS12IterationLimit(t *testing.T) {
	der, err := os.ReadFile(filepath.Join(keyDir, "client.p12"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPKCS12Work(der); err != nil {
		t.Fatalf("real bundle refused: %v", err)
	}
	type digestInfo struct {
		Alg    asn1.ObjectIdentifier
		Digest []byte
	}
	type macData struct {
		Mac  digestInfo
		Salt []byte
		Iter int
	}
	type pbe struct {
		Salt []byte
		Iter int
	}
	for _, tc := range []struct {
		name string
		v    any
		ok   bool
	}{
		{"mac ok", struct{ V, M any }{3, macData{digestInfo{asn1.ObjectIdentifier{1, 3}, []byte{1}}, []byte{2}, 2048}}, true},
		{"mac huge", struct{ V, M any }{3, macData{digestInfo{asn1.ObjectIdentifier{1, 3}, []byte{1}}, []byte{2}, 1 << 31}}, false},
		{"pbe huge", struct{ A, P any }{asn1.ObjectIdentifier{1, 2}, pbe{[]byte{1, 2}, maxPKCS12Iterations + 1}}, false},
		{"pbe ok", struct{ A, P any }{asn1.ObjectIdentifier{1, 2}, pbe{[]byte{1, 2}, maxPKCS12Iterations}}, true},
	} {
		der, err := asn1.Marshal(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		// Also wrapped in an OCTET STRING, as ContentInfo data is.
		wrapped, _ := asn1.Marshal(der)
		for _, d := range [][]byte{der, wrapped} {
			if err := checkPKCS12Work(d); (err == nil) != tc.ok {
				t.Errorf("%s: err = %v", tc.name, err)
			}
		}
	}
}

func TestTLSCipherList(t *testing.T) {
	for _, tc := range []struct {
		name, list string
		want       []uint16
	}{
		{"openssl names in order", "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384", []uint16{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}},
		{"iana names with dashes", "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256:TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}},
		{"lower case and duplicates", "ecdhe-rsa-aes128-sha:ECDHE-RSA-AES128-SHA", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}},
		{"missing suites dropped", "DHE-RSA-AES256-GCM-SHA384:TLS-DHE-RSA-WITH-AES-128-GCM-SHA256:AES256-GCM-SHA384", []uint16{tls.TLS_RSA_WITH_AES_256_GCM_SHA384}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := TLSCipherList(tc.list)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Error(diff)
			}
		})
	}
	def, _, err := TLSCipherList("DEFAULT")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range def {
		if tls.CipherSuiteName(id) == "" || id == tls.TLS_AES_128_GCM_SHA256 {
			t.Errorf("DEFAULT expanded to %#04x", id)
		}
	}
	if len(def) == 0 {
		t.Error("DEFAULT expanded to nothing")
	}
	got, _, err := TLS13CipherList("TLS-CHACHA20-POLY1305-SHA256:TLS_AES_128_CCM_SHA256:tls_aes_256_gcm_sha384")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint16{tls.TLS_CHACHA20_POLY1305_SHA256, tls.TLS_AES_256_GCM_SHA384}, got); diff != "" {
		t.Error(diff)
	}
}

func FuzzTLSCipherList(f *testing.F) {
	for _, s := range []string{"DEFAULT:@SECLEVEL=0", "ECDHE-RSA-AES256-GCM-SHA384", "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256", "HIGH:!aNULL", ":::", "TLS_AES_128_GCM_SHA256", "-", "!", "DHE-RSA-AES256-SHA:FOO-BAR"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		for i, fn := range []func(string) ([]uint16, []string, error){TLSCipherList, TLS13CipherList} {
			ids, _, err := fn(list)
			// An empty TLS 1.2 list without an error means "TLS 1.3 only".
			if err == nil && ((i == 1 && len(ids) == 0) || len(ids) > maxSuiteList) {
				t.Errorf("%q: %d suites without an error", list, len(ids))
			}
			for _, id := range ids {
				if tls.CipherSuiteName(id)[0] == '0' {
					t.Errorf("%q: unknown id %#04x", list, id)
				}
			}
		}
	})
}

func TestParseUserPassFile(t *testing.T) {
	tests := []struct {
		name, data     string
		user, pass     string
		missing, isErr bool
	}{
		{name: "both lines", data: "alice\ns3cret\n", user: "alice", pass: "s3cret"},
		{name: "CRLF", data: "alice\r\ns3cret\r\n", user: "alice", pass: "s3cret"},
		{name: "username without newline", data: "alice", user: "alice", missing: true},
		{name: "username line only", data: "alice\n", user: "alice", missing: true},
		{name: "password line of a lone CR", data: "alice\n\r", user: "alice", missing: true},
		{name: "blank trailing lines", data: "alice\npw\n\n \n", user: "alice", pass: "pw"},
		{name: "empty", data: "", isErr: true},
		{name: "blank username", data: " \r\npw\n", isErr: true},
		{name: "third line", data: "a\nb\nc\n", isErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := parseUserPass([]byte(tc.data))
			if tc.isErr {
				if err == nil {
					t.Fatalf("accepted %q as %+v", tc.data, a)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Username != tc.user || a.Password != tc.pass || a.PasswordMissing != tc.missing {
				t.Errorf("got %q/%q missing %v, want %q/%q missing %v", a.Username, a.Password, a.PasswordMissing, tc.user, tc.pass, tc.missing)
			}
		})
	}
}

// TestNoDevDefaultsToTun: OpenVPN 2.7 profiles may leave out dev; it means dev tun.
func TestNoDevDefaultsToTun(t *testing.T) {
	c, _, err := parseText(t, "client\nremote a\nca ca.crt\nauth-user-pass\n")
	if err != nil {
		t.Fatal(errText(err))
	}
	if c.Dev != "tun" || c.DevType != DevTUN {
		t.Errorf("dev %q type %v, want tun", c.Dev, c.DevType)
	}
}

func TestTLSGroupList(t *testing.T) {
	got, notes, err := TLSGroupList("X448:x25519mlkem768:prime256v1:P-256:secp384r1:ffdhe2048")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]tls.CurveID{tls.X25519MLKEM768, tls.CurveP256, tls.CurveP384}, got); diff != "" {
		t.Error(diff)
	}
	if len(notes) != 2 || !strings.Contains(notes[0], "X448") || !strings.Contains(notes[1], "ffdhe2048") {
		t.Errorf("notes %q", notes)
	}
	for _, bad := range []string{"", ":", "X448:ffdhe3072", "P-256:NOPE"} {
		if _, _, err := TLSGroupList(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	c, ws, err := parseText(t, base+"tls-groups SecP256r1MLKEM768:X448:X25519\n")
	if err != nil || c.TLSGroups != "SecP256r1MLKEM768:X448:X25519" || !strings.Contains(warnText(ws), "tls-groups: dropping X448") {
		t.Errorf("TLSGroups %v %q, warnings %q", err, c.TLSGroups, warnText(ws))
	}
	if _, _, err := parseText(t, base+"tls-groups brainpoolP256r1\n"); err == nil || !strings.Contains(errText(err), "tls-groups") {
		t.Errorf("tls-groups without a usable group: %v", err)
	}
}

func FuzzTLSGroupList(f *testing.F) {
	for _, s := range []string{"X25519:P-256", "X25519MLKEM768", "x448", ":::", "ffdhe2048:secp521r1", "mlkem768", "P-256:P-256"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		ids, _, err := TLSGroupList(list)
		if err == nil && (len(ids) == 0 || len(ids) > maxSuiteList) {
			t.Errorf("%q: %d groups without an error", list, len(ids))
		}
		seen := map[tls.CurveID]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Errorf("%q: %v twice", list, id)
			}
			seen[id] = true
		}
	})
}
