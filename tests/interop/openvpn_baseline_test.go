package interop

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ovpnd/ovpnd/tests/lab"
)

// TestOpenVPNBaseline proves the lab itself with Debian's OpenVPN 2.6 client: if this fails,
// ovpnd failures in the same lab say nothing about ovpnd.
func TestOpenVPNBaseline(t *testing.T) {
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{
		Proto:       "udp",
		Wrap:        "tls-crypt",
		DataCiphers: []string{"AES-256-GCM"},
	})
	before := l.ClientNetState()

	cfg := l.WriteFile("client.conf", srv.ClientConfig(lab.ClientOptions{}))
	start := time.Now()
	client := l.StartClientProcess("openvpn", "--config", cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client.WaitOutput(ctx, "Initialization Sequence Completed"); err != nil {
		t.Fatalf("client did not connect: %v\n--- client ---\n%s\n--- server ---\n%s", err, client.Output(), srv.Log())
	}
	dev, err := l.WaitClientAddr(ctx, srv.ClientTunnelAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("connected in %v on %s", time.Since(start).Round(time.Millisecond), dev)

	st, err := l.Ping(srv.TunnelAddr(), 5, 5*time.Second)
	if err != nil || st.Lost() > 0 {
		t.Fatalf("ping through tunnel: %v (%d of %d lost)\n%s", err, st.Lost(), st.Sent, st.Output)
	}
	t.Logf("ping %s: avg rtt %v", srv.TunnelAddr(), st.AvgRTT)

	up, down := l.Transfer(t, srv.TunnelAddr(), 4<<20)
	t.Logf("transfer: %d bytes up in %v, down in %v", up.Bytes,
		up.Duration.Round(time.Millisecond), down.Duration.Round(time.Millisecond))
	if !strings.Contains(srv.Log(), "Data Channel: cipher 'AES-256-GCM'") {
		t.Errorf("server did not report AES-256-GCM data channel:\n%s", srv.Log())
	}

	if err := client.Stop(10 * time.Second); err != nil {
		t.Fatalf("client exit after SIGTERM: %v\n%s", err, client.Output())
	}
	if diff := cmp.Diff(before, l.ClientNetState()); diff != "" {
		t.Errorf("client namespace differs after exit (-before +after):\n%s", diff)
	}
}

// TestOpenVPNReferenceMatrix runs Debian's OpenVPN 2.6 client through the same matrix as
// ovpnd, proving that every server configuration of the matrix is sound. It takes about two
// minutes, so it only runs with OVPND_LAB_REFERENCE=1.
func TestOpenVPNReferenceMatrix(t *testing.T) {
	if os.Getenv("OVPND_LAB_REFERENCE") != "1" {
		t.Skip("set OVPND_LAB_REFERENCE=1 to run the matrix with the OpenVPN client")
	}
	for _, c := range interopCases() {
		t.Run(c.name, func(t *testing.T) { runInteropCase(t, c, startOpenVPN) })
	}
}
