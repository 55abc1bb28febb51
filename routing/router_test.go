package routing

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

var (
	server4 = netip.MustParseAddr("203.0.113.5")
	server6 = netip.MustParseAddr("2001:db8:ff::5")
	vpnGw4  = netip.MustParseAddr("10.8.0.1")
)

func mp(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ma(s string) netip.Addr   { return netip.MustParseAddr(s) }

// lanEnv is a laptop on a LAN: eth0 with IPv4 and IPv6 default routes
// learnt from DHCP/RA, and an unconfigured tun0.
func lanEnv(t *testing.T, withDefault bool) *fakeKernel {
	t.Helper()
	f := newFakeKernel()
	f.addLink(1, "lo", 65536)
	f.addLink(2, "eth0", 1500)
	f.addLink(5, "tun0", 1500)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.AddrAdd(kaddr{LinkIndex: 2, Prefix: mp("192.168.1.10/24")}))
	must(f.AddrAdd(kaddr{LinkIndex: 2, Prefix: mp("2001:db8:1::10/64")}))
	if withDefault {
		must(f.RouteAdd(kroute{Dst: mp("0.0.0.0/0"), Gw: ma("192.168.1.1"), LinkIndex: 2, Metric: 100, Table: tableMain, Protocol: unix.RTPROT_DHCP}))
		must(f.RouteAdd(kroute{Dst: mp("::/0"), Gw: ma("fe80::1"), LinkIndex: 2, Metric: 1024, Table: tableMain, Protocol: unix.RTPROT_DHCP}))
	}
	f.ops = nil
	return f
}

func testBypass(dhcp, dns bool, _ int) []netip.Addr {
	var out []netip.Addr
	if dns {
		out = append(out, ma("192.168.1.53"), ma("127.0.0.53"), ma("9.9.9.9"))
	}
	if dhcp {
		out = append(out, ma("192.168.1.1"))
	}
	return out
}

