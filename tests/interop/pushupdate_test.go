package interop

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// TestOvpndPushUpdate: OpenVPN 2.7.6's management interface sends a PUSH_UPDATE to the
// connected ovpnd (push-update-broad) that replaces the pushed route and the DNS server. The
// new route and resolver show up in `ip route` and resolv.conf, the old ones are gone, and the
// tunnel stays up: same device, no second handshake, traffic keeps flowing.
func TestOvpndPushUpdate(t *testing.T) {
	skipWithoutOvpnd(t)
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{Version: "2.7", Wrap: "tls-crypt", Management: true,
		Push: []string{"route 10.9.0.0 255.255.255.0", "dhcp-option DNS 10.8.0.1"}})
	cfg := l.WriteFile("client.conf", srv.ClientConfig(lab.ClientOptions{}))
	client := startOvpnd(t, l, cfg)
	dumpOnFailure(t, client, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dev, err := l.WaitTunnel(ctx, client, srv.ClientTunnelAddr())
	if err != nil {
		t.Fatal(err)
	}
	resolv := filepath.Join(l.Dir, "resolv.conf")
	state := func() (routes, resolvConf string) {
		b, _ := os.ReadFile(resolv)
		return l.ClientNetState().Route4, string(b)
	}
	routes, rc := state()
	if !strings.Contains(routes, "10.9.0.0/24 ") || !strings.Contains(rc, "nameserver 10.8.0.1\n") {
		t.Fatalf("before the update: routes\n%s\nresolv.conf\n%s", routes, rc)
	}
	handshakes := strings.Count(srv.Log(), "Control Channel: TLS")

	m := srv.Management()
	if _, err := m.Command(`push-update-broad "route 10.9.1.0 255.255.255.0, dhcp-option DNS 10.8.0.53"`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		routes, rc = state()
		if strings.Contains(routes, "10.9.1.0/24 ") && !strings.Contains(routes, "10.9.0.0/24 ") &&
			strings.Contains(rc, "nameserver 10.8.0.53\n") && !strings.Contains(rc, "nameserver 10.8.0.1\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("update not applied within 10 s: routes\n%s\nresolv.conf\n%s", routes, rc)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(routes, "10.9.1.0/24 via 10.8.0.1 dev "+dev) {
		t.Errorf("the new route is not on the tunnel %s:\n%s", dev, routes)
	}
	if n := strings.Count(srv.Log(), "Control Channel: TLS"); n != handshakes {
		t.Errorf("%d TLS handshakes after the update, %d before: the client reconnected", n, handshakes)
	}
	if got, _ := l.WaitTunnel(ctx, client, srv.ClientTunnelAddr()); got != dev {
		t.Errorf("tunnel device %q after the update, %q before", got, dev)
	}
	if !strings.Contains(client.Output(), "PUSH_UPDATE: route 10.9.1.0 255.255.255.0,dhcp-option DNS 10.8.0.53") {
		t.Errorf("client log lacks the update")
	}
	checkTraffic(t, l, srv.TunnelAddr())
}
