package interop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// floatedAddr is the server's second underlay address, in the client's subnet.
const floatedAddr = "198.18.0.3"

// TestOvpndFloat: the OpenVPN 2.6 server starts answering from another address (a second
// address on its interface and a route that makes the kernel pick it as the source of
// replies to the client, as on a multihomed server without `multihome`). With `float`, ovpnd
// takes the server's authenticated packets from the new address and sends there from then on:
// after the old address is deleted from the server the tunnel still carries traffic, with no
// new handshake. Without `float` the client's connected socket never sees those replies: the
// tunnel goes quiet (until ping-restart, not waited for here, starts handshakes that cannot
// complete while the server answers from the other address).
func TestOvpndFloat(t *testing.T) {
	for _, float := range []bool{true, false} {
		name := map[bool]string{true: "float", false: "without float"}[float]
		t.Run(name, func(t *testing.T) {
			skipWithoutOvpnd(t)
			l := lab.New(t, lab.Options{})
			srv := l.StartServer(lab.ServerOptions{Wrap: "tls-crypt"})
			co := lab.ClientOptions{}
			if float {
				co.Extra = []string{"float"}
			}
			cfg := l.WriteFile("client.conf", srv.ClientConfig(co))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			client, handshakes := connectOvpnd(ctx, t, l, srv, cfg)

			// The server now sends to the client from floatedAddr; what the client sends
			// still reaches it at the old address.
			l.AddServerUnderlayAddr(floatedAddr+"/24", "")
			for _, args := range [][]string{
				{"sysctl", "-q", "-w", "net.ipv4.conf.all.promote_secondaries=1", "net.ipv4.conf.veth0.promote_secondaries=1"},
				{"ip", "route", "add", lab.ClientUnderlay4 + "/32", "dev", "veth0", "src", floatedAddr},
			} {
				if out, err := l.ServerExec(ctx, args...); err != nil {
					t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
				}
			}
			if !float {
				if st, err := l.Ping(srv.TunnelAddr(), 5, 3*time.Second); err == nil {
					t.Fatalf("replies from %s reached the tunnel without float:\n%s", floatedAddr, st.Output)
				}
				if strings.Contains(client.Output(), "float:") {
					t.Error("the client moved to the new address without float")
				}
				return
			}
			moved := time.Now()
			if err := l.WaitPing(srv.TunnelAddr(), 3*time.Second); err != nil {
				t.Fatalf("tunnel did not follow the server to %s: %v", floatedAddr, err)
			}
			t.Logf("first ping through the tunnel %v after the server's replies moved", time.Since(moved).Round(10*time.Millisecond))
			// The socket reader moves the peer at once; the control loop logs it after.
			if err := client.WaitOutput(ctx, "float: the server now sends from "+floatedAddr+":"); err != nil {
				t.Errorf("ovpnd did not report the move: %v", err)
			}
			// With the old address gone, only packets sent to the new one reach the server.
			if out, err := l.ServerExec(ctx, "ip", "addr", "del", lab.ServerUnderlay4+"/24", "dev", "veth0"); err != nil {
				t.Fatalf("deleting %s: %v: %s", lab.ServerUnderlay4, err, out)
			}
			checkTraffic(t, l, srv.TunnelAddr())
			if n := strings.Count(srv.Log(), "Peer Connection Initiated"); n != handshakes {
				t.Errorf("the server saw %d new handshakes; float must not reconnect", n-handshakes)
			}
		})
	}
}
