package interop

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// TestOvpndProxy connects ovpnd to OpenVPN 2.6 through real proxies from Debian's packages
// running in the server namespace: squid (HTTP CONNECT, with and without Basic
// authentication) and dante (SOCKS5 CONNECT for TCP, UDP ASSOCIATE for UDP). The proxy listens
// on an address the client reaches through its default gateway, and the server pushes
// redirect-gateway def1, so the tunnel only carries traffic if ovpnd keeps the proxy's
// address (not the server's) out of the tunnel. Each case pings, moves 4 MB each way, and
// finds the connection in the proxy's own log.
// socksUser is the system user the SOCKS authentication cases create for dante: unique per
// test process, short enough for useradd.
func socksUser() string { return fmt.Sprintf("ovl%d", os.Getpid()) }

func TestOvpndProxy(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto string
		start func(l *lab.Lab) *lab.Proxy
		extra func(p *lab.Proxy) []string
		// logs must all appear in the proxy's log once the client has gone.
		logs []string
	}{
		{
			name: "http", proto: "tcp",
			start: func(l *lab.Lab) *lab.Proxy { return l.StartSquid(nil) },
			extra: func(p *lab.Proxy) []string { return []string{fmt.Sprintf("http-proxy %s %d", lab.ProxyAddr, p.Port)} },
			logs:  []string{"TCP_TUNNEL/200", "CONNECT " + lab.ServerUnderlay4 + ":1194 -"},
		},
		{
			// auto: the first CONNECT draws a 407 with a Basic challenge, the second carries
			// the inline credentials.
			name: "http-basic-auto", proto: "tcp",
			start: func(l *lab.Lab) *lab.Proxy { return l.StartSquid(map[string]string{"alice": "proxy pw"}) },
			extra: func(p *lab.Proxy) []string {
				return []string{fmt.Sprintf("http-proxy %s %d auto", lab.ProxyAddr, p.Port),
					"<http-proxy-user-pass>\nalice\nproxy pw\n</http-proxy-user-pass>",
					"http-proxy-option VERSION 1.1", "http-proxy-option AGENT ovpnd-lab"}
			},
			logs: []string{"TCP_DENIED/407", "TCP_TUNNEL/200", "CONNECT " + lab.ServerUnderlay4 + ":1194 alice"},
		},
		{
			name: "http-basic", proto: "tcp",
			start: func(l *lab.Lab) *lab.Proxy { return l.StartSquid(map[string]string{"alice": "proxy pw"}) },
			extra: func(p *lab.Proxy) []string {
				return []string{fmt.Sprintf("http-proxy %s %d stdin basic", lab.ProxyAddr, p.Port),
					"<http-proxy-user-pass>\nalice\nproxy pw\n</http-proxy-user-pass>"}
			},
			logs: []string{"TCP_TUNNEL/200", "CONNECT " + lab.ServerUnderlay4 + ":1194 alice"},
		},
		{
			name: "socks-tcp", proto: "tcp",
			start: func(l *lab.Lab) *lab.Proxy { return l.StartDante("", "") },
			extra: func(p *lab.Proxy) []string { return []string{fmt.Sprintf("socks-proxy %s %d", lab.ProxyAddr, p.Port)} },
			logs:  []string{"tcp/connect", lab.ServerUnderlay4 + ".1194"},
		},
		{
			name: "socks-udp", proto: "udp",
			start: func(l *lab.Lab) *lab.Proxy { return l.StartDante("", "") },
			extra: func(p *lab.Proxy) []string { return []string{fmt.Sprintf("socks-proxy %s %d", lab.ProxyAddr, p.Port)} },
			logs:  []string{"udp/udpassociate", lab.ServerUnderlay4 + ".1194"},
		},
		{
			// RFC 1929 username/password with a credentials file, checked by dante itself.
			name: "socks-udp-auth", proto: "udp",
			start: func(l *lab.Lab) *lab.Proxy { return l.StartDante(socksUser(), "socks pw") },
			extra: func(p *lab.Proxy) []string {
				return []string{fmt.Sprintf("socks-proxy %s %d %s", lab.ProxyAddr, p.Port, p.CredsFile(socksUser(), "socks pw"))}
			},
			logs: []string{"username%" + socksUser() + "@", "udp/udpassociate"},
		},
		{
			name: "socks-tcp-auth", proto: "tcp",
			start: func(l *lab.Lab) *lab.Proxy { return l.StartDante(socksUser(), "socks pw") },
			extra: func(p *lab.Proxy) []string {
				return []string{fmt.Sprintf("socks-proxy %s %d %s", lab.ProxyAddr, p.Port, p.CredsFile(socksUser(), "socks pw"))}
			},
			logs: []string{"username%" + socksUser() + "@", "tcp/connect"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			skipWithoutOvpnd(t)
			l := lab.New(t, lab.Options{})
			srv := l.StartServer(lab.ServerOptions{Proto: tc.proto, Wrap: "tls-crypt", Push: []string{"redirect-gateway def1"}})
			px := tc.start(l)
			cfg := l.WriteFile("client.conf", srv.ClientConfig(lab.ClientOptions{Extra: tc.extra(px)}))
			client := startOvpnd(t, l, cfg)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("--- client output ---\n%s\n--- server log ---\n%s\n--- proxy log ---\n%s\n%s", client.Output(), srv.Log(), px.Log(), px.Output())
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dev, err := l.WaitTunnel(ctx, client, srv.ClientTunnelAddr())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.WaitClientRoute(ctx, false, func(line string) bool { return strings.HasPrefix(line, "0.0.0.0/1 ") }); err != nil {
				t.Fatal(err)
			}
			// The bypass goes to the proxy: its address leaves through the underlay, while an
			// address the proxy does not own follows redirect-gateway into the tunnel.
			if r := l.ClientRouteGet(lab.ProxyAddr); strings.Contains(r, " dev "+dev+" ") {
				t.Errorf("route to the proxy goes into the tunnel: %s", r)
			}
			if r := l.ClientRouteGet("192.0.2.99"); !strings.Contains(r, " dev "+dev+" ") {
				t.Errorf("redirect-gateway not in effect: %s", r)
			}
			checkTraffic(t, l, srv.TunnelAddr())
			if !strings.Contains(client.Output(), "through the") {
				t.Errorf("client output does not mention the proxy")
			}
			if err := client.Stop(15 * time.Second); err != nil {
				t.Errorf("client after SIGTERM: %v", err)
			}
			lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer lcancel()
			for _, want := range tc.logs {
				if err := px.WaitLog(lctx, want); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
