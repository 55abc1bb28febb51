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

// TestPushQuotedFiltered: a server that quotes option names cannot slip them past the
// profile's pull-filter or route-nopull, and a filtered protocol option (ping-exit) is not
// applied by the engine either. The server runs without keepalive (so that no ping-restart of
// its own follows and replaces the ping-exit), so a pushed ping-exit 2 that took effect would
// end the session within seconds.
func TestPushQuotedFiltered(t *testing.T) {
	rl := newRoutingLab(t, lab.ServerOptions{Wrap: "tls-crypt", Keepalive: [2]int{-1, -1}, Push: []string{
		`"redirect-gateway" def1`, `"route" 203.0.113.0 255.255.255.0`, `"dhcp-option" DNS 10.8.0.53`, "ping-exit 2",
	}})
	const orig = "nameserver 192.0.2.53\n"
	path := rl.WriteFile("resolv.conf", orig)
	flags := []string{"--dns-mode", "resolv.conf", "--resolv-conf", path}
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"pull-filter", []string{`pull-filter ignore "redirect-gateway"`, `pull-filter ignore "route "`,
			`pull-filter ignore "dhcp-option DNS"`, `pull-filter ignore "ping"`}},
		{"route-nopull", []string{"route-nopull", `pull-filter ignore "ping"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, dev := rl.start(t, tc.name, lab.ClientOptions{Extra: tc.extra}, flags...)
			tun := rl.ClientRoutes(false, onDev(dev))
			if hasRoute(tun, "0.0.0.0/1") || hasRoute(tun, "203.0.113.0/24") {
				t.Errorf("filtered routes installed: %q", tun)
			}
			if b, err := os.ReadFile(path); err != nil || string(b) != orig {
				t.Errorf("filtered DNS applied: resolv.conf %q, %v", b, err)
			}
			for _, want := range []string{`"redirect-gateway def1"`, `"route 203.0.113.0 255.255.255.0"`,
				`"dhcp-option DNS 10.8.0.53"`, `"ping-exit 2"`} {
				if !strings.Contains(client.Output(), "ignoring pushed option "+want) {
					t.Errorf("no warning for the filtered %s", want)
				}
			}
			// Three quiet seconds: a ping-exit 2, had it been applied, ends the session by
			// then (the server sends no pings).
			select {
			case <-client.Done():
				t.Fatalf("the session ended:\n%s", client.Output())
			case <-time.After(3 * time.Second):
			}
			pingThroughTunnel(t, rl.Lab, dev, rl.srv.TunnelAddr())
			stop(t, client)
			rl.checkRestored(t, "after SIGTERM")
		})
	}
}

// TestPushLANAddressRefused: the server hands the client an address inside a LAN the client
// host is directly connected to. It is refused with a warning that shows in the log and the
// connected state's reason (the host would otherwise answer ARP for it on that LAN), and the
// rest of the tunnel (IPv6 here) still works.
func TestPushLANAddressRefused(t *testing.T) {
	skipWithoutOvpnd(t)
	l := lab.New(t, lab.Options{})
	for _, args := range [][]string{
		// A veth pair stands for the LAN (the dummy driver is not everywhere).
		{"ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan1"},
		{"ip", "addr", "add", "192.168.77.1/24", "dev", "lan0"},
		{"ip", "link", "set", "lan1", "up"},
		{"ip", "link", "set", "lan0", "up"},
	} {
		if out, err := l.ClientExec(context.Background(), args...); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	ccd := filepath.Join(l.Dir, "ccd")
	if err := os.Mkdir(ccd, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ccd, "client"), []byte("ifconfig-push 192.168.77.99 255.255.255.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := l.StartServer(lab.ServerOptions{Wrap: "tls-crypt", IPv6: true, Extra: []string{"client-config-dir " + ccd}})
	before := l.ClientNetState()
	cfg := l.WriteFile("lan.conf", srv.ClientConfig(lab.ClientOptions{}))
	client := l.StartClientProcess(ovpndBinary(), "run", "--name", "lan", "--state-dir", filepath.Join(l.Dir, "state"), cfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- ovpnd output ---\n%s\n--- server log ---\n%s", client.Output(), srv.Log())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client.WaitOutput(ctx, "Initialization Sequence Completed"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(srv.Log(), "192.168.77.99") {
		t.Fatalf("the server did not push the LAN address; the test proves nothing")
	}
	out, err := l.ClientExec(context.Background(), "ip", "-4", "addr", "show")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "192.168.77.99") {
		t.Errorf("the pushed LAN address was put on an interface:\n%s", out)
	}
	for _, want := range []string{
		"refusing pushed ifconfig 192.168.77.99 255.255.255.0: inside 192.168.77.0/24, a network directly connected to this host",
		"state connected: refused: pushed ifconfig 192.168.77.99 255.255.255.0: inside 192.168.77.0/24",
	} {
		if !strings.Contains(client.Output(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if err := l.WaitPing(lab.ServerTunnel6, 10*time.Second); err != nil {
		t.Errorf("the rest of the tunnel (IPv6) does not work: %v", err)
	}
	if err := client.Stop(15 * time.Second); err != nil {
		t.Errorf("ovpnd after SIGTERM: %v", err)
	}
	if got := l.ClientNetState(); got.String() != before.String() {
		t.Errorf("client namespace not restored:\nbefore %s\nafter %s", before, got)
	}
}

// TestPushTunMTU9000: the server runs and pushes tun-mtu 9000, above what the client's
// buffers are sized for by default. A 2000-byte ping goes through and the session stays up:
// the pushed MTU is clamped to the client's announced maximum with a warning. With
// tun-max-mtu 9000 the pushed MTU applies and the 2000-byte packets cross unfragmented; and a
// packet larger than the buffers (the device's MTU raised behind ovpnd's back) is dropped and
// counted, never fatal.
func TestPushTunMTU9000(t *testing.T) {
	rl := newRoutingLab(t, lab.ServerOptions{Wrap: "tls-crypt", Push: []string{"tun-mtu 9000"}, Extra: []string{"tun-mtu 9000"}})
	bigPing := func(t *testing.T, dev string) {
		t.Helper()
		out, err := rl.ClientExec(context.Background(), "ping", "-c", "3", "-i", "0.3", "-W", "5", "-s", "2000", rl.srv.TunnelAddr())
		if err != nil {
			t.Errorf("ping -s 2000 through %s: %v\n%s", dev, err, out)
		}
	}
	mtuOf := func(t *testing.T, dev string) string {
		t.Helper()
		out, err := rl.ClientExec(context.Background(), "cat", "/sys/class/net/"+dev+"/mtu")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}

	t.Run("clamped", func(t *testing.T) {
		client, dev := rl.start(t, "mtu", lab.ClientOptions{})
		if !strings.Contains(client.Output(), "server pushed tun-mtu 9000, above the 1600") {
			t.Errorf("no warning about the clamped tun-mtu")
		}
		if got := mtuOf(t, dev); got != "1600" {
			t.Errorf("MTU of %s is %s, want the clamped 1600", dev, got)
		}
		bigPing(t, dev)
		// Raise the device's MTU behind ovpnd's back: the kernel now hands it packets
		// larger than its buffers. They are dropped and counted; the session stays up.
		if out, err := rl.ClientExec(context.Background(), "ip", "link", "set", dev, "mtu", "9000"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		out, _ := rl.ClientExec(context.Background(), "ping", "-c", "2", "-i", "0.3", "-W", "1", "-s", "2000", rl.srv.TunnelAddr())
		if strings.Contains(string(out), " 0% packet loss") {
			t.Errorf("an oversize packet crossed the tunnel:\n%s", out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := client.WaitOutput(ctx, "dropping packets read from the tun device"); err != nil {
			t.Errorf("oversize packets not reported: %v", err)
		}
		if client.Exited() {
			t.Fatalf("the session ended after an oversize packet:\n%s", client.Output())
		}
		if out, err := rl.ClientExec(context.Background(), "ip", "link", "set", dev, "mtu", "1600"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		pingThroughTunnel(t, rl.Lab, dev, rl.srv.TunnelAddr())
		stop(t, client)
		rl.checkRestored(t, "after SIGTERM")
	})
	t.Run("tun-max-mtu", func(t *testing.T) {
		client, dev := rl.start(t, "mtu", lab.ClientOptions{Extra: []string{"tun-max-mtu 9000"}})
		if strings.Contains(client.Output(), "server pushed tun-mtu") {
			t.Errorf("tun-mtu clamped despite tun-max-mtu 9000")
		}
		if got := mtuOf(t, dev); got != "9000" {
			t.Errorf("MTU of %s is %s, want the pushed 9000", dev, got)
		}
		bigPing(t, dev)
		if client.Exited() {
			t.Fatalf("the session ended after a 2000-byte ping:\n%s", client.Output())
		}
		stop(t, client)
		rl.checkRestored(t, "after SIGTERM")
	})
}