func newTestRouter(t *testing.T, k kernel, dir, instance string) *Router {
	t.Helper()
	r, err := New(Options{StateDir: dir, Instance: instance, Logf: t.Logf, DNSMode: ModeNone, kernel: k, bypassFunc: testBypass})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func baseCfg() *Config {
	return &Config{
		Link:        "tun0",
		MTU:         1400,
		Addrs:       []Addr{{Prefix: mp("10.8.0.2/24")}, {Prefix: mp("fd00:8::2/64")}},
		ServerAddrs: []netip.Addr{server4, server6},
	}
}

func with(f func(c *Config)) *Config {
	c := baseCfg()
	f(c)
	return c
}

const addrLines = `+addr tun0 10.8.0.2/24
+addr tun0 fd00:8::2/64
+link tun0 mtu 1400
+route 10.8.0.0/24 dev tun0 proto kernel scope link
+route fd00:8::/64 dev tun0 proto kernel metric 256
-link tun0 mtu 1500`

const def1Lines = `+route 0.0.0.0/1 via 10.8.0.1 dev tun0 proto static
+route 128.0.0.0/1 via 10.8.0.1 dev tun0 proto static
+route 203.0.113.5/32 via 192.168.1.1 dev eth0 proto static`

const v6Lines = `+route 2000::/4 dev tun0 proto static metric 1024
+route 2001:db8:ff::5/128 via fe80::1 dev eth0 proto static metric 1024
+route 3000::/4 dev tun0 proto static metric 1024
+route ::/3 dev tun0 proto static metric 1024
+route fc00::/7 dev tun0 proto static metric 1024`

type golden struct {
	name string
	cfg  *Config
	want string // lines added to (+) and removed from (-) lanEnv
}

func goldenTable() []golden {
	return []golden{
		{"empty", &Config{Link: "tun0"}, ``},
		{"addresses", baseCfg(), addrLines},
		{"def1", with(func(c *Config) { c.Redirect = &Redirect{Def1: true, Gateway4: vpnGw4} }), addrLines + "\n" + def1Lines},
		{"replace-default", with(func(c *Config) { c.Redirect = &Redirect{Gateway4: vpnGw4} }), addrLines + `
+route 203.0.113.5/32 via 192.168.1.1 dev eth0 proto static
+route default via 10.8.0.1 dev tun0 proto static
-route default via 192.168.1.1 dev eth0 proto dhcp metric 100`},
		{"replace-default-same-metric", with(func(c *Config) { c.Redirect = &Redirect{Gateway4: vpnGw4, Metric: 100} }), addrLines + `
+route 203.0.113.5/32 via 192.168.1.1 dev eth0 proto static
+route default via 10.8.0.1 dev tun0 proto static metric 100
-route default via 192.168.1.1 dev eth0 proto dhcp metric 100`},
		{"def1-ipv6", with(func(c *Config) { c.Redirect = &Redirect{Def1: true, IPv6: true, Gateway4: vpnGw4} }), addrLines + "\n" + def1Lines + "\n" + v6Lines},
		{"ipv6-not-ipv4", with(func(c *Config) { c.Redirect = &Redirect{Def1: true, IPv6: true, NoIPv4: true, Gateway4: vpnGw4} }), addrLines + "\n" + v6Lines},
		{"ipv6-without-tunnel-ipv6", with(func(c *Config) {
			c.Addrs = c.Addrs[:1]
			c.Redirect = &Redirect{Def1: true, IPv6: true, NoIPv4: true}
		}), `+addr tun0 10.8.0.2/24
+link tun0 mtu 1400
+route 10.8.0.0/24 dev tun0 proto kernel scope link
-link tun0 mtu 1500`},
		// block-ipv6 answers IPv6 in the tunnel: the routes go in without an
		// IPv6 address, as OpenVPN 2.6 adds them, with the server's bypass.
		{"ipv6-without-tunnel-ipv6-block-ipv6", with(func(c *Config) {
			c.Addrs = c.Addrs[:1]
			c.Redirect = &Redirect{Def1: true, IPv6: true, NoIPv4: true, BlockIPv6: true}
		}), `+addr tun0 10.8.0.2/24
+link tun0 mtu 1400
+route 10.8.0.0/24 dev tun0 proto kernel scope link
-link tun0 mtu 1500
` + v6Lines},
		{"local", with(func(c *Config) { c.Redirect = &Redirect{Def1: true, Local: true, Gateway4: vpnGw4} }), addrLines + `
+route 0.0.0.0/1 via 10.8.0.1 dev tun0 proto static
+route 128.0.0.0/1 via 10.8.0.1 dev tun0 proto static`},
		{"autolocal-remote", with(func(c *Config) { c.Redirect = &Redirect{Def1: true, AutoLocal: true, Gateway4: vpnGw4} }), addrLines + "\n" + def1Lines},
		{"autolocal-onlink", with(func(c *Config) {
			c.ServerAddrs = []netip.Addr{ma("192.168.1.77")}
			c.Redirect = &Redirect{Def1: true, AutoLocal: true, Gateway4: vpnGw4}
		}), addrLines + `
+route 0.0.0.0/1 via 10.8.0.1 dev tun0 proto static
+route 128.0.0.0/1 via 10.8.0.1 dev tun0 proto static`},
		{"bypass-dns-dhcp", with(func(c *Config) {
			c.Redirect = &Redirect{Def1: true, BypassDNS: true, BypassDHCP: true, Gateway4: vpnGw4}
		}), addrLines + "\n" + def1Lines + `
+route 192.168.1.1/32 dev eth0 proto static scope link
+route 192.168.1.53/32 dev eth0 proto static scope link
+route 9.9.9.9/32 via 192.168.1.1 dev eth0 proto static`},
		{"block-local", with(func(c *Config) { c.Redirect = &Redirect{Def1: true, BlockLocal: true, Gateway4: vpnGw4} }), addrLines + "\n" + def1Lines + `
+route 192.168.1.0/25 via 10.8.0.1 dev tun0 proto static
+route 192.168.1.1/32 dev eth0 proto static scope link
+route 192.168.1.128/25 via 10.8.0.1 dev tun0 proto static`},
		{"split", with(func(c *Config) {
			c.Routes = []Route{
				{Dst: mp("10.20.0.0/16"), Gateway: vpnGw4},
				{Dst: mp("172.16.0.0/12")},
				{Dst: mp("fd00:20::/48")},
				{Dst: mp("198.51.100.0/24"), ViaNetGateway: true},
				{Dst: mp("203.0.113.0/24")},                // captures the server
				{Dst: mp("10.20.0.7/16"), Gateway: vpnGw4}, // host bits: masked, a duplicate
			}
		}), addrLines + `
+route 10.20.0.0/16 via 10.8.0.1 dev tun0 proto static
+route 172.16.0.0/12 dev tun0 proto static scope link
+route 198.51.100.0/24 via 192.168.1.1 dev eth0 proto static
+route 203.0.113.0/24 dev tun0 proto static scope link
+route 203.0.113.5/32 via 192.168.1.1 dev eth0 proto static
+route fd00:20::/48 dev tun0 proto static metric 1024`},
		{"route-metric", with(func(c *Config) {
			c.Redirect = &Redirect{Def1: true, Gateway4: vpnGw4, Metric: 50}
			c.Routes = []Route{{Dst: mp("10.30.0.0/16"), Gateway: vpnGw4, Metric: 50}, {Dst: mp("fd00:30::/48"), Metric: 50}}
		}), addrLines + `
+route 0.0.0.0/1 via 10.8.0.1 dev tun0 proto static metric 50
+route 10.30.0.0/16 via 10.8.0.1 dev tun0 proto static metric 50
+route 128.0.0.0/1 via 10.8.0.1 dev tun0 proto static metric 50
+route 203.0.113.5/32 via 192.168.1.1 dev eth0 proto static
+route fd00:30::/48 dev tun0 proto static metric 50`},
		{"net30", with(func(c *Config) {
			c.Addrs = []Addr{{Prefix: mp("10.8.0.6/32"), Peer: ma("10.8.0.5")}}
			c.MTU = 1300
			c.Redirect = &Redirect{Def1: true, Gateway4: ma("10.8.0.5")}
		}), `+addr tun0 10.8.0.6/32 peer 10.8.0.5
+link tun0 mtu 1300
+route 0.0.0.0/1 via 10.8.0.5 dev tun0 proto static
+route 10.8.0.5/32 dev tun0 proto kernel scope link
+route 128.0.0.0/1 via 10.8.0.5 dev tun0 proto static
+route 203.0.113.5/32 via 192.168.1.1 dev eth0 proto static
-link tun0 mtu 1500`},
	}
}

func TestGoldenRoutes(t *testing.T) {
	for _, g := range goldenTable() {
		t.Run(g.name, func(t *testing.T) {
			k := lanEnv(t, true)
			before := k.String()
			r := newTestRouter(t, k, t.TempDir(), "t")
			if err := r.Set(g.cfg); err != nil {
				t.Fatalf("Set: %v", err)
			}
			if diff := cmp.Diff(sortLines(g.want), lineDiff(before, k.String())); diff != "" {
				t.Errorf("state after Set (-want +got):\n%s", diff)
			}
			// Set is idempotent: the same Config again changes nothing.
			k.ops = nil
			if err := r.Set(g.cfg); err != nil {
				t.Fatalf("second Set: %v", err)
			}
			if len(k.ops) != 0 {
				t.Errorf("second Set changed the kernel: %q", k.ops)
			}
			if err := r.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if diff := cmp.Diff(before, k.String()); diff != "" {
				t.Errorf("state after Close (-before +after):\n%s", diff)
			}
		})
	}
}

// TestReplayRandomOrder applies the golden Configs in shuffled sequences:
// after each Set the kernel must look as if that Config had been applied
// from scratch, and Close must restore the starting state.
func TestReplayRandomOrder(t *testing.T) {
	table := goldenTable()
	scratch := map[string]string{}
	for _, g := range table {
		k := lanEnv(t, true)
		r := newTestRouter(t, k, t.TempDir(), "t")
		if err := r.Set(g.cfg); err != nil {
			t.Fatal(err)
		}
		scratch[g.name] = k.String()
	}
	for seed := uint64(1); seed <= 25; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			k := lanEnv(t, true)
			before := k.String()
			r := newTestRouter(t, k, t.TempDir(), "t")
			var seq []string
			for range 12 {
				g := table[rng.IntN(len(table))]
				seq = append(seq, g.name)
				if err := r.Set(g.cfg); err != nil {
					t.Fatalf("after %v: %v", seq, err)
				}
				if diff := cmp.Diff(scratch[g.name], k.String()); diff != "" {
					t.Fatalf("after %v (-scratch +replayed):\n%s", seq, diff)
				}
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, k.String()); diff != "" {
				t.Fatalf("after %v and Close (-before +after):\n%s", seq, diff)
			}
		})
	}
}

