package routing

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// tunB is a second tunnel on tun1.
func tunB(k *fakeKernel) *Config {
	k.addLink(6, "tun1", 1500)
	return &Config{
		Link:        "tun1",
		Addrs:       []Addr{{Prefix: mp("10.9.0.2/24")}},
		ServerAddrs: []netip.Addr{ma("198.51.100.9")},
	}
}

// TestFullTunnelsCoexist: two full tunnels (def1 or replacing the default
// route, equal or different metrics), either going down first. The most
// recent one carries the traffic; when one goes the other carries it; no
// route change on the way leaves an instant where traffic takes the LAN;
// the host's default comes back only after the last.
func TestFullTunnelsCoexist(t *testing.T) {
	probe := ma("8.8.8.8")
	for _, tc := range []struct {
		name   string
		rd     func(gw netip.Addr) *Redirect
		metric int // of b's redirect; a's is 0
	}{
		{"def1", func(gw netip.Addr) *Redirect { return &Redirect{Def1: true, Gateway4: gw} }, 0},
		{"replace-default", func(gw netip.Addr) *Redirect { return &Redirect{Gateway4: gw} }, 0},
		{"replace-default-host-metric", func(gw netip.Addr) *Redirect { return &Redirect{Gateway4: gw, Metric: 100} }, 100},
	} {
		for _, aFirst := range []bool{true, false} {
			name := tc.name + "/b-leaves-first"
			if aFirst {
				name = tc.name + "/a-leaves-first"
			}
			t.Run(name, func(t *testing.T) {
				k := lanEnv(t, true)
				cfgB := tunB(k)
				before := k.String()
				dir := t.TempDir()
				a := newTestRouter(t, k, dir, "a")
				b := newTestRouter(t, k, dir, "b")
				rdA := tc.rd(vpnGw4)
				rdA.Metric = 0
				if err := a.Set(with(func(c *Config) { c.Redirect = rdA })); err != nil {
					t.Fatal(err)
				}
				rdB := tc.rd(ma("10.9.0.1"))
				rdB.Metric = tc.metric
				cfgB.Redirect = rdB
				if err := b.Set(cfgB); err != nil {
					t.Fatal(err)
				}
				via := func() string {
					rt, err := k.RouteGet(probe)
					if err != nil {
						return "unreachable"
					}
					return k.name(rt.LinkIndex)
				}
				if tc.metric == 0 {
					if got := via(); got != "tun1" {
						t.Errorf("with both up, traffic goes via %s, want tun1 (the most recent)", got)
					}
				}
				up := map[string]bool{"tun0": true, "tun1": true}
				var leaks []string
				k.observe = func(routes []kroute) {
					rt, ok := lookup(routes, probe)
					if !ok || !up[k.name(rt.LinkIndex)] {
						leaks = append(leaks, k.text(rt))
					}
				}
				first, second, firstDev, secondDev := a, b, "tun0", "tun1"
				if !aFirst {
					first, second, firstDev, secondDev = b, a, "tun1", "tun0"
				}
				if err := first.Close(); err != nil {
					t.Fatal(err)
				}
				up[firstDev] = false
				if len(leaks) > 0 {
					t.Errorf("while %s went down, traffic went via %q", firstDev, leaks)
				}
				if got := via(); got != secondDev {
					t.Errorf("after %s went down, traffic goes via %s, want %s", firstDev, got, secondDev)
				}
				if err := second.Refresh(); err != nil {
					t.Fatal(err)
				}
				if len(leaks) > 0 {
					t.Errorf("refreshing %s after %s went down: traffic went via %q", secondDev, firstDev, leaks)
				}
				k.observe = nil
				if err := second.Close(); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(before, k.String()); diff != "" {
					t.Errorf("(-before +after both):\n%s", diff)
				}
				if _, err := os.Stat(filepath.Join(dir, ledgerName)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("host ledger left behind: %v", err)
				}
			})
		}
	}
}

