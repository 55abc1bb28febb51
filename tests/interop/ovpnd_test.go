package interop

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ovpnd/ovpnd/tests/lab"
)

// transferSize is moved up and down, byte for byte, in every case.
const transferSize = 4 << 20

// interopCase is one server configuration of the matrix. Every case connects, waits for the
// tunnel address, pings the server's tunnel address, moves transferSize bytes each way, runs
// its exercise, and checks that SIGTERM exits 0 and leaves the client namespace as it was.
type interopCase struct {
	name   string
	server lab.ServerOptions
	client lab.ClientOptions
	// cipher is the data-channel cipher the server must report for this client.
	cipher string
	// tunnel6 also pings and transfers over the tunnel's IPv6 addresses (server-ipv6).
	tunnel6 bool
	// routes must appear in the client's `ip route` while connected (pushed routes).
	routes []string
	// exercise runs after the basic checks: rekeys under traffic, restarts, compression.
	exercise func(t *testing.T, l *lab.Lab, srv *lab.Server, client *lab.Process)
}

func interopCases() []interopCase {
	tlsCrypt := func(proto string) lab.ServerOptions {
		return lab.ServerOptions{Proto: proto, Wrap: "tls-crypt", DataCiphers: []string{"AES-256-GCM"}}
	}
	cases := []interopCase{
		{name: "udp/tls-crypt/aes-256-gcm", server: tlsCrypt("udp"), cipher: "AES-256-GCM"},
		{name: "tcp/tls-crypt/aes-256-gcm", server: tlsCrypt("tcp"), cipher: "AES-256-GCM"},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, wrap := range []string{"none", "tls-auth", "tls-crypt-v2"} {
			cases = append(cases, interopCase{
				name:   proto + "/" + wrap + "/aes-256-gcm",
				server: lab.ServerOptions{Proto: proto, Wrap: wrap},
				cipher: "AES-256-GCM",
			})
		}
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, c := range []struct{ cipher, auth string }{
			{"AES-128-GCM", ""},
			{"CHACHA20-POLY1305", ""},
			{"AES-256-CBC", "SHA256"},
		} {
			name := proto + "/tls-auth/" + strings.ToLower(c.cipher)
			if c.auth != "" {
				name += "+" + strings.ToLower(c.auth)
			}
			cases = append(cases, interopCase{
				name: name,
				server: lab.ServerOptions{Proto: proto, Wrap: "tls-auth",
					DataCiphers: []string{c.cipher}, Auth: c.auth},
				cipher: c.cipher,
			})
		}
	}
	cases = append(cases,
		interopCase{
			// The password is accepted once; the rekeys every 5 s must authenticate with the
			// auth-token the server generated, or the server refuses them.
			name: "udp/tls-crypt/userpass+auth-token",
			server: lab.ServerOptions{Wrap: "tls-crypt", RenegSec: 5,
				UserPass: &lab.UserPass{User: "alice", Pass: "s3cret-pass", SingleUse: true}},
			cipher: "AES-256-GCM",
			exercise: func(t *testing.T, l *lab.Lab, srv *lab.Server, _ *lab.Process) {
				trafficThroughRekeys(t, l, srv, 12*time.Second, 3)
				if n := srv.AuthScriptCalls(); n != 1 {
					t.Errorf("auth script accepted the password %d times, want 1 (later handshakes must use the token)", n)
				}
			},
		},
		interopCase{
			name:   "udp/tls-crypt/comp-lzo",
			server: lab.ServerOptions{Wrap: "tls-crypt", CompLZO: true},
			cipher: "AES-256-GCM",
			exercise: func(t *testing.T, l *lab.Lab, srv *lab.Server, _ *lab.Process) {
				// Compressible data from the server is what the server really compresses.
				if _, err := l.TransferErr(srv.TunnelAddr(), transferSize, lab.XferOptions{Download: true, Compressible: true}); err != nil {
					t.Fatal(err)
				}
				if _, err := l.TransferErr(srv.TunnelAddr(), transferSize, lab.XferOptions{Compressible: true}); err != nil {
					t.Fatal(err)
				}
			},
		},
		interopCase{
			name:   "udp/tls-crypt/server-reneg-5s",
			server: lab.ServerOptions{Wrap: "tls-crypt", RenegSec: 5},
			cipher: "AES-256-GCM",
			exercise: func(t *testing.T, l *lab.Lab, srv *lab.Server, _ *lab.Process) {
				trafficThroughRekeys(t, l, srv, 12*time.Second, 3)
			},
		},
		interopCase{
			name:   "tcp/tls-crypt/server-reneg-5s",
			server: lab.ServerOptions{Proto: "tcp", Wrap: "tls-crypt", RenegSec: 5},
			cipher: "AES-256-GCM",
			exercise: func(t *testing.T, l *lab.Lab, srv *lab.Server, _ *lab.Process) {
				trafficThroughRekeys(t, l, srv, 12*time.Second, 3)
			},
		},
		interopCase{name: "udp/tls-crypt/server-restart", server: tlsCrypt("udp"), cipher: "AES-256-GCM", exercise: restartServer},
		interopCase{name: "tcp/tls-crypt/server-restart", server: tlsCrypt("tcp"), cipher: "AES-256-GCM", exercise: restartServer},
		interopCase{
			name:   "udp/tls-crypt/net30",
			server: lab.ServerOptions{Wrap: "tls-crypt", Topology: "net30"},
			cipher: "AES-256-GCM",
		},
		interopCase{
			name:   "tcp/tls-crypt/net30",
			server: lab.ServerOptions{Proto: "tcp", Wrap: "tls-crypt", Topology: "net30"},
			cipher: "AES-256-GCM",
		},
		interopCase{name: "udp6-underlay/tls-crypt", server: tlsCrypt("udp6"), cipher: "AES-256-GCM"},
		interopCase{name: "tcp6-underlay/tls-crypt", server: tlsCrypt("tcp6"), cipher: "AES-256-GCM"},
		interopCase{
			name:    "udp/tls-crypt/server-ipv6",
			server:  lab.ServerOptions{Wrap: "tls-crypt", IPv6: true},
			cipher:  "AES-256-GCM",
			tunnel6: true,
		},
		// The TLS options a profile can restrict, checked against what the server negotiated.
		interopCase{
			name:   "udp/tls-crypt/tls1.2-cipher",
			server: lab.ServerOptions{Wrap: "tls-crypt"},
			client: lab.ClientOptions{Extra: []string{"tls-version-max 1.2", "tls-cipher TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"}},
			cipher: "AES-256-GCM",
			exercise: func(t *testing.T, l *lab.Lab, srv *lab.Server, _ *lab.Process) {
				if want := "Control Channel: TLSv1.2, cipher TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256"; !strings.Contains(srv.Log(), want) {
					t.Errorf("server log lacks %q", want)
				}
			},
		},
		interopCase{
			name:   "udp/tls-crypt/tls1.3-ciphersuites",
			server: lab.ServerOptions{Wrap: "tls-crypt"},
			client: lab.ClientOptions{Extra: []string{"tls-version-min 1.3", "tls-ciphersuites TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"}},
			cipher: "AES-256-GCM",
			exercise: func(t *testing.T, l *lab.Lab, srv *lab.Server, _ *lab.Process) {
				if want := "Control Channel: TLSv1.3, cipher TLSv1.3 TLS_AES_256_GCM_SHA384"; !strings.Contains(srv.Log(), want) {
					t.Errorf("server log lacks %q", want)
				}
			},
		},
		interopCase{
			// A provider-style profile: a tls-cipher list of DHE suites crypto/tls lacks (so
			// only TLS 1.3 is left), the deprecated ns-cert-type, ping-restart 0 and a repeated
			// reneg-sec, which OpenVPN 2.6 accepts with warnings.
			name:   "udp/tls-crypt/provider-quirks",
			server: lab.ServerOptions{Wrap: "tls-crypt"},
			client: lab.ClientOptions{Extra: []string{"tls-cipher TLS-DHE-RSA-WITH-AES-256-GCM-SHA384:DHE-RSA-AES256-SHA",
				"ns-cert-type server", "reneg-sec 0", "reneg-sec 3600"}},
			cipher: "AES-256-GCM",
			exercise: func(t *testing.T, l *lab.Lab, srv *lab.Server, _ *lab.Process) {
				if want := "Control Channel: TLSv1.3"; !strings.Contains(srv.Log(), want) {
					t.Errorf("server log lacks %q", want)
				}
			},
		},
		interopCase{
			name: "udp/tls-crypt/pushed-routes",
			server: lab.ServerOptions{Wrap: "tls-crypt", Push: []string{
				"route 10.9.0.0 255.255.255.0",
				"redirect-gateway def1",
				"dhcp-option DNS 10.8.0.1",
				"dhcp-option DOMAIN lab.test",
			}},
			cipher: "AES-256-GCM",
			routes: []string{"10.9.0.0/24", "0.0.0.0/1", "128.0.0.0/1"},
		},
	)
	return cases
}