func sortLines(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	slices.Sort(l)
	return strings.Join(l, "\n")
}

func opIndex(ops []string, prefix string) int {
	return slices.IndexFunc(ops, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

func TestOrdering(t *testing.T) {
	k := lanEnv(t, true)
	r := newTestRouter(t, k, t.TempDir(), "t")
	defer r.Close()
	def1 := with(func(c *Config) { c.Redirect = &Redirect{Def1: true, Gateway4: vpnGw4} })
	if err := r.Set(def1); err != nil {
		t.Fatal(err)
	}
	// The server's host route exists before anything captures the server,
	// and addresses exist before routes through them.
	host := opIndex(k.ops, "route add 203.0.113.5/32")
	capture := opIndex(k.ops, "route add 0.0.0.0/1")
	addr := opIndex(k.ops, "addr add 10.8.0.2/24")
	if host < 0 || capture < 0 || addr < 0 || !(addr < host && host < capture) {
		t.Errorf("ops out of order: %q", k.ops)
	}
	// Switching to a different redirect adds the new routes before it
	// deletes the old ones.
	k.ops = nil
	if err := r.Set(with(func(c *Config) { c.Redirect = &Redirect{Gateway4: vpnGw4} })); err != nil {
		t.Fatal(err)
	}
	lastAdd := -1
	firstDel := len(k.ops)
	for i, op := range k.ops {
		if strings.HasPrefix(op, "route add") {
			lastAdd = i
		}
		if strings.HasPrefix(op, "route del") && i < firstDel {
			firstDel = i
		}
	}
	if lastAdd < 0 || lastAdd > firstDel {
		t.Errorf("a delete came before an add: %q", k.ops)
	}
}

func TestNoDefaultRoute(t *testing.T) {
	def1 := with(func(c *Config) { c.Redirect = &Redirect{Def1: true, Gateway4: vpnGw4} })
	t.Run("refused", func(t *testing.T) {
		k := lanEnv(t, false)
		before := k.String()
		r := newTestRouter(t, k, t.TempDir(), "t")
		err := r.Set(def1)
		if !errors.Is(err, ErrNoNetGateway) {
			t.Fatalf("Set = %v, want ErrNoNetGateway", err)
		}
		// Addresses still go on; the redirect does not.
		if diff := cmp.Diff(sortLines(addrLines), lineDiff(before, k.String())); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if before != k.String() {
			t.Errorf("Close left changes:\n%s", lineDiff(before, k.String()))
		}
	})
	t.Run("local", func(t *testing.T) {
		k := lanEnv(t, false)
		before := k.String()
		r := newTestRouter(t, k, t.TempDir(), "t")
		cfg := with(func(c *Config) { c.Redirect = &Redirect{Def1: true, Local: true, Gateway4: vpnGw4} })
		if err := r.Set(cfg); err != nil {
			t.Fatal(err)
		}
		want := addrLines + "\n+route 0.0.0.0/1 via 10.8.0.1 dev tun0 proto static\n+route 128.0.0.0/1 via 10.8.0.1 dev tun0 proto static"
		if diff := cmp.Diff(sortLines(want), lineDiff(before, k.String())); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		r.Close()
	})
	t.Run("server-via-specific-route", func(t *testing.T) {
		k := lanEnv(t, false)
		if err := k.RouteAdd(kroute{Dst: mp("203.0.113.0/24"), Gw: ma("192.168.1.254"), LinkIndex: 2, Table: tableMain}); err != nil {
			t.Fatal(err)
		}
		before := k.String()
		r := newTestRouter(t, k, t.TempDir(), "t")
		if err := r.Set(def1); err != nil {
			t.Fatal(err)
		}
		want := addrLines + `
+route 0.0.0.0/1 via 10.8.0.1 dev tun0 proto static
+route 128.0.0.0/1 via 10.8.0.1 dev tun0 proto static
+route 203.0.113.5/32 via 192.168.1.254 dev eth0 proto static`
		if diff := cmp.Diff(sortLines(want), lineDiff(before, k.String())); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		r.Close()
	})
	t.Run("explicit-route-capturing-server", func(t *testing.T) {
		k := lanEnv(t, false)
		r := newTestRouter(t, k, t.TempDir(), "t")
		defer r.Close()
		cfg := with(func(c *Config) { c.Routes = []Route{{Dst: mp("203.0.0.0/8")}, {Dst: mp("10.50.0.0/16")}} })
		err := r.Set(cfg)
		if !errors.Is(err, ErrNoNetGateway) {
			t.Fatalf("Set = %v, want ErrNoNetGateway", err)
		}
		s := k.String()
		if strings.Contains(s, "203.0.0.0/8") || !strings.Contains(s, "10.50.0.0/16") {
			t.Errorf("want only the non-capturing route:\n%s", s)
		}
	})
}

func TestDefaultRouteChanges(t *testing.T) {
	k := lanEnv(t, true)
	r := newTestRouter(t, k, t.TempDir(), "t")
	cfg := with(func(c *Config) { c.Redirect = &Redirect{Def1: true, Gateway4: vpnGw4} })
	if err := r.Set(cfg); err != nil {
		t.Fatal(err)
	}
	// The LAN moves to a new gateway (DHCP renewal on another network).
	if err := k.RouteDel(kroute{Dst: mp("0.0.0.0/0"), LinkIndex: 2, Table: tableMain}); err != nil {
		t.Fatal(err)
	}
	if err := k.RouteDel(kroute{Dst: mp("203.0.113.5/32"), LinkIndex: 2, Table: tableMain}); err != nil {
		t.Fatal(err)
	}
	if err := k.RouteAdd(kroute{Dst: mp("0.0.0.0/0"), Gw: ma("192.168.1.2"), LinkIndex: 2, Metric: 100, Table: tableMain}); err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if s := k.String(); !strings.Contains(s, "route 203.0.113.5/32 via 192.168.1.2 dev eth0") {
		t.Errorf("host route did not follow the new gateway:\n%s", s)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(k.String(), "tun0 proto static") || strings.Contains(k.String(), "203.0.113.5") {
		t.Errorf("Close left routes:\n%s", k)
	}
}

func TestValidation(t *testing.T) {
	t.Run("bounded-count", func(t *testing.T) {
		k := lanEnv(t, true)
		r := newTestRouter(t, k, t.TempDir(), "t")
		defer r.Close()
		cfg := baseCfg()
		for i := range MaxRoutes + 5 {
			cfg.Routes = append(cfg.Routes, Route{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + i>>8), byte(i), 0}), 24)})
		}
		err := r.Set(cfg)
		if err == nil || !strings.Contains(err.Error(), "more than 1000 routes") {
			t.Fatalf("Set = %v", err)
		}
		if n := strings.Count(k.String(), "dev tun0 proto static"); n != MaxRoutes {
			t.Errorf("%d routes installed, want %d", n, MaxRoutes)
		}
	})
	bad := []Route{
		{Dst: mp("127.0.0.0/8")},
		{Dst: mp("224.0.0.0/4")},
		{Dst: mp("fe80::/64")},
		{Dst: mp("::ffff:10.0.0.0/104")},
		{Dst: mp("10.1.0.0/16"), Gateway: ma("fd00::1")},
		{Dst: mp("10.2.0.0/16"), Gateway: vpnGw4, ViaNetGateway: true},
		{Dst: mp("10.3.0.0/16"), Metric: -1},
		{Dst: netip.Prefix{}},
		{Dst: mp("203.0.113.5/32")}, // the server itself into the tunnel
	}
	for _, b := range bad {
		t.Run(b.Dst.String(), func(t *testing.T) {
			k := lanEnv(t, true)
			r := newTestRouter(t, k, t.TempDir(), "t")
			defer r.Close()
			cfg := with(func(c *Config) { c.Routes = []Route{b, {Dst: mp("10.99.0.0/16")}} })
			if err := r.Set(cfg); err == nil {
				t.Errorf("Set accepted %+v", b)
			}
			s := k.String()
			if !strings.Contains(s, "10.99.0.0/16 dev tun0") {
				t.Errorf("valid route missing:\n%s", s)
			}
			if strings.Count(s, "proto static") != 1 {
				t.Errorf("invalid route installed:\n%s", s)
			}
		})
	}
}

