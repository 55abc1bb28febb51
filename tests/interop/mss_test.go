package interop

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// mssRE finds the send MSS of each connection in `ss -ti` output.
var mssRE = regexp.MustCompile(`\bmss:(\d+)`)

// TestOvpndMSSFix checks mssfix on live TCP connections through the tunnel,
// over IPv4 and IPv6. The server's own clamp is off (mssfix 0), so only
// ovpnd rewrites the SYNs: the client-side socket's MSS comes from the
// server's SYN-ACK (clamped on its way to the tun device), the server-side
// socket's from the client's SYN (clamped on its way to the server). With
// `mssfix 1300` and AES-256-GCM over UDP with a peer-id, OpenVPN's formula
// gives 1300 - 24 - 40 = 1236 for IPv4 and 20 less for IPv6; unclamped, both
// would be 1448 or more (tun MTU 1500).
func TestOvpndMSSFix(t *testing.T) {
	for _, tc := range []struct {
		proto  string
		v4, v6 int
	}{
		{"udp", 1236, 1216},
		{"tcp", 1234, 1214}, // two more bytes of TCP framing
	} {
		t.Run(tc.proto, func(t *testing.T) {
			skipWithoutOvpnd(t)
			l := lab.New(t, lab.Options{})
			srv := l.StartServer(lab.ServerOptions{Proto: tc.proto, Wrap: "tls-crypt", IPv6: true, Extra: []string{"mssfix 0"}})
			cfg := l.WriteFile("client.conf", srv.ClientConfig(lab.ClientOptions{Extra: []string{"mssfix 1300"}}))
			client := startOvpnd(t, l, cfg)
			dumpOnFailure(t, client, srv)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := l.WaitTunnel(ctx, client, srv.ClientTunnelAddr()); err != nil {
				t.Fatal(err)
			}
			if _, err := l.WaitClientAddr(ctx, lab.ClientTunnel6); err != nil {
				t.Fatal(err)
			}
			if err := l.WaitPing(srv.TunnelAddr(), 10*time.Second); err != nil {
				t.Fatal(err)
			}
			checkMSS(t, l, srv.TunnelAddr(), tc.v4)
			checkMSS(t, l, lab.ServerTunnel6, tc.v6)
			if err := client.Stop(15 * time.Second); err != nil {
				t.Errorf("client after SIGTERM: %v", err)
			}
		})
	}
}

// checkMSS runs an iperf3 transfer to addr and, while it runs, requires
// every TCP connection to addr in both namespaces to use an MSS of at most
// clamp. TCP options (timestamps) make the MSS in use smaller than the
// announced one, never larger.
func checkMSS(t *testing.T, l *lab.Lab, addr string, clamp int) {
	t.Helper()
	port := strconv.Itoa(7900 + clamp%100)
	srv := l.StartServerProcess("iperf3", "-s", "-1", "-B", addr, "-p", port)
	defer srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		out, _ := l.ServerExec(ctx, "ss", "-Htln", "sport = :"+port)
		if strings.Contains(string(out), ":"+port) {
			break
		}
		if ctx.Err() != nil || srv.Exited() {
			t.Fatalf("iperf3 server on [%s]:%s did not start: %s", addr, port, srv.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cli := l.StartClientProcess("iperf3", "-c", addr, "-p", port, "-t", "3")
	defer cli.Kill()
	time.Sleep(1500 * time.Millisecond)
	filter := fmt.Sprintf("dport = :%s", port)
	clientSide, err := l.ClientExec(ctx, "ss", "-Htin", filter)
	if err != nil {
		t.Fatalf("ss in client namespace: %v", err)
	}
	serverSide, err := l.ServerExec(ctx, "ss", "-Htin", "sport = :"+port)
	if err != nil {
		t.Fatalf("ss in server namespace: %v", err)
	}
	for _, side := range []struct {
		name string
		out  string
	}{{"client", string(clientSide)}, {"server", string(serverSide)}} {
		m := mssRE.FindAllStringSubmatch(side.out, -1)
		if len(m) == 0 {
			t.Errorf("%s side: no TCP connection to [%s]:%s found:\n%s", side.name, addr, port, side.out)
			continue
		}
		for _, s := range m {
			mss, _ := strconv.Atoi(s[1])
			if mss <= 0 || mss > clamp {
				t.Errorf("%s side: connection to [%s]:%s uses MSS %d, want at most %d:\n%s", side.name, addr, port, mss, clamp, side.out)
			}
		}
		t.Logf("%s side, %s: MSS %v (clamp %d)", side.name, addr, m[0][1], clamp)
	}
	if err := cli.Wait(); err != nil {
		t.Errorf("iperf3 client: %v\n%s", err, cli.Output())
	}
}
