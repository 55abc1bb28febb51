package interop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// roamedAddr is the client's new underlay address, in the same subnet so that the server
// reaches it without new routes.
const roamedAddr = "198.18.0.5"

// TestOvpndRoamNewAddress: the client's underlay address changes under a running tunnel (a
// new address is added and the old one deleted, as a DHCP renew that hands out another
// address does). ovpnd must move its UDP socket to the new source address at once and the
// OpenVPN 2.6 server follow by peer-id, without a new TLS handshake and well before any
// keepalive timeout.
func TestOvpndRoamNewAddress(t *testing.T) {
	skipWithoutOvpnd(t)
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{Wrap: "tls-crypt"})
	cfg := l.WriteFile("client.conf", srv.ClientConfig(lab.ClientOptions{}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client, handshakes := connectOvpnd(ctx, t, l, srv, cfg)

	// Keep the old address from taking the new one with it: without promote_secondaries the
	// kernel deletes an interface's secondary addresses with its primary.
	for _, args := range [][]string{
		{"sysctl", "-q", "-w", "net.ipv4.conf.all.promote_secondaries=1", "net.ipv4.conf.veth0.promote_secondaries=1"},
		{"ip", "addr", "add", roamedAddr + "/24", "dev", "veth0"},
		{"ip", "addr", "del", lab.ClientUnderlay4 + "/24", "dev", "veth0"},
	} {
		if out, err := l.ClientExec(ctx, args...); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	moved := time.Now()
	if err := l.WaitPing(srv.TunnelAddr(), 3*time.Second); err != nil {
		t.Fatalf("tunnel did not survive the address change: %v", err)
	}
	took := time.Since(moved)
	t.Logf("first ping through the tunnel %v after the address change", took.Round(10*time.Millisecond))
	if n := strings.Count(srv.Log(), "Peer Connection Initiated"); n != handshakes {
		t.Errorf("the server saw %d new handshakes; the move must not reconnect", n-handshakes)
	}
	// The old address is gone from the client, so every reply above and every byte of the
	// transfer below reached it only because the server now sends to the new address; the
	// server's log may name it later or not at all at verb 3, so it is not what proves that.
	if !strings.Contains(client.Output(), "moving the connection") {
		t.Errorf("ovpnd did not report the move")
	}
	checkTraffic(t, l, srv.TunnelAddr())
}

// TestOvpndRoamRouteGone: every route towards the server disappears from the client (the
// link's subnet route and the default route, as when an interface loses its network) and
// comes back a few seconds later with the same address. Sends fail with ENETUNREACH
// meanwhile; ovpnd must neither give up nor reconnect, and the tunnel must carry traffic
// again at once when the routes return, well before any keepalive timeout.
func TestOvpndRoamRouteGone(t *testing.T) {
	skipWithoutOvpnd(t)
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{Wrap: "tls-crypt"})
	cfg := l.WriteFile("client.conf", srv.ClientConfig(lab.ClientOptions{}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, handshakes := connectOvpnd(ctx, t, l, srv, cfg)
	run := func(args ...string) {
		t.Helper()
		if out, err := l.ClientExec(ctx, args...); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "-4", "route", "del", "default")
	run("ip", "-4", "route", "del", "198.18.0.0/24", "dev", "veth0")
	if st, err := l.Ping(srv.TunnelAddr(), 10, 3*time.Second); err == nil {
		t.Fatalf("the tunnel answered without a route to the server:\n%s", st.Output)
	}
	run("ip", "-4", "route", "add", "198.18.0.0/24", "dev", "veth0", "src", lab.ClientUnderlay4)
	run("ip", "-4", "route", "add", "default", "via", lab.ServerUnderlay4)
	back := time.Now()
	if err := l.WaitPing(srv.TunnelAddr(), 3*time.Second); err != nil {
		t.Fatalf("tunnel did not come back with the routes: %v", err)
	}
	t.Logf("first ping through the tunnel %v after the routes came back", time.Since(back).Round(10*time.Millisecond))
	if n := strings.Count(srv.Log(), "Peer Connection Initiated"); n != handshakes {
		t.Errorf("the server saw %d new handshakes; losing the route for a while must not reconnect", n-handshakes)
	}
	if strings.Contains(client.Output(), "reconnecting") {
		t.Error("ovpnd reconnected")
	}
	if err := client.WaitOutput(ctx, "path to "+lab.ServerUnderlay4+":1194 is back"); err != nil {
		t.Errorf("ovpnd did not report the path coming back: %v", err)
	}
	checkTraffic(t, l, srv.TunnelAddr())
}

// connectOvpnd starts ovpnd on the profile at cfg, waits (within ctx) for its tunnel and a ping
// through it, and returns the client with the number of handshakes the server has completed.
func connectOvpnd(ctx context.Context, t *testing.T, l *lab.Lab, srv *lab.Server, cfg string) (*lab.Process, int) {
	t.Helper()
	client := startOvpnd(t, l, cfg)
	dumpOnFailure(t, client, srv)
	if _, err := l.WaitTunnel(ctx, client, srv.ClientTunnelAddr()); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitPing(srv.TunnelAddr(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return client, strings.Count(srv.Log(), "Peer Connection Initiated")
}