func TestErrorsContinue(t *testing.T) {
	k := lanEnv(t, true)
	before := k.String()
	dir := t.TempDir()
	r := newTestRouter(t, k, dir, "t")
	k.fail = func(op string) error {
		if strings.HasPrefix(op, "route add 0.0.0.0/1") {
			return unix.EPERM
		}
		return nil
	}
	cfg := with(func(c *Config) { c.Redirect = &Redirect{Def1: true, Gateway4: vpnGw4} })
	err := r.Set(cfg)
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("Set = %v, want EPERM", err)
	}
	if s := k.String(); !strings.Contains(s, "128.0.0.0/1") || strings.Contains(s, "0.0.0.0/1 ") {
		t.Errorf("want the other routes applied:\n%s", s)
	}
	st, err := readState(filepath.Join(dir, "t"+stateSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(st.Routes, func(r kroute) bool { return r.Dst == mp("0.0.0.0/1") }) {
		t.Errorf("failed route recorded as applied")
	}
	k.fail = nil
	// Deletes are idempotent: a route someone else removed is fine.
	if err := k.RouteDel(kroute{Dst: mp("128.0.0.0/1"), LinkIndex: 5, Table: tableMain}); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, k.String()); diff != "" {
		t.Errorf("(-before +after):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "t"+stateSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left: %v", err)
	}
}