// TestCrashCleanUpKeepsOthers: cleaning up a dead full tunnel hands the
// default route to the live one and keeps its DNS; the host's default and
// resolv.conf come back only after the live one goes.
func TestCrashCleanUpKeepsOthers(t *testing.T) {
	k := lanEnv(t, true)
	cfgB := tunB(k)
	before := k.String()
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	orig := "nameserver 192.168.1.53\n"
	os.WriteFile(resolv, []byte(orig), 0o644)
	opts := func(name string, pid int) Options {
		return Options{StateDir: dir, Instance: name, Logf: t.Logf, DNSMode: ModeResolvConf, ResolvConf: resolv,
			kernel: k, bypassFunc: testBypass, pid: pid}
	}
	b, err := New(opts("b", 0))
	if err != nil {
		t.Fatal(err)
	}
	cfgB.Redirect = &Redirect{Gateway4: ma("10.9.0.1")}
	cfgB.DNS = &DNS{Servers: []netip.Addr{ma("10.9.0.53")}, FullTunnel: true}
	if err := b.Set(cfgB); err != nil {
		t.Fatal(err)
	}
	a, err := New(opts("a", deadPID(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Set(with(func(c *Config) {
		c.Redirect = &Redirect{Gateway4: vpnGw4}
		c.DNS = &DNS{Servers: []netip.Addr{ma("10.8.0.53")}, FullTunnel: true}
	})); err != nil {
		t.Fatal(err)
	}
	// a's process dies; its tun goes with it, and its addresses and routes.
	k.mu.Lock()
	delete(k.links, 5)
	k.addrs = slices.DeleteFunc(k.addrs, func(a kaddr) bool { return a.LinkIndex == 5 })
	k.routes = slices.DeleteFunc(k.routes, func(r kroute) bool { return r.LinkIndex == 5 })
	k.mu.Unlock()
	if err := cleanUp(dir, k, nil, t.Logf); err != nil {
		t.Fatal(err)
	}
	if rt, _ := k.RouteGet(ma("8.8.8.8")); k.name(rt.LinkIndex) != "tun1" {
		t.Errorf("after cleaning up a, traffic goes via %s, want tun1", k.name(rt.LinkIndex))
	}
	got, _ := os.ReadFile(resolv)
	if !strings.Contains(string(got), "nameserver 10.9.0.53") || strings.Contains(string(got), "10.8.0.53") {
		t.Errorf("after cleaning up a, resolv.conf is:\n%s", got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	k.addLink(5, "tun0", 1500)
	if diff := cmp.Diff(before, k.String()); diff != "" {
		t.Errorf("(-before +after):\n%s", diff)
	}
	if got, _ := os.ReadFile(resolv); string(got) != orig {
		t.Errorf("resolv.conf not restored: %q", got)
	}
}

// TestResolvConfChains: resolv.conf is rebuilt from the original and the
// tunnels still up, whatever the order they come and go in.
func TestResolvConfChains(t *testing.T) {
	orig := "nameserver 192.168.1.53\nsearch lan\n"
	dnsOf := map[string]*DNS{
		"a": {Servers: []netip.Addr{ma("10.8.0.53")}, Search: []string{"a.example"}},
		"b": {Servers: []netip.Addr{ma("10.9.0.53")}, Search: []string{"b.example"}, FullTunnel: true},
		"c": {Servers: []netip.Addr{ma("10.7.0.53")}, Search: []string{"c.example"}},
	}
	perms := [][]string{{"a", "b", "c"}, {"a", "c", "b"}, {"b", "a", "c"}, {"b", "c", "a"}, {"c", "a", "b"}, {"c", "b", "a"}}
	for _, up := range perms {
		for _, down := range perms {
			t.Run(strings.Join(up, "")+"-"+strings.Join(down, ""), func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "resolv.conf")
				os.WriteFile(path, []byte(orig), 0o644)
				k := lanEnv(t, true)
				rs := map[string]*Router{}
				for _, n := range up {
					r, err := New(Options{StateDir: dir, Instance: n, Logf: func(string, ...any) {}, DNSMode: ModeResolvConf, ResolvConf: path, kernel: k})
					if err != nil {
						t.Fatal(err)
					}
					rs[n] = r
					if err := r.Set(&Config{Link: "tun0", DNS: dnsOf[n]}); err != nil {
						t.Fatal(err)
					}
				}
				live := map[string]bool{"a": true, "b": true, "c": true}
				for _, n := range down {
					if err := rs[n].Close(); err != nil {
						t.Fatal(err)
					}
					live[n] = false
					got, _ := os.ReadFile(path)
					anyLive := false
					for m, d := range dnsOf {
						has := strings.Contains(string(got), "nameserver "+d.Servers[0].String())
						if has != live[m] {
							t.Errorf("after %s went down, %s's server present=%v:\n%s", n, m, has, got)
						}
						anyLive = anyLive || live[m]
					}
					hostNS := strings.Contains(string(got), "nameserver 192.168.1.53")
					if anyLive && hostNS == live["b"] {
						t.Errorf("after %s went down, the host's server present=%v with b (full tunnel) up=%v:\n%s", n, hostNS, live["b"], got)
					}
				}
				if got, _ := os.ReadFile(path); string(got) != orig {
					t.Errorf("not restored: %q", got)
				}
			})
		}
	}
}

// TestPolicy: an unprivileged owner's tunnel may not take another owner's
// split routes (equal or more specific), the host's LAN, the host's
// resolver or an address on the LAN; a less specific route and a full
// tunnel are fine; root and an owner allowed to override may.
func TestPolicy(t *testing.T) {
	k := lanEnv(t, true)
	cfgB := tunB(k)
	dir := t.TempDir()
	a, err := New(Options{StateDir: dir, Instance: "alice", Owner: 1000, Logf: t.Logf, DNSMode: ModeNone, kernel: k, bypassFunc: testBypass})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Set(with(func(c *Config) {
		c.Routes = []Route{{Dst: mp("10.50.0.0/16"), Gateway: vpnGw4}}
		c.DNS = &DNS{Servers: []netip.Addr{ma("10.8.0.53")}, Search: []string{"corp.example"}}
	})); err != nil {
		t.Fatal(err)
	}
	alices := []Route{
		{Dst: mp("10.50.0.0/17")}, {Dst: mp("10.50.128.0/17")}, {Dst: mp("10.50.0.0/16")}, {Dst: mp("10.50.3.4/32")},
		{Dst: mp("10.50.64.0/18"), ViaNetGateway: true},
	}
	hosts := []Route{{Dst: mp("192.168.1.64/26")}, {Dst: mp("192.168.1.53/32")}, {Dst: mp("9.9.9.9/32")}}
	allowed := []Route{{Dst: mp("10.0.0.0/8")}, {Dst: mp("172.16.0.0/12")}}
	for _, tc := range []struct {
		name        string
		owner       uint32
		over        bool
		others, lan bool // refusals expected
	}{
		{"other-user", 1001, false, true, true},
		{"same-user", 1000, false, false, true},
		{"override", 1001, true, false, false},
		{"root", 0, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(Options{StateDir: dir, Instance: "b-" + tc.name, Owner: tc.owner, MayOverride: tc.over, Logf: t.Logf, DNSMode: ModeNone, kernel: k, bypassFunc: testBypass})
			if err != nil {
				t.Fatal(err)
			}
			cfg := *cfgB
			cfg.Addrs = []Addr{{Prefix: mp("10.9.0.2/24")}, {Prefix: mp("192.168.1.99/24")}}
			cfg.Routes = slices.Concat(alices, hosts, allowed)
			cfg.Redirect = &Redirect{Def1: true, Gateway4: ma("10.9.0.1"), BlockLocal: true}
			cfg.DNS = &DNS{Servers: []netip.Addr{ma("10.9.0.53")}, Search: []string{"hr.corp.example", "b.example"},
				RoutingDomains: []string{"CORP.example"}}
			err = b.Set(&cfg)
			if doms := strings.Contains(fmt.Sprint(err), "DNS domain hr.corp.example") && strings.Contains(fmt.Sprint(err), "DNS domain CORP.example"); doms != tc.others {
				t.Errorf("alice's DNS domain refused=%v, want %v: %v", doms, tc.others, err)
			}
			var pe *PolicyError
			if errors.As(err, &pe) != (tc.others || tc.lan) {
				t.Errorf("Set: %v; want policy refusals: %v", err, tc.others || tc.lan)
			}
			state := k.String()
			has := func(rt Route) bool {
				return slices.ContainsFunc(strings.Split(state, "\n"), func(l string) bool {
					return strings.HasPrefix(l, "route "+rt.Dst.String()+" ") && !strings.Contains(l, " dev tun0 ")
				})
			}
			for _, rt := range allowed {
				if !has(rt) {
					t.Errorf("allowed route %v missing", rt.Dst)
				}
			}
			for _, rt := range alices {
				if has(rt) == tc.others {
					t.Errorf("route %v over alice's present=%v, want %v", rt.Dst, has(rt), !tc.others)
				}
			}
			for _, rt := range append(hosts, Route{Dst: mp("192.168.1.0/25")}) {
				if has(rt) == tc.lan {
					t.Errorf("route %v over the host's present=%v, want %v", rt.Dst, has(rt), !tc.lan)
				}
			}
			if got := strings.Contains(state, "addr tun1 192.168.1.99/24"); got == tc.lan {
				t.Errorf("LAN address present=%v, want %v", got, !tc.lan)
			}
			if rt, _ := k.RouteGet(ma("8.8.8.8")); k.name(rt.LinkIndex) != "tun1" {
				t.Errorf("full tunnel not applied")
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if rt, _ := k.RouteGet(ma("10.50.1.1")); k.name(rt.LinkIndex) != "tun0" {
				t.Errorf("after b left, alice's 10.50.0.0/16 goes via %s", k.name(rt.LinkIndex))
			}
		})
	}
}

// TestCleanUpReasserts: a tunnel that died after taking a key over but before recording it
// in the ledger took the key's route with its link; cleanup puts the live tunnel's back.
func TestCleanUpReasserts(t *testing.T) {
	k := lanEnv(t, true)
	cfgB := tunB(k)
	dir := t.TempDir()
	a := newTestRouter(t, k, dir, "a")
	defer a.Close()
	if err := a.Set(with(func(c *Config) { c.Redirect = &Redirect{Def1: true, Gateway4: vpnGw4} })); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(filepath.Join(dir, ledgerName))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{StateDir: dir, Instance: "b", Logf: t.Logf, DNSMode: ModeNone, kernel: k, bypassFunc: testBypass, pid: deadPID(t)})
	if err != nil {
		t.Fatal(err)
	}
	cfgB.Redirect = &Redirect{Def1: true, Gateway4: ma("10.9.0.1")}
	if err := b.Set(cfgB); err != nil {
		t.Fatal(err)
	}
	// b dies before its ledger write lands (the ledger is as before b), and its link goes.
	if err := os.WriteFile(filepath.Join(dir, ledgerName), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	delete(k.links, 6)
	k.routes = slices.DeleteFunc(k.routes, func(r kroute) bool { return r.LinkIndex == 6 })
	k.addrs = slices.DeleteFunc(k.addrs, func(a kaddr) bool { return a.LinkIndex == 6 })
	k.mu.Unlock()
	if rt, _ := k.RouteGet(ma("8.8.8.8")); k.name(rt.LinkIndex) == "tun0" {
		t.Fatal("the test did not take a's route away")
	}
	if err := cleanUp(dir, k, nil, t.Logf); err != nil {
		t.Fatal(err)
	}
	if rt, _ := k.RouteGet(ma("8.8.8.8")); k.name(rt.LinkIndex) != "tun0" {
		t.Errorf("after cleanup, traffic goes via %s, want a's tun0", k.name(rt.LinkIndex))
	}
}