// clientStarter starts the client under test with a config file; it returns nil and skips
// when that client is unavailable.
type clientStarter func(t *testing.T, l *lab.Lab, configPath string) *lab.Process

// ovpndBinary is bin/ovpnd of this checkout, or $OVPND_BIN.
func ovpndBinary() string {
	if p := os.Getenv("OVPND_BIN"); p != "" {
		return p
	}
	p, _ := filepath.Abs("../../bin/ovpnd")
	return p
}

// skipWithoutOvpnd skips when the binary is missing, before any lab is built.
func skipWithoutOvpnd(t *testing.T) {
	if _, err := os.Stat(ovpndBinary()); errors.Is(err, os.ErrNotExist) {
		t.Skipf("bin/ovpnd not built (%s); run make build", ovpndBinary())
	}
}

func startOvpnd(t *testing.T, l *lab.Lab, configPath string) *lab.Process {
	skipWithoutOvpnd(t)
	// A state directory per lab lets runs of the suite coexist (production uses /run/ovpnd),
	// and a resolv.conf per lab keeps pushed DNS servers away from the host's, which `ip netns
	// exec` shares with the namespace. DNS itself is checked in routing_test.go.
	resolv := l.WriteFile("resolv.conf", "nameserver 198.18.0.1\n")
	return l.StartClientProcess(ovpndBinary(), "run", "--name", "lab", "--state-dir", filepath.Join(l.Dir, "state"),
		"--dns-mode", "resolv.conf", "--resolv-conf", resolv, configPath)
}

