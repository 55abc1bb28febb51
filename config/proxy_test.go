package config

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestProxy(t *testing.T) {
	const tcp = "proto tcp-client\n"
	userBlock := "<http-proxy-user-pass>\nalice\ns3cret\n</http-proxy-user-pass>\n"
	for _, tc := range []struct {
		name, text string
		want       *Proxy
		wantErr    string
	}{
		{name: "http plain", text: tcp + "http-proxy proxy.lan 3128\n",
			want: &Proxy{Kind: ProxyHTTP, Host: "proxy.lan", Port: 3128, Version: "1.0"}},
		{name: "http basic file", text: tcp + "http-proxy 10.0.0.1 8080 user.txt basic\n",
			want: &Proxy{Kind: ProxyHTTP, Host: "10.0.0.1", Port: 8080, Version: "1.0", Auth: ProxyAuthBasic, Creds: &ProxyCreds{"alice", "s3cret pass"}}},
		{name: "http file defaults to basic", text: tcp + "http-proxy 10.0.0.1 8080 user.txt\n",
			want: &Proxy{Kind: ProxyHTTP, Host: "10.0.0.1", Port: 8080, Version: "1.0", Auth: ProxyAuthBasic, Creds: &ProxyCreds{"alice", "s3cret pass"}}},
		{name: "http auto inline", text: tcp + "http-proxy proxy.lan 3128 auto\n" + userBlock,
			want: &Proxy{Kind: ProxyHTTP, Host: "proxy.lan", Port: 3128, Version: "1.0", Auth: ProxyAuthAuto, Creds: &ProxyCreds{"alice", "s3cret"}}},
		{name: "http auto asks", text: tcp + "http-proxy proxy.lan 3128 auto\n",
			want: &Proxy{Kind: ProxyHTTP, Host: "proxy.lan", Port: 3128, Version: "1.0", Auth: ProxyAuthAuto, Ask: true}},
		{name: "http auto-nct", text: tcp + "http-proxy proxy.lan 3128 auto-nct\n",
			want: &Proxy{Kind: ProxyHTTP, Host: "proxy.lan", Port: 3128, Version: "1.0", Auth: ProxyAuthAutoNCT, Ask: true}},
		{name: "http stdin", text: tcp + "http-proxy proxy.lan 3128 stdin basic\n",
			want: &Proxy{Kind: ProxyHTTP, Host: "proxy.lan", Port: 3128, Version: "1.0", Auth: ProxyAuthBasic, Ask: true}},
		{name: "http none ignores creds", text: tcp + "http-proxy proxy.lan 3128 whatever none\n",
			want: &Proxy{Kind: ProxyHTTP, Host: "proxy.lan", Port: 3128, Version: "1.0"}},
		{name: "http options", text: tcp + "http-proxy proxy.lan 3128\nhttp-proxy-option VERSION 1.1\nhttp-proxy-option AGENT \"Mozilla/5.0 (X11)\"\nhttp-proxy-option CUSTOM-HEADER X-Corp \"a b\"\nhttp-proxy-option EXT1 \"X-Other: 1\"\n",
			want: &Proxy{Kind: ProxyHTTP, Host: "proxy.lan", Port: 3128, Version: "1.1", Agent: "Mozilla/5.0 (X11)",
				Headers: []ProxyHeader{{"X-Corp", "a b"}, {"X-Other: 1", ""}}}},
		{name: "socks default port", text: "socks-proxy 127.0.0.1\n",
			want: &Proxy{Kind: ProxySOCKS, Host: "127.0.0.1", Port: 1080}},
		{name: "socks creds tcp", text: tcp + "socks-proxy socks.lan 1081 user.txt\n",
			want: &Proxy{Kind: ProxySOCKS, Host: "socks.lan", Port: 1081, Creds: &ProxyCreds{"alice", "s3cret pass"}}},
		{name: "socks stdin", text: "socks-proxy socks.lan 1081 stdin\n",
			want: &Proxy{Kind: ProxySOCKS, Host: "socks.lan", Port: 1081, Ask: true}},

		{name: "http over udp", text: "http-proxy proxy.lan 3128\n", wantErr: "http-proxy needs TCP"},
		{name: "ntlm", text: tcp + "http-proxy proxy.lan 3128 user.txt ntlm\n", wantErr: "NTLM proxy authentication is not supported"},
		{name: "auto with method", text: tcp + "http-proxy proxy.lan 3128 auto basic\n", wantErr: "auto takes no authentication method"},
		{name: "bad port", text: tcp + "http-proxy proxy.lan 99999\n", wantErr: "port"},
		{name: "both proxies", text: tcp + "http-proxy proxy.lan 3128\nsocks-proxy socks.lan\n", wantErr: "cannot be used together"},
		{name: "option without proxy", text: "http-proxy-option VERSION 1.1\n", wantErr: "http-proxy-option needs an http-proxy"},
		{name: "bad version", text: tcp + "http-proxy proxy.lan 3128\nhttp-proxy-option VERSION 2\n", wantErr: "VERSION takes 1.0 or 1.1"},
		{name: "bad header name", text: tcp + "http-proxy proxy.lan 3128\nhttp-proxy-option CUSTOM-HEADER \"X Y\" z\n", wantErr: "cannot be sent as an HTTP header"},
		{name: "unknown option", text: tcp + "http-proxy proxy.lan 3128\nhttp-proxy-option FOO bar\n", wantErr: "unknown option"},
		{name: "creds without password", text: tcp + "http-proxy proxy.lan 3128 auto\n<http-proxy-user-pass>\nalice\n</http-proxy-user-pass>\n", wantErr: "no password"},
		{name: "http creds for socks", text: "socks-proxy socks.lan\n" + userBlock, wantErr: "<http-proxy-user-pass> needs an http-proxy"},
		{name: "socks creds alone", text: "<socks-proxy-user-pass>\nbob\npw\n</socks-proxy-user-pass>\n", wantErr: "<socks-proxy-user-pass> needs a socks-proxy"},
		{name: "too many headers", text: tcp + "http-proxy p 1\n" + strings.Repeat("http-proxy-option CUSTOM-HEADER X-A b\n", 11), wantErr: "more than 10 custom headers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := parseText(t, base+tc.text)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(errText(err), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Proxy, tc.want) {
				t.Fatalf("Proxy %+v (creds %+v), want %+v (creds %+v)", c.Proxy, c.Proxy.Creds, tc.want, tc.want.Creds)
			}
			// Printed with the credentials inline, re-parsed without file access, the same.
			out := c.Format()
			c2, _, err := ParseInline("printed", out)
			if err != nil {
				t.Fatalf("re-parsing the printed profile: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(c2.Proxy, c.Proxy) {
				t.Errorf("re-parsed Proxy %+v, want %+v\n%s", c2.Proxy, c.Proxy, out)
			}
			if !bytes.Equal(c2.Format(), out) {
				t.Errorf("print is not a fixpoint")
			}
		})
	}
}

