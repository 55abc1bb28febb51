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
	client := startOvpnd(t, l, cfg)
	dumpOnFailure(t, client, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := l.WaitTunnel(ctx, client, srv.ClientTunnelAddr()); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitPing(srv.TunnelAddr(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	handshakes := strings.Count(srv.Log(), "Peer Connection Initiated")

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