// dumpOnFailure shows the client's output and the server's log when the test fails.
func dumpOnFailure(t *testing.T, client interface{ Output() string }, srv *lab.Server) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- client output ---\n%s\n--- server log ---\n%s", client.Output(), srv.Log())
		}
	})
}

func startOpenVPN(t *testing.T, l *lab.Lab, configPath string) *lab.Process {
	return l.StartClientProcess("openvpn", "--config", configPath)
}

// TestOvpndInterop runs bin/ovpnd against Debian's OpenVPN 2.6 server across the matrix.
func TestOvpndInterop(t *testing.T) {
	for _, c := range interopCases() {
		t.Run(c.name, func(t *testing.T) {
			skipWithoutOvpnd(t)
			runInteropCase(t, c, startOvpnd)
		})
	}
}

func runInteropCase(t *testing.T, c interopCase, start clientStarter) {
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(c.server)
	before := l.ClientNetState()
	cfg := l.WriteFile("client.conf", srv.ClientConfig(c.client))

	t0 := time.Now()
	client := start(t, l, cfg)
	// Logs are what make an interop failure debuggable; print them whenever the case fails.
	dumpOnFailure(t, client, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dev, err := l.WaitTunnel(ctx, client, srv.ClientTunnelAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tunnel %s on %s after %v", srv.ClientTunnelAddr(), dev, time.Since(t0).Round(time.Millisecond))

	checkTraffic(t, l, srv.TunnelAddr())
	if c.tunnel6 {
		if _, err := l.WaitClientAddr(ctx, lab.ClientTunnel6); err != nil {
			t.Fatal(err)
		}
		checkTraffic(t, l, lab.ServerTunnel6)
	}
	if c.cipher != "" && !strings.Contains(srv.Log(), "Data Channel: cipher '"+c.cipher+"'") {
		t.Errorf("server did not negotiate %s", c.cipher)
	}
	if len(c.routes) > 0 {
		st := l.ClientNetState()
		for _, r := range c.routes {
			if !strings.Contains(st.Route4, r+" ") {
				t.Errorf("route %s missing while connected:\n%s", r, st.Route4)
			}
		}
	}
	if c.exercise != nil && !t.Failed() {
		c.exercise(t, l, srv, client)
	}

	if err := client.Stop(15 * time.Second); err != nil {
		t.Errorf("client after SIGTERM: %v (exit code %d)", err, client.ExitCode())
	}
	if diff := cmp.Diff(before, l.ClientNetState()); diff != "" {
		t.Errorf("client namespace not restored after exit (-before +after):\n%s", diff)
	}
}

// checkTraffic pings addr and moves transferSize bytes each way byte for byte.
func checkTraffic(t *testing.T, l *lab.Lab, addr string) {
	t.Helper()
	st, err := l.Ping(addr, 5, 5*time.Second)
	if err != nil {
		t.Fatalf("ping %s through the tunnel: %v\n%s", addr, err, st.Output)
	}
	if st.Lost() > 1 {
		t.Errorf("ping %s: %d of %d lost", addr, st.Lost(), st.Sent)
	}
	up, down := l.Transfer(t, addr, transferSize)
	t.Logf("%s: ping avg %v, %d bytes up in %v, down in %v", addr, st.AvgRTT, up.Bytes,
		up.Duration.Round(time.Millisecond), down.Duration.Round(time.Millisecond))
}

// trafficThroughRekeys keeps transfers and a ping running for d while the server rekeys, and
// requires at least wantHandshakes completed TLS handshakes in the server log (the first one
// included) and no lost traffic.
func trafficThroughRekeys(t *testing.T, l *lab.Lab, srv *lab.Server, d time.Duration, wantHandshakes int) {
	t.Helper()
	var wg sync.WaitGroup
	var ping lab.PingStats
	var pingErr error
	count := int(d / (200 * time.Millisecond))
	wg.Add(1)
	go func() {
		defer wg.Done()
		ping, pingErr = l.Ping(srv.TunnelAddr(), count, d+5*time.Second)
	}()
	deadline := time.Now().Add(d)
	rounds := 0
	for time.Now().Before(deadline) {
		rounds++
		if _, err := l.TransferErr(srv.TunnelAddr(), transferSize, lab.XferOptions{Download: rounds%2 == 0}); err != nil {
			t.Errorf("transfer %d during rekeys: %v", rounds, err)
			break
		}
	}
	wg.Wait()
	if pingErr != nil {
		t.Errorf("ping during rekeys: %v", pingErr)
	} else if ping.Lost() > 1 {
		t.Errorf("ping during rekeys: %d of %d lost", ping.Lost(), ping.Sent)
	}
	if n := strings.Count(srv.Log(), "Control Channel: TLS"); n < wantHandshakes {
		t.Errorf("server completed %d TLS handshakes in %v, want at least %d", n, d, wantHandshakes)
	}
	t.Logf("%d transfers of %d bytes and %d pings through rekeys (%d lost)", rounds, transferSize, ping.Sent, ping.Lost())
}

// restartServer restarts the server process; the client must notice (RESTART from
// explicit-exit-notify on UDP, a closed connection on TCP), reconnect and carry traffic again.
func restartServer(t *testing.T, l *lab.Lab, srv *lab.Server, _ *lab.Process) {
	t.Helper()
	srv.Restart()
	t0 := time.Now()
	if err := l.WaitPing(srv.TunnelAddr(), 60*time.Second); err != nil {
		t.Fatalf("client did not reconnect after server restart: %v", err)
	}
	t.Logf("reconnected %v after the restart", time.Since(t0).Round(time.Millisecond))
	l.Transfer(t, srv.TunnelAddr(), transferSize)
}