func TestSOCKSUDP6Warns(t *testing.T) {
	_, ws, err := parseText(t, base+"proto udp6\nsocks-proxy socks.lan\n")
	if err != nil || !strings.Contains(warnText(ws), "proto udp6 does not work with socks-proxy") {
		t.Fatalf("warnings %q, error %v", warnText(ws), err)
	}
}

// TestProxyFilesRefusedInline: the daemon parses with ParseInline, which must not read the
// credential files that http-proxy and socks-proxy name in their third argument.
func TestProxyFilesRefusedInline(t *testing.T) {
	for _, line := range []string{
		"proto tcp\nhttp-proxy proxy.lan 3128 /etc/shadow basic\n",
		"proto tcp\nhttp-proxy proxy.lan 3128 /etc/shadow\n",
		"socks-proxy socks.lan 1080 /etc/shadow\n",
		"proto tcp\nhttp-proxy proxy.lan 3128 auto\nhttp-proxy-user-pass /etc/shadow\n",
	} {
		_, _, err := ParseInline("p.conf", []byte("client\ndev tun\nremote vpn.example.com\nca ca.crt\n"+line))
		if err == nil || !strings.Contains(errText(err), "only inline blocks are accepted") {
			t.Errorf("ParseInline(%q) = %v, want an only-inline error", line, err)
		}
	}
	var asked []string
	_, _, _ = Parse("p.conf", []byte(base+"socks-proxy socks.lan 1080 creds.txt\n"), func(p string) ([]byte, error) {
		asked = append(asked, p)
		return []byte("u\np\n"), nil
	})
	if !strings.Contains(strings.Join(asked, " "), "creds.txt") {
		t.Errorf("socks-proxy did not read its credentials file (asked %v)", asked)
	}
}
