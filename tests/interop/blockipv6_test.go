package interop

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// leakTarget6 is a global IPv6 address on the server namespace's loopback that the client
// reaches over the underlay (its IPv6 default route): without block-ipv6 a redirect that
// leaves IPv6 out would let traffic to it leak around the tunnel.
const leakTarget6 = "2001:db8:18::1"

// TestBlockIPv6: the server pushes redirect-gateway def1 ipv6 and block-ipv6 to a tunnel
// without IPv6. As with OpenVPN 2.6, the IPv6 redirect routes go onto the tun device anyway,
// and ovpnd answers IPv6 there itself with ICMPv6 "no route" (from fe80::7): a ping to an
// address the underlay reaches fails at once with "Destination unreachable: No route", and
// nothing of it reaches the server. IPv4 still goes through the tunnel.
func TestBlockIPv6(t *testing.T) {
	rl := newRoutingLab(t, lab.ServerOptions{Wrap: "tls-crypt", Push: []string{"redirect-gateway def1 ipv6", "block-ipv6"}})
	rl.AddServerUnderlayAddr(leakTarget6+"/128", "lo")
	if _, err := rl.Ping(leakTarget6, 1, 2*time.Second); err != nil {
		t.Fatalf("%s must answer over the underlay before the tunnel, or blocking it proves nothing: %v", leakTarget6, err)
	}
	client, dev := rl.start(t, "block6", lab.ClientOptions{})

	tun6 := rl.ClientRoutes(true, onDev(dev))
	for _, want := range []string{"::/3", "2000::/4", "3000::/4", "fc00::/7"} {
		if !hasRoute(tun6, want) {
			t.Errorf("IPv6 route %s not on %s: %q", want, dev, tun6)
		}
	}
	if got := rl.ClientRouteGet(leakTarget6); !strings.Contains(got, " dev "+dev+" ") {
		t.Errorf("ip route get %s: %q, want dev %s", leakTarget6, got, dev)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	serverRx := func() uint64 {
		out, err := rl.ServerExec(ctx, "cat", "/sys/class/net/tun0/statistics/rx_packets")
		if err != nil {
			t.Fatalf("server tun0 counters: %v", err)
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	srx0 := serverRx()
	rx0, tx0 := rl.ClientLinkStats(dev)
	out, _ := rl.ClientExec(ctx, "ping", "-6", "-n", "-c1", "-W2", leakTarget6)
	rx1, tx1 := rl.ClientLinkStats(dev)
	srx1 := serverRx()
	if !strings.Contains(string(out), "From fe80::7") || !strings.Contains(string(out), "Destination unreachable: No route") {
		t.Errorf("ping -6 %s: want \"Destination unreachable: No route\" from fe80::7, got:\n%s", leakTarget6, out)
	}
	if tx1 == tx0 || rx1 == rx0 {
		t.Errorf("%s counted %d packets out, %d in: the ping and its answer did not cross the tun device", dev, tx1-tx0, rx1-rx0)
	}
	if srx1 != srx0 {
		t.Errorf("the server's tun device received %d packets during the IPv6 ping, want none", srx1-srx0)
	}

	pingThroughTunnel(t, rl.Lab, dev, onlyViaTunnel4)
	stop(t, client)
	rl.checkRestored(t, "after SIGTERM")
}
