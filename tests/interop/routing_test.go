package interop

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ovpnd/ovpnd/tests/lab"
)

// Addresses of the routing tests. onlyViaTunnel4/6 live on the server namespace's loopback and
// are blackholed for underlay traffic: a reply proves the packet went through the tunnel.
// remoteBehindGW is a server address one hop away, so that the client reaches it through its
// default gateway and the host route ovpnd adds for it has a real next hop.
const (
	onlyViaTunnel4 = "203.0.113.7"
	onlyViaTunnel6 = "2001:db8:7::7"
	remoteBehindGW = "192.0.2.1"
	secondGateway  = "198.18.0.3"
)

// routingLab is one lab with the routing-test addresses on the server and a running server.
type routingLab struct {
	*lab.Lab
	srv      *lab.Server
	before   lab.NetState
	stateDir string
}

func newRoutingLab(t *testing.T, so lab.ServerOptions) *routingLab {
	t.Helper()
	skipWithoutOvpnd(t)
	l := lab.New(t, lab.Options{})
	l.AddServerOnlyAddr(onlyViaTunnel4 + "/32")
	l.AddServerOnlyAddr(onlyViaTunnel6 + "/128")
	l.AddServerUnderlayAddr(remoteBehindGW+"/32", "lo")
	// Without a tunnel the server-only addresses must be unreachable, or reaching them later
	// would prove nothing.
	for _, a := range []string{onlyViaTunnel4, onlyViaTunnel6} {
		if st, err := l.Ping(a, 1, time.Second); err == nil {
			t.Fatalf("%s answers over the underlay:\n%s", a, st.Output)
		}
	}
	srv := l.StartServer(so)
	return &routingLab{Lab: l, srv: srv, before: l.ClientNetState(), stateDir: filepath.Join(l.Dir, "state")}
}

