package interop

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// ipFragCounters reads the IP fragmentation counters of a namespace from
// /proc/net/snmp: datagrams the kernel cut up to send, and pieces it had to
// put back together on receipt.
func ipFragCounters(t *testing.T, exec func(context.Context, ...string) ([]byte, error)) (creates, reasm int) {
	t.Helper()
	out, err := exec(context.Background(), "cat", "/proc/net/snmp")
	if err != nil {
		t.Fatalf("reading /proc/net/snmp: %v", err)
	}
	var names, values []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "Ip: ") {
			continue
		}
		if names == nil {
			names = strings.Fields(line)
		} else {
			values = strings.Fields(line)
		}
	}
	for i := range names {
		if i >= len(values) {
			break
		}
		n, _ := strconv.Atoi(values[i])
		switch names[i] {
		case "FragCreates":
			creates = n
		case "ReasmReqds":
			reasm = n
		}
	}
	return creates, reasm
}

// TestOvpndFragment runs ovpnd with "fragment 1300" against an OpenVPN 2.6
// server that has "fragment 1300" too. The underlay MTU is 1340, so any data
// datagram of more than 1312 bytes of UDP payload would have to be cut up by
// the kernel: the IP fragmentation counters of both namespaces staying at
// zero while 1400-byte pings (a 1428-byte packet, about 1470 bytes once
// encrypted) and 4 MB each way get through shows that both ends fragmented
// and reassembled inside OpenVPN's protocol, and that ovpnd understood the
// server's pieces. It also checks the mssfix default that comes with fragment.
func TestOvpndFragment(t *testing.T) {
	for _, tc := range []struct {
		name   string
		server lab.ServerOptions
		// mss is the clamp OpenVPN 2.6 computes for "mssfix 1300 mtu", the default that
		// comes with fragment 1300, where the fragment header counts as payload overhead.
		mss int
	}{
		// 1300 - 24 (P_DATA_V2, packet id, tag) - 28 (outer IPv4 and UDP) - 4 - 40 = 1204.
		{"aes-256-gcm", lab.ServerOptions{Wrap: "tls-crypt"}, 1204},
		// CBC: 1300 - 52 (P_DATA_V2, IV, HMAC-SHA256) - 28 = 1220, rounded down to blocks less
		// a padding byte: 1215; less packet id, comp-lzo byte and fragment header: 1206; - 40.
		// The server compresses what it can (comp-lzo yes), so its pieces carry LZO payloads.
		{"aes-256-cbc+comp-lzo", lab.ServerOptions{Wrap: "tls-auth", DataCiphers: []string{"AES-256-CBC"}, Auth: "SHA256", CompLZO: true}, 1166},
	} {
		t.Run(tc.name, func(t *testing.T) { fragmentCase(t, tc.server, tc.mss) })
	}
}

func fragmentCase(t *testing.T, so lab.ServerOptions, mss int) {
	skipWithoutOvpnd(t)
	l := lab.New(t, lab.Options{VethMTU: 1340})
	// The server does not clamp MSS itself (mssfix 0), so the check below sees ovpnd's clamp.
	so.Extra = append(so.Extra, "fragment 1300", "mssfix 0")
	srv := l.StartServer(so)
	cfg := l.WriteFile("client.conf", srv.ClientConfig(lab.ClientOptions{Extra: []string{"fragment 1300"}}))
	client := startOvpnd(t, l, cfg)
	dumpOnFailure(t, client, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := l.WaitTunnel(ctx, client, srv.ClientTunnelAddr()); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitPing(srv.TunnelAddr(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	cBefore, cReasmBefore := ipFragCounters(t, l.ClientExec)
	sBefore, sReasmBefore := ipFragCounters(t, l.ServerExec)

	pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer pcancel()
	out, err := l.ClientExec(pctx, "ping", "-n", "-c", "5", "-i", "0.2", "-W", "2", "-s", "1400", "-M", "do", srv.TunnelAddr())
	if err != nil {
		t.Fatalf("1400-byte pings through the tunnel: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), " 0% packet loss") {
		t.Errorf("1400-byte pings lost:\n%s", out)
	}
	up, down := l.Transfer(t, srv.TunnelAddr(), transferSize)
	t.Logf("1400-byte pings ok; %d bytes up in %v, down in %v", up.Bytes, up.Duration.Round(time.Millisecond), down.Duration.Round(time.Millisecond))

	cAfter, cReasmAfter := ipFragCounters(t, l.ClientExec)
	sAfter, sReasmAfter := ipFragCounters(t, l.ServerExec)
	for _, c := range []struct {
		name          string
		before, after int
	}{
		{"client FragCreates", cBefore, cAfter}, {"client ReasmReqds", cReasmBefore, cReasmAfter},
		{"server FragCreates", sBefore, sAfter}, {"server ReasmReqds", sReasmBefore, sReasmAfter},
	} {
		if c.after != c.before {
			t.Errorf("%s went from %d to %d: datagrams too large for fragment 1300 crossed the underlay", c.name, c.before, c.after)
		}
	}
	// Without an mssfix value of its own, the client clamps as OpenVPN 2.6 does with fragment.
	checkMSS(t, l, srv.TunnelAddr(), mss)
	if err := client.Stop(15 * time.Second); err != nil {
		t.Errorf("client after SIGTERM: %v", err)
	}
}