func TestTwoTunnels(t *testing.T) {
	k := lanEnv(t, true)
	k.addLink(6, "tun1", 1500)
	before := k.String()
	dir := t.TempDir()
	a := newTestRouter(t, k, dir, "a")
	b := newTestRouter(t, k, dir, "b")
	if err := a.Set(with(func(c *Config) { c.Redirect = &Redirect{Def1: true, Gateway4: vpnGw4} })); err != nil {
		t.Fatal(err)
	}
	onlyA := k.String()
	cfgB := &Config{
		Link:        "tun1",
		Addrs:       []Addr{{Prefix: mp("10.9.0.2/24")}},
		Routes:      []Route{{Dst: mp("10.60.0.0/16"), Gateway: ma("10.9.0.1")}, {Dst: mp("198.51.100.0/24")}},
		ServerAddrs: []netip.Addr{server4, ma("198.51.100.9")},
	}
	if err := b.Set(cfgB); err != nil {
		t.Fatal(err)
	}
	// b's server is captured by b's own route and gets a host route along
	// the host's path, not through a's def1 routes: those are no path
	// outside the tunnels, and b must keep working when a goes down.
	// a's routes stay as they are.
	want := `+addr tun1 10.9.0.2/24
+route 10.60.0.0/16 via 10.9.0.1 dev tun1 proto static
+route 10.9.0.0/24 dev tun1 proto kernel scope link
+route 198.51.100.0/24 dev tun1 proto static scope link
+route 198.51.100.9/32 via 192.168.1.1 dev eth0 proto static`
	if diff := cmp.Diff(sortLines(want), lineDiff(onlyA, k.String())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(onlyA, k.String()); diff != "" {
		t.Errorf("closing b disturbed a (-want +got):\n%s", diff)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, k.String()); diff != "" {
		t.Errorf("(-before +after):\n%s", diff)
	}
}

func TestInstanceInUse(t *testing.T) {
	k := lanEnv(t, true)
	dir := t.TempDir()
	r := newTestRouter(t, k, dir, "t")
	if err := r.Set(baseCfg()); err != nil {
		t.Fatal(err)
	}
	// The same process re-opening its own instance is allowed (it is how a
	// daemon recovers a Router); another live process is refused.
	st, _ := readState(filepath.Join(dir, "t"+stateSuffix))
	st.PID = 1
	st.StartTime = procStartTime(1)
	if err := writeRecord(filepath.Join(dir, "t"+stateSuffix), st, false); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{StateDir: dir, Instance: "t", Logf: t.Logf, DNSMode: ModeNone, kernel: k}); err == nil {
		t.Error("New succeeded while pid 1 owns the instance")
	}
	for _, bad := range []string{"", "../x", "a/b", strings.Repeat("x", 65)} {
		if _, err := New(Options{StateDir: dir, Instance: bad, Logf: t.Logf, DNSMode: ModeNone, kernel: k}); err == nil {
			t.Errorf("New accepted instance %q", bad)
		}
	}
}

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("cannot run true:", err)
	}
	return cmd.Process.Pid
}