// start runs `ovpnd run` with extra flags and waits for the tunnel address.
func (rl *routingLab) start(t *testing.T, name string, co lab.ClientOptions, flags ...string) (*lab.Process, string) {
	t.Helper()
	cfg := rl.WriteFile(name+".conf", rl.srv.ClientConfig(co))
	args := append([]string{ovpndBinary(), "run", "--name", name, "--state-dir", rl.stateDir}, flags...)
	t0 := time.Now()
	client := rl.StartClientProcess(append(args, cfg)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- %s output ---\n%s\n--- server log ---\n%s", name, client.Output(), rl.srv.Log())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The address appears before the routes; "Initialization Sequence Completed" is logged
	// after the push reply was applied.
	if err := client.WaitOutput(ctx, "Initialization Sequence Completed"); err != nil {
		t.Fatal(err)
	}
	dev := ""
	for _, line := range strings.Split(client.Output(), "\n") {
		if i := strings.Index(line, "opened tun device "); i >= 0 {
			dev = strings.Fields(line[i+len("opened tun device "):])[0]
		}
	}
	if dev == "" {
		t.Fatalf("no tun device in the output:\n%s", client.Output())
	}
	t.Logf("%s up on %s after %v", name, dev, time.Since(t0).Round(time.Millisecond))
	return client, dev
}

// stop sends SIGTERM and expects exit status 0.
func stop(t *testing.T, p *lab.Process) {
	t.Helper()
	if err := p.Stop(15 * time.Second); err != nil {
		t.Errorf("ovpnd after SIGTERM: %v\n%s", err, p.Output())
	}
}

// checkRestored compares the client namespace with the snapshot taken before connecting.
func (rl *routingLab) checkRestored(t *testing.T, when string) {
	t.Helper()
	if diff := cmp.Diff(rl.before, rl.ClientNetState()); diff != "" {
		t.Errorf("client namespace not restored %s (-before +after):\n%s", when, diff)
	}
}

// cleanup runs `ovpnd cleanup --state-dir` as after a crash.
func (rl *routingLab) cleanup(t *testing.T) string {
	t.Helper()
	out, err := rl.ClientExec(context.Background(), ovpndBinary(), "cleanup", "--state-dir", rl.stateDir)
	if err != nil {
		t.Fatalf("ovpnd cleanup: %v", err)
	}
	return string(out)
}

func onDev(dev string) func(string) bool {
	return func(l string) bool { return strings.Contains(l, " dev "+dev+" ") || strings.HasSuffix(l, " dev "+dev) }
}

func hasRoute(routes []string, prefix string) bool {
	for _, r := range routes {
		if strings.HasPrefix(r, prefix+" ") || r == prefix {
			return true
		}
	}
	return false
}

// pingThroughTunnel pings addr and requires the replies to have crossed dev.
func pingThroughTunnel(t *testing.T, l *lab.Lab, dev, addr string) {
	t.Helper()
	if got := l.ClientRouteGet(addr); !strings.Contains(got, " dev "+dev+" ") {
		t.Errorf("ip route get %s: %q, want dev %s", addr, got, dev)
	}
	rx0, tx0 := l.ClientLinkStats(dev)
	st, err := l.Ping(addr, 5, 5*time.Second)
	if err != nil {
		t.Fatalf("ping %s: %v\n%s", addr, err, st.Output)
	}
	rx1, tx1 := l.ClientLinkStats(dev)
	if tx1-tx0 < uint64(st.Sent) || rx1-rx0 < uint64(st.Received) {
		t.Errorf("ping %s: %d sent, %d received, but %s counted %d out, %d in", addr, st.Sent, st.Received, dev, tx1-tx0, rx1-rx0)
	}
}

// TestRoutingRedirectDef1: redirect-gateway def1 pushed by the server, over TCP to a server
// address behind the client's default gateway. The two halves go into the tunnel, the server
// keeps a host route via the original gateway, traffic to an address only the tunnel reaches
// flows through the tunnel, and when the default gateway changes the host route follows.
func TestRoutingRedirectDef1(t *testing.T) {
	rl := newRoutingLab(t, lab.ServerOptions{Proto: "tcp", Wrap: "tls-crypt", Push: []string{"redirect-gateway def1"}})
	client, dev := rl.start(t, "def1", lab.ClientOptions{Remote: remoteBehindGW})

	tun := rl.ClientRoutes(false, onDev(dev))
	for _, want := range []string{"0.0.0.0/1", "128.0.0.0/1"} {
		if !hasRoute(tun, want) {
			t.Errorf("route %s not on %s: %q", want, dev, tun)
		}
	}
	host := rl.ClientRoutes(false, func(l string) bool { return strings.HasPrefix(l, remoteBehindGW+" ") })
	if len(host) != 1 || !strings.Contains(host[0], "via "+lab.ServerUnderlay4+" dev veth0") {
		t.Errorf("host route to the server: %q, want one via %s dev veth0", host, lab.ServerUnderlay4)
	}
	if !strings.Contains(rl.before.Route4, "default via "+lab.ServerUnderlay4) || !strings.Contains(rl.ClientNetState().Route4, "default via "+lab.ServerUnderlay4) {
		t.Errorf("def1 must leave the default route alone:\n%s", rl.ClientNetState().Route4)
	}
	pingThroughTunnel(t, rl.Lab, dev, onlyViaTunnel4)
	if got := rl.ClientRouteGet(remoteBehindGW); !strings.Contains(got, "via "+lab.ServerUnderlay4+" dev veth0") {
		t.Errorf("ip route get %s: %q, want the underlay", remoteBehindGW, got)
	}
	if _, err := rl.Ping(remoteBehindGW, 3, 3*time.Second); err != nil {
		t.Errorf("the server over the underlay: %v", err)
	}

	// The default gateway changes (DHCP, roaming): the host route must follow.
	rl.AddServerUnderlayAddr(secondGateway+"/24", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t0 := time.Now()
	if _, err := rl.ClientExec(ctx, "ip", "route", "replace", "default", "via", secondGateway); err != nil {
		t.Fatal(err)
	}
	if _, err := rl.WaitClientRoute(ctx, false, func(l string) bool {
		return strings.HasPrefix(l, remoteBehindGW+" via "+secondGateway+" ")
	}); err != nil {
		t.Fatalf("host route did not follow the new gateway: %v", err)
	}
	t.Logf("host route followed the new gateway after %v", time.Since(t0).Round(time.Millisecond))
	if !strings.Contains(client.Output(), "underlying routes changed") {
		t.Error("the route change was not logged")
	}
	pingThroughTunnel(t, rl.Lab, dev, onlyViaTunnel4)
	if _, err := rl.ClientExec(ctx, "ip", "route", "replace", "default", "via", lab.ServerUnderlay4); err != nil {
		t.Fatal(err)
	}
	if _, err := rl.WaitClientRoute(ctx, false, func(l string) bool {
		return strings.HasPrefix(l, remoteBehindGW+" via "+lab.ServerUnderlay4+" ")
	}); err != nil {
		t.Fatalf("host route did not return to the first gateway: %v", err)
	}

	stop(t, client)
	if _, err := rl.ServerExec(ctx, "ip", "addr", "del", secondGateway+"/24", "dev", "veth0"); err != nil {
		t.Fatal(err)
	}
	rl.checkRestored(t, "after SIGTERM")
}

// TestRoutingRedirectIPv6: redirect-gateway def1 ipv6 with server-ipv6; the IPv6 redirect
// routes cover global unicast and ULA space, and IPv6 pings go through the tunnel.
func TestRoutingRedirectIPv6(t *testing.T) {
	rl := newRoutingLab(t, lab.ServerOptions{Wrap: "tls-crypt", IPv6: true, Push: []string{"redirect-gateway def1 ipv6"}})
	client, dev := rl.start(t, "v6", lab.ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := rl.WaitClientAddr(ctx, lab.ClientTunnel6); err != nil {
		t.Fatal(err)
	}
	tun6 := rl.ClientRoutes(true, onDev(dev))
	for _, want := range []string{"::/3", "2000::/4", "3000::/4", "fc00::/7"} {
		if !hasRoute(tun6, want) {
			t.Errorf("IPv6 route %s not on %s: %q", want, dev, tun6)
		}
	}
	for _, r := range tun6 {
		if strings.HasPrefix(r, "fe80::/10 ") && !strings.HasPrefix(r, "fe80::/64") || strings.HasPrefix(r, "ff00::/8") || strings.HasPrefix(r, "default") {
			t.Errorf("link-local, multicast or default IPv6 route redirected: %q", r)
		}
	}
	tun4 := rl.ClientRoutes(false, onDev(dev))
	for _, want := range []string{"0.0.0.0/1", "128.0.0.0/1"} {
		if !hasRoute(tun4, want) {
			t.Errorf("route %s not on %s: %q", want, dev, tun4)
		}
	}
	pingThroughTunnel(t, rl.Lab, dev, lab.ServerTunnel6)
	pingThroughTunnel(t, rl.Lab, dev, onlyViaTunnel6)
	pingThroughTunnel(t, rl.Lab, dev, onlyViaTunnel4)
	if got := rl.ClientRouteGet(lab.ServerUnderlay6); !strings.Contains(got, "dev veth0") {
		t.Errorf("ip route get %s: %q, want the underlay", lab.ServerUnderlay6, got)
	}
	stop(t, client)
	rl.checkRestored(t, "after SIGTERM")
}

// TestRoutingSplit: only the pushed route goes into the tunnel.
func TestRoutingSplit(t *testing.T) {
	rl := newRoutingLab(t, lab.ServerOptions{Wrap: "tls-crypt", Push: []string{"route 203.0.113.0 255.255.255.0"}})
	client, dev := rl.start(t, "split", lab.ClientOptions{})
	tun := rl.ClientRoutes(false, onDev(dev))
	var others []string
	for _, r := range tun {
		if !strings.HasPrefix(r, "203.0.113.0/24 ") && !strings.HasPrefix(r, "10.8.0.0/24 ") {
			others = append(others, r)
		}
	}
	if !hasRoute(tun, "203.0.113.0/24") || len(others) > 0 {
		t.Errorf("routes on %s: %q; want the pushed 203.0.113.0/24 and the tunnel subnet only", dev, tun)
	}
	pingThroughTunnel(t, rl.Lab, dev, onlyViaTunnel4)
	if got := rl.ClientRouteGet("198.51.100.1"); !strings.Contains(got, "dev veth0") {
		t.Errorf("ip route get 198.51.100.1: %q; everything else must stay on the underlay", got)
	}
	stop(t, client)
	rl.checkRestored(t, "after SIGTERM")
}

// TestRoutingPullFilters: route-nopull and pull-filter ignore "route" drop the pushed routes
// (and with route-nopull the redirect) but keep the tunnel address.
func TestRoutingPullFilters(t *testing.T) {
	push := []string{"route 203.0.113.0 255.255.255.0", "redirect-gateway def1"}
	for _, tc := range []struct {
		name     string
		extra    []string
		redirect bool // pull-filter "route" does not match redirect-gateway
	}{
		{"route-nopull", []string{"route-nopull"}, false},
		{"pull-filter-ignore-route", []string{`pull-filter ignore "route"`}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rl := newRoutingLab(t, lab.ServerOptions{Wrap: "tls-crypt", Push: push})
			client, dev := rl.start(t, "nopull", lab.ClientOptions{Extra: tc.extra})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := rl.WaitClientAddr(ctx, rl.srv.ClientTunnelAddr()); err != nil {
				t.Fatal(err)
			}
			tun := rl.ClientRoutes(false, onDev(dev))
			if hasRoute(tun, "203.0.113.0/24") {
				t.Errorf("pushed route installed despite %s: %q", tc.name, tun)
			}
			if hasRoute(tun, "0.0.0.0/1") != tc.redirect {
				t.Errorf("redirect routes present = %v, want %v: %q", !tc.redirect, tc.redirect, tun)
			}
			if !strings.Contains(client.Output(), "ignoring pushed option \"route 203.0.113.0 255.255.255.0\"") {
				t.Errorf("the dropped route was not logged")
			}
			// The tunnel itself works.
			pingThroughTunnel(t, rl.Lab, dev, rl.srv.TunnelAddr())
			stop(t, client)
			rl.checkRestored(t, "after SIGTERM")
		})
	}
}

// TestRoutingCrashCleanup: SIGKILL leaves what the dead process added (the server host route,
// and without def1 the replaced default route); `ovpnd cleanup` restores the namespace exactly.
func TestRoutingCrashCleanup(t *testing.T) {
	for _, tc := range []struct {
		name, push string
	}{
		{"def1", "redirect-gateway def1"},
		{"replace-default", "redirect-gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rl := newRoutingLab(t, lab.ServerOptions{Proto: "tcp", Wrap: "tls-crypt", Push: []string{tc.push}})
			client, dev := rl.start(t, "crash", lab.ClientOptions{Remote: remoteBehindGW})
			if tc.push == "redirect-gateway" {
				def := rl.ClientRoutes(false, func(l string) bool { return strings.HasPrefix(l, "default") })
				if len(def) != 1 || !strings.Contains(def[0], "dev "+dev) {
					t.Errorf("default routes %q, want one, through %s", def, dev)
				}
			}
			pingThroughTunnel(t, rl.Lab, dev, onlyViaTunnel4)
			client.Kill()
			st := rl.ClientNetState()
			if !strings.Contains(st.Route4, remoteBehindGW+" via ") {
				t.Errorf("after SIGKILL the host route should still be there:\n%s", st.Route4)
			}
			if tc.push == "redirect-gateway" && strings.Contains(st.Route4, "default") {
				t.Errorf("after SIGKILL the original default route should be missing:\n%s", st.Route4)
			}
			t0 := time.Now()
			out := rl.cleanup(t)
			t.Logf("ovpnd cleanup took %v:\n%s", time.Since(t0).Round(time.Millisecond), out)
			rl.checkRestored(t, "after SIGKILL and ovpnd cleanup")
			if left, _ := filepath.Glob(filepath.Join(rl.stateDir, "*")); len(left) > 0 {
				t.Errorf("state left behind: %v", left)
			}
		})
	}
}

// TestRoutingTwoTunnels: a second tunnel up at the same time leaves the first alone, and
// `ovpnd run` cleans up after a SIGKILLed instance at start without touching a live one.
func TestRoutingTwoTunnels(t *testing.T) {
	rl := newRoutingLab(t, lab.ServerOptions{Wrap: "tls-crypt", Push: []string{"redirect-gateway def1"},
		Extra: []string{"duplicate-cn"}})
	a, devA := rl.start(t, "first", lab.ClientOptions{})
	routesA := rl.ClientRoutes(false, onDev(devA))

	b, devB := rl.start(t, "second", lab.ClientOptions{Extra: []string{"route-nopull"}})
	if devA == devB {
		t.Fatalf("both tunnels on %s", devA)
	}
	if got := rl.ClientRoutes(false, onDev(devA)); !cmp.Equal(got, routesA) {
		t.Errorf("second tunnel changed the first one's routes: %q -> %q", routesA, got)
	}
	b.Kill()
	if _, err := os.Stat(filepath.Join(rl.stateDir, "second.routing.json")); err != nil {
		t.Fatalf("the killed tunnel left no record: %v", err)
	}

	// A third instance cleans up the dead second one at start, and not the live first one.
	c, _ := rl.start(t, "third", lab.ClientOptions{Extra: []string{"route-nopull"}})
	if _, err := os.Stat(filepath.Join(rl.stateDir, "second.routing.json")); err == nil {
		t.Error("ovpnd run did not clean up the dead instance's record")
	}
	if !strings.Contains(c.Output(), "cleanup[second]") {
		t.Errorf("no cleanup logged:\n%s", c.Output())
	}
	if got := rl.ClientRoutes(false, onDev(devA)); !cmp.Equal(got, routesA) {
		t.Errorf("the third instance changed the first one's routes: %q -> %q", routesA, got)
	}
	pingThroughTunnel(t, rl.Lab, devA, onlyViaTunnel4)
	stop(t, c)
	stop(t, a)
	rl.checkRestored(t, "after all tunnels went down")
}

// TestRoutingResolvConf: DNS in resolv.conf mode on a file in the lab dir. While connected the
// file names the pushed server and domain; SIGTERM restores it, and so does `ovpnd cleanup`
// after SIGKILL.
func TestRoutingResolvConf(t *testing.T) {
	rl := newRoutingLab(t, lab.ServerOptions{Wrap: "tls-crypt", Push: []string{
		"redirect-gateway def1", "dhcp-option DNS 10.8.0.1", "dhcp-option DOMAIN lab.test",
	}})
	const orig = "# the host's resolver\nnameserver 192.0.2.53\nsearch home.test\noptions edns0\n"
	path := rl.WriteFile("resolv.conf", orig)
	flags := []string{"--dns-mode", "resolv.conf", "--resolv-conf", path}
	check := func(t *testing.T) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got := string(b)
		for _, want := range []string{"nameserver 10.8.0.1\n", "search lab.test\n", "options edns0\n"} {
			if !strings.Contains(got, want) {
				t.Errorf("resolv.conf lacks %q while connected:\n%s", want, got)
			}
		}
		if strings.Contains(got, "192.0.2.53") || strings.Contains(got, "home.test") {
			t.Errorf("full-tunnel DNS kept the host's resolver:\n%s", got)
		}
	}
	restored := func(t *testing.T, when string) {
		t.Helper()
		if b, err := os.ReadFile(path); err != nil || string(b) != orig {
			t.Errorf("resolv.conf %s: %q, %v; want the original", when, b, err)
		}
	}

	t.Run("sigterm", func(t *testing.T) {
		client, dev := rl.start(t, "dns", lab.ClientOptions{}, flags...)
		check(t)
		if want := "DNS: resolv.conf " + path + ": servers 10.8.0.1, domains lab.test"; !strings.Contains(client.Output(), want) {
			t.Errorf("log lacks %q", want)
		}
		pingThroughTunnel(t, rl.Lab, dev, onlyViaTunnel4)
		stop(t, client)
		restored(t, "after SIGTERM")
		rl.checkRestored(t, "after SIGTERM")
	})
	t.Run("sigkill+cleanup", func(t *testing.T) {
		client, _ := rl.start(t, "dns", lab.ClientOptions{}, flags...)
		check(t)
		client.Kill()
		if b, _ := os.ReadFile(path); string(b) == orig {
			t.Fatal("resolv.conf already restored after SIGKILL; the test proves nothing")
		}
		rl.cleanup(t)
		restored(t, "after SIGKILL and ovpnd cleanup")
		rl.checkRestored(t, "after SIGKILL and ovpnd cleanup")
	})
}