func TestCrashCleanUp(t *testing.T) {
	for _, g := range goldenTable() {
		t.Run(g.name, func(t *testing.T) {
			k := lanEnv(t, true)
			before := k.String()
			dir := t.TempDir()
			resolv := filepath.Join(dir, "resolv.conf")
			orig := "nameserver 192.168.1.53\nsearch lan\n"
			if err := os.WriteFile(resolv, []byte(orig), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := New(Options{StateDir: dir, Instance: "crash", Logf: t.Logf, DNSMode: ModeResolvConf, ResolvConf: resolv,
				kernel: k, bypassFunc: testBypass, pid: deadPID(t)})
			if err != nil {
				t.Fatal(err)
			}
			cfg := *g.cfg
			cfg.DNS = &DNS{Servers: []netip.Addr{ma("10.8.0.53")}, FullTunnel: true}
			if err := r.Set(&cfg); err != nil {
				t.Fatal(err)
			}
			// The process dies here: no Close.
			if err := cleanUp(dir, k, nil, t.Logf); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, k.String()); diff != "" {
				t.Errorf("(-before +after cleanup):\n%s", diff)
			}
			if b, _ := os.ReadFile(resolv); string(b) != orig {
				t.Errorf("resolv.conf not restored: %q", b)
			}
			left, _ := filepath.Glob(filepath.Join(dir, "crash*"))
			if len(left) != 0 {
				t.Errorf("files left: %v", left)
			}
		})
	}
}

func TestCleanUpSkipsLiveOwners(t *testing.T) {
	k := lanEnv(t, true)
	dir := t.TempDir()
	r := newTestRouter(t, k, dir, "live")
	defer r.Close()
	if err := r.Set(with(func(c *Config) { c.Redirect = &Redirect{Def1: true, Gateway4: vpnGw4} })); err != nil {
		t.Fatal(err)
	}
	applied := k.String()
	if err := cleanUp(dir, k, nil, t.Logf); err != nil {
		t.Fatal(err)
	}
	if applied != k.String() {
		t.Errorf("cleanup touched a live tunnel:\n%s", lineDiff(applied, k.String()))
	}
}

// TestCleanUpInstanceOnlyThatOne: the cleanup of ovpnd@b leaves the crashed a's state alone;
// a's own cleanup undoes it.
func TestCleanUpInstanceOnlyThatOne(t *testing.T) {
	k := lanEnv(t, true)
	before := k.String()
	dir := t.TempDir()
	r, err := New(Options{StateDir: dir, Instance: "a", Logf: t.Logf, DNSMode: ModeNone, kernel: k, bypassFunc: testBypass, pid: deadPID(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Set(with(func(c *Config) { c.Redirect = &Redirect{Def1: true, Gateway4: vpnGw4} })); err != nil {
		t.Fatal(err)
	}
	if err := cleanUpMatching(dir, "b", k, nil, t.Logf); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a"+stateSuffix)); err != nil {
		t.Errorf("cleanup of b touched a's record: %v", err)
	}
	if before == k.String() {
		t.Fatal("cleanup of b undid a's routes")
	}
	if err := cleanUpMatching(dir, "a", k, nil, t.Logf); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, k.String()); diff != "" {
		t.Errorf("(-before +after cleanup of a):\n%s", diff)
	}
	for _, bad := range []string{"*", "../a", "a/b"} {
		if err := cleanUpMatching(dir, bad, k, nil, t.Logf); err == nil {
			t.Errorf("cleanup accepted instance %q", bad)
		}
	}
}

func TestNewUndoesStaleInstance(t *testing.T) {
	k := lanEnv(t, true)
	before := k.String()
	dir := t.TempDir()
	r, err := New(Options{StateDir: dir, Instance: "t", Logf: t.Logf, DNSMode: ModeNone, kernel: k, bypassFunc: testBypass, pid: deadPID(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Set(with(func(c *Config) { c.Redirect = &Redirect{Gateway4: vpnGw4} })); err != nil {
		t.Fatal(err)
	}
	r2 := newTestRouter(t, k, dir, "t")
	if diff := cmp.Diff(before, k.String()); diff != "" {
		t.Errorf("New did not undo the stale instance (-before +after):\n%s", diff)
	}
	r2.Close()
}

func FuzzParseState(f *testing.F) {
	s := newState("x", 1)
	s.Routes = []kroute{{Dst: mp("0.0.0.0/1"), Gw: vpnGw4, LinkIndex: 5, Table: tableMain}}
	s.Addrs = []kaddr{{LinkIndex: 5, Prefix: mp("10.8.0.6/32"), Peer: ma("10.8.0.5")}}
	s.NetGW = map[netip.Addr]path{server4: {Gw: ma("192.168.1.1"), LinkIndex: 2}}
	s.DNS = &dnsRecord{Mode: ModeResolvConf, Applied: true, ResolvConf: "/etc/resolv.conf"}
	dir := f.TempDir()
	if err := writeRecord(filepath.Join(dir, "s"), &s, false); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "s"))
	f.Add(b)
	f.Add([]byte(`{"version":1,"routes":[{"dst":"::/0","link":1}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseState(b)
		if err != nil {
			return
		}
		// Undoing any parsed record against a fake must not panic.
		k := newFakeKernel()
		k.addLink(1, "lo", 65536)
		st.DNS = nil
		_ = undoState(k, &ledger{Version: ledgerVersion}, st, filepath.Join(t.TempDir(), "s"), nil, func(string, ...any) {})
	})
}

func FuzzParseLedger(f *testing.F) {
	f.Add([]byte(`{"version":1,"seq":3,"tunnels":[{"id":"a","owner":1000,"link_index":5,"addrs":["10.8.0.2/24"]}],` +
		`"keys":[{"key":{"Dst":"0.0.0.0/1","Metric":0,"Table":254},"claims":[{"tunnel":"a","route":{"dst":"0.0.0.0/1","link":5,"metric":0,"table":254},"full":true}],` +
		`"base":{"dst":"0.0.0.0/1","link":2,"metric":0,"table":254}}],` +
		`"displaced":[{"route":{"dst":"0.0.0.0/0","gw":"192.168.1.1","link":2,"metric":100,"table":254},"tunnels":["a","b"]}],` +
		`"resolv_confs":[{"path":"/nonexistent/resolv.conf","orig":"bmFtZXNlcnZlciAxLjEuMS4xCg=="}]}`))
	f.Add([]byte(`{"version":1,"keys":[{"claims":[]}]}`))
	f.Add([]byte(`{"version":1,"tunnels":[null]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseLedger(b)
		if err != nil {
			return
		}
		// Releasing every tunnel a parsed ledger names must not panic.
		k := newFakeKernel()
		k.addLink(1, "lo", 65536)
		k.addLink(2, "eth0", 1500)
		for _, s := range l.orphans(func(string) bool { return true }) {
			s.DNS = nil
			_ = undoState(k, l, s, filepath.Join(t.TempDir(), "s"), nil, func(string, ...any) {})
		}
	})
}

// TestUnchangedRecordsNotRewritten: a Set that changes nothing rewrites neither the tunnel's
// record nor the host ledger (each rewrite is a new file renamed into place, so the inode
// tells), and a Set that changes something rewrites both.
func TestUnchangedRecordsNotRewritten(t *testing.T) {
	k := lanEnv(t, true)
	dir := t.TempDir()
	r := newTestRouter(t, k, dir, "t")
	if err := r.Set(baseCfg()); err != nil {
		t.Fatal(err)
	}
	inode := func(name string) uint64 {
		t.Helper()
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	state, host := inode("t"+stateSuffix), inode(ledgerName)
	if err := r.Set(baseCfg()); err != nil {
		t.Fatal(err)
	}
	if inode("t"+stateSuffix) != state || inode(ledgerName) != host {
		t.Error("the same Config again rewrote the records")
	}
	cfg := baseCfg()
	cfg.Routes = append(cfg.Routes, Route{Dst: mp("10.77.0.0/16")})
	if err := r.Set(cfg); err != nil {
		t.Fatal(err)
	}
	if inode("t"+stateSuffix) == state || inode(ledgerName) == host {
		t.Error("a new route left a record unwritten")
	}
}
