package session

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine/push"
	"github.com/ovpnd/ovpnd/routing"
)

func TestRoutingConfig(t *testing.T) {
	ip := netip.MustParseAddr
	pfx := netip.MustParsePrefix
	server := ip("198.18.0.1")
	for _, tc := range []struct {
		name      string
		net       config.NetSettings
		noExec    bool
		want      *routing.Config
		wantWarns int
	}{
		{
			name: "subnet with route-gateway and routes",
			net: config.NetSettings{
				Topology:     config.TopologySubnet,
				Ifconfig:     &config.Ifconfig{Local: ip("10.8.0.2"), Remote: ip("255.255.255.0")},
				RouteGateway: &config.RouteGateway{Addr: ip("10.8.0.1")},
				RouteMetric:  5,
				Routes: []config.Route{
					{Network: "10.9.0.0", Netmask: ip("255.255.255.0"), Metric: -1},
					{Network: "192.0.2.7", Gateway: "net_gateway", Metric: 3},
					{Network: "remote_host", Netmask: ip("255.255.255.255"), Gateway: "net_gateway", Metric: -1},
				},
				RedirectGateway: &config.RedirectGateway{Def1: true, BypassDHCP: true},
				DHCPOptions:     []config.DHCPOption{{Type: "DNS", Value: "10.8.0.1"}, {Type: "DOMAIN", Value: "lab.test"}},
			},
			want: &routing.Config{
				Link: "tun0", MTU: 1500,
				Addrs: []routing.Addr{{Prefix: pfx("10.8.0.2/24")}},
				Routes: []routing.Route{
					{Dst: pfx("10.9.0.0/24"), Gateway: ip("10.8.0.1"), Metric: 5},
					{Dst: pfx("192.0.2.7/32"), ViaNetGateway: true, Metric: 3},
					{Dst: pfx("198.18.0.1/32"), ViaNetGateway: true, Metric: 5},
				},
				Redirect:    &routing.Redirect{Def1: true, BypassDHCP: true, Gateway4: ip("10.8.0.1"), Metric: 5},
				ServerAddrs: []netip.Addr{server},
				DNS:         &routing.DNS{Servers: []netip.Addr{ip("10.8.0.1")}, Search: []string{"lab.test"}, FullTunnel: true},
			},
		},
		{
			name: "net30 uses the peer as gateway",
			net: config.NetSettings{
				Topology: config.TopologyNet30,
				Ifconfig: &config.Ifconfig{Local: ip("10.8.0.6"), Remote: ip("10.8.0.5")},
				Routes:   []config.Route{{Network: "10.8.0.1", Metric: -1}},
			},
			want: &routing.Config{
				Link: "tun0", MTU: 1500,
				Addrs:       []routing.Addr{{Prefix: pfx("10.8.0.6/32"), Peer: ip("10.8.0.5")}},
				Routes:      []routing.Route{{Dst: pfx("10.8.0.1/32"), Gateway: ip("10.8.0.5")}},
				ServerAddrs: []netip.Addr{server},
			},
		},
		{
			name: "ipv6 and bad entries",
			net: config.NetSettings{
				Topology:     config.TopologySubnet,
				Ifconfig:     &config.Ifconfig{Local: ip("10.8.0.2"), Remote: ip("255.0.255.0")},
				IfconfigIPv6: &config.IfconfigIPv6{Local: pfx("fd00::1000/64"), Remote: ip("fd00::1")},
				RoutesIPv6:   []config.RouteIPv6{{Prefix: pfx("fd01::/64"), Metric: -1}},
				Routes:       []config.Route{{Network: "vpn.example", Metric: -1}},
			},
			want: &routing.Config{
				Link: "tun0", MTU: 1500,
				Addrs:       []routing.Addr{{Prefix: pfx("10.8.0.2/32")}, {Prefix: pfx("fd00::1000/64")}},
				Routes:      []routing.Route{{Dst: pfx("fd01::/64"), Gateway: ip("fd00::1")}},
				ServerAddrs: []netip.Addr{server},
			},
			wantWarns: 2,
		},
		{
			name: "route-noexec and ifconfig-noexec",
			net: config.NetSettings{
				Topology: config.TopologySubnet,
				Ifconfig: &config.Ifconfig{Local: ip("10.8.0.2"), Remote: ip("255.255.255.0")},
				Routes:   []config.Route{{Network: "10.9.0.0", Netmask: ip("255.255.255.0"), Metric: -1}},
			},
			noExec: true,
			want:   &routing.Config{Link: "tun0", MTU: 1500, ServerAddrs: []netip.Addr{server}},
		},
		{
			name: "ipv6 redirect alone is a full tunnel for DNS",
			net: config.NetSettings{
				Topology:        config.TopologySubnet,
				Ifconfig:        &config.Ifconfig{Local: ip("10.8.0.2"), Remote: ip("255.255.255.0")},
				IfconfigIPv6:    &config.IfconfigIPv6{Local: pfx("fd00:8::1000/64"), Remote: ip("fd00:8::1")},
				RedirectGateway: &config.RedirectGateway{IPv6: true, NoIPv4: true},
				DHCPOptions:     []config.DHCPOption{{Type: "DNS6", Value: "fd00:8::1"}, {Type: "DOMAIN-SEARCH", Value: "corp.test"}},
			},
			want: &routing.Config{
				Link: "tun0", MTU: 1500,
				Addrs:       []routing.Addr{{Prefix: pfx("10.8.0.2/24")}, {Prefix: pfx("fd00:8::1000/64")}},
				Redirect:    &routing.Redirect{IPv6: true, NoIPv4: true, Gateway6: ip("fd00:8::1")},
				ServerAddrs: []netip.Addr{server},
				DNS:         &routing.DNS{Servers: []netip.Addr{ip("fd00:8::1")}, Search: []string{"corp.test"}, FullTunnel: true},
			},
		},
		{
			name: "split tunnel: dns option replaces dhcp-option DNS, resolve-domains route",
			net: config.NetSettings{
				Topology: config.TopologySubnet,
				Ifconfig: &config.Ifconfig{Local: ip("10.8.0.2"), Remote: ip("255.255.255.0")},
				Routes:   []config.Route{{Network: "203.0.113.0", Netmask: ip("255.255.255.0"), Metric: -1}},
				DHCPOptions: []config.DHCPOption{
					{Type: "DNS", Value: "192.0.2.53"}, {Type: "DOMAIN", Value: "old.test"},
				},
				DNS: &config.DNS{
					SearchDomains: []string{"corp.test", "CORP.test"},
					Servers: []config.DNSServer{
						{Priority: 1, Addresses: []netip.AddrPort{netip.MustParseAddrPort("10.8.0.1:53")}, ResolveDomains: []string{"internal.test", "corp.test"}},
						{Priority: 2, Addresses: []netip.AddrPort{netip.MustParseAddrPort("10.8.0.9:5353")}},
					},
				},
			},
			want: &routing.Config{
				Link: "tun0", MTU: 1500,
				Addrs:       []routing.Addr{{Prefix: pfx("10.8.0.2/24")}},
				Routes:      []routing.Route{{Dst: pfx("203.0.113.0/24")}},
				ServerAddrs: []netip.Addr{server},
				DNS: &routing.DNS{Servers: []netip.Addr{ip("10.8.0.1")}, Search: []string{"corp.test"},
					RoutingDomains: []string{"internal.test"}},
			},
			wantWarns: 1, // port 5353
		},
		{
			name: "redirect-gateway without def1 and route-metric",
			net: config.NetSettings{
				Topology:        config.TopologyNet30,
				Ifconfig:        &config.Ifconfig{Local: ip("10.8.0.6"), Remote: ip("10.8.0.5")},
				RouteMetric:     7,
				RedirectGateway: &config.RedirectGateway{Local: true},
			},
			want: &routing.Config{
				Link: "tun0", MTU: 1500,
				Addrs:       []routing.Addr{{Prefix: pfx("10.8.0.6/32"), Peer: ip("10.8.0.5")}},
				Redirect:    &routing.Redirect{Local: true, Gateway4: ip("10.8.0.5"), Metric: 7},
				ServerAddrs: []netip.Addr{server},
			},
		},
		{
			name: "domains without a server configure nothing",
			net: config.NetSettings{
				DHCPOptions: []config.DHCPOption{{Type: "DOMAIN", Value: "corp.test"}},
			},
			want:      &routing.Config{Link: "tun0", MTU: 1500, ServerAddrs: []netip.Addr{server}},
			wantWarns: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, warns := routingConfig(netInput{Net: &tc.net, Link: "tun0", MTU: 1500, Server: server,
				RouteNoExec: tc.noExec, IfconfigNoExec: tc.noExec})
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("routing config (-want +got):\n%s", diff)
			}
			if len(warns) != tc.wantWarns {
				t.Errorf("warnings %q, want %d", warns, tc.wantWarns)
			}
		})
	}
}

func TestMergeNet(t *testing.T) {
	ip := netip.MustParseAddr
	base := config.NetSettings{
		Topology:    config.TopologyNet30,
		Routes:      []config.Route{{Network: "10.1.0.0", Netmask: ip("255.255.0.0")}},
		DHCPOptions: []config.DHCPOption{{Type: "DNS", Value: "192.0.2.1"}},
	}
	pushed := config.NetSettings{
		Topology:    config.TopologySubnet,
		Routes:      []config.Route{{Network: "10.2.0.0", Netmask: ip("255.255.0.0")}},
		DHCPOptions: []config.DHCPOption{{Type: "DNS", Value: "10.8.0.1"}},
		Ifconfig:    &config.Ifconfig{Local: ip("10.8.0.2"), Remote: ip("255.255.255.0")},
	}
	got := mergeNet(&base, &pushed)
	if got.Topology != config.TopologySubnet || len(got.Routes) != 2 || len(got.DHCPOptions) != 2 || got.Ifconfig == nil {
		t.Errorf("merged %+v", got)
	}
	if len(base.Routes) != 1 {
		t.Error("merge modified the profile's settings")
	}
}

func TestMaskBits(t *testing.T) {
	for _, tc := range []struct {
		mask string
		want int
	}{
		{"255.255.255.0", 24}, {"255.255.255.255", 32}, {"0.0.0.0", 0}, {"255.255.255.252", 30}, {"255.0.255.0", -1}, {"::", -1},
	} {
		if got := maskBits(netip.MustParseAddr(tc.mask)); got != tc.want {
			t.Errorf("maskBits(%s) = %d, want %d", tc.mask, got, tc.want)
		}
	}
}

// fakeRouter records what the session asks routing for.
type fakeRouter struct {
	mu        sync.Mutex
	sets      []*routing.Config
	refreshes int
	err       error // returned by Set
}

func (f *fakeRouter) Set(c *routing.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets = append(f.sets, c)
	return f.err
}

func (f *fakeRouter) Refresh() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshes++
	return nil
}

func (f *fakeRouter) DNSMode() string { return routing.ModeResolvConf }
func (f *fakeRouter) Close() error    { return nil }

func (f *fakeRouter) last() *routing.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sets) == 0 {
		return nil
	}
	return f.sets[len(f.sets)-1]
}

func (f *fakeRouter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sets)
}

// newTestRunner is a runner with a fake router and a log buffer, without
// sockets or devices.
func newTestRunner(t *testing.T, cfg *config.Config) (*runner, *fakeRouter, func() string) {
	t.Helper()
	var mu sync.Mutex
	var logs strings.Builder
	s := &Session{cfg: cfg, verb: 4, restart: make(chan struct{}, 1), subs: map[chan Event]struct{}{}, watchers: map[chan struct{}]struct{}{},
		opts: Options{Name: "t", now: time.Now, readHost: func(netip.Addr) (hostNet, error) { return hostNet{}, nil }, Logf: func(f string, a ...any) {
			mu.Lock()
			fmt.Fprintf(&logs, f+"\n", a...)
			mu.Unlock()
		}}}
	fr := &fakeRouter{}
	r := &runner{s: s, cfg: cfg, router: fr, link: "tun0"}
	return r, fr, func() string {
		mu.Lock()
		defer mu.Unlock()
		return logs.String()
	}
}

var labPush = []string{
	"route-gateway 10.8.0.1", "topology subnet", "ping 10", "ping-restart 60",
	"ifconfig 10.8.0.2 255.255.255.0", "route 203.0.113.0 255.255.255.0",
	"redirect-gateway def1", "dhcp-option DNS 10.8.0.1", "dhcp-option DOMAIN lab.test",
	"cipher AES-256-GCM", "peer-id 0",
}

// applyPushLines parses option lines under the runner's profile, as the engine does, and
// applies the result; a pull-filter reject comes back as the error.
func applyPushLines(r *runner, lines []string, server netip.Addr) error {
	reply, err := push.Parse(lines, r.cfg.PushPolicy())
	if err != nil {
		return err
	}
	return r.applyPush(reply, server)
}

func TestApplyPush(t *testing.T) {
	server := netip.MustParseAddr("198.18.0.1")
	for _, tc := range []struct {
		name       string
		cfg        config.Config
		wantRoutes int
		redirect   bool
		dns        bool
		wantLog    string
		wantErr    bool
	}{
		{name: "everything pushed", cfg: config.Config{TunMTU: 1500}, wantRoutes: 1, redirect: true, dns: true,
			wantLog: "DNS: resolv.conf /etc/resolv.conf: servers 10.8.0.1, domains lab.test (all names)"},
		{name: "route-nopull keeps the address only", cfg: config.Config{TunMTU: 1500, RouteNoPull: true},
			wantLog: "(route-nopull)"},
		{name: "pull-filter ignore route", cfg: config.Config{TunMTU: 1500,
			PullFilters: []config.PullFilter{{Action: config.FilterIgnore, Text: "route "}}},
			redirect: true, dns: true, wantLog: "(pull-filter)"},
		{name: "pull-filter reject fails the attempt", cfg: config.Config{TunMTU: 1500,
			PullFilters: []config.PullFilter{{Action: config.FilterReject, Text: "redirect-gateway"}}}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, fr, logs := newTestRunner(t, &tc.cfg)
			err := applyPushLines(r, labPush, server)
			if (err != nil) != tc.wantErr {
				t.Fatalf("applyPush: %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				if fr.count() != 0 {
					t.Errorf("routing was configured despite the reject")
				}
				return
			}
			rc := fr.last()
			if rc == nil {
				t.Fatal("routing was not configured")
			}
			if len(rc.Addrs) != 1 || rc.Addrs[0].Prefix != netip.MustParsePrefix("10.8.0.2/24") {
				t.Errorf("addresses %v", rc.Addrs)
			}
			if len(rc.Routes) != tc.wantRoutes || (rc.Redirect != nil) != tc.redirect || (rc.DNS != nil) != tc.dns {
				t.Errorf("routes %v redirect %v DNS %v", rc.Routes, rc.Redirect, rc.DNS)
			}
			if len(rc.ServerAddrs) != 1 || rc.ServerAddrs[0] != server || rc.MTU != 1500 {
				t.Errorf("server %v MTU %d", rc.ServerAddrs, rc.MTU)
			}
			if !strings.Contains(logs(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, logs())
			}
		})
	}
}

func TestApplyPushKeepsConnectionOnRoutingErrors(t *testing.T) {
	r, fr, logs := newTestRunner(t, &config.Config{TunMTU: 1500})
	fr.err = errors.New("route 0.0.0.0/1: conflicts")
	if err := applyPushLines(r, labPush, netip.MustParseAddr("198.18.0.1")); err != nil {
		t.Fatalf("a routing error ended the connection: %v", err)
	}
	if !strings.Contains(logs(), "conflicts") {
		t.Errorf("routing error not logged:\n%s", logs())
	}
}

func TestApplyPushPushedMTU(t *testing.T) {
	r, fr, _ := newTestRunner(t, &config.Config{TunMTU: 1500})
	if err := applyPushLines(r, append(labPush[:len(labPush):len(labPush)], "tun-mtu 1400"), netip.MustParseAddr("198.18.0.1")); err != nil {
		t.Fatal(err)
	}
	if got := fr.last().MTU; got != 1400 {
		t.Errorf("MTU %d, want the pushed 1400", got)
	}
}

// TestApplyPushClampsMTU: a pushed tun-mtu above what the profile allows (its
// tun-mtu, or the IV_MTU announced) is clamped with a warning, since the data
// path's buffers hold no more.
func TestApplyPushClampsMTU(t *testing.T) {
	for _, tc := range []struct {
		profile, maxMTU, pushed, want int
	}{
		{1500, 0, 9000, 1600},
		{9000, 0, 9000, 9000},
		{9000, 0, 12000, 9000},
		{1500, 0, 1600, 1600},
		{1500, 9000, 9000, 9000}, // tun-max-mtu 9000
		{1500, 9000, 12000, 9000},
	} {
		cfg := &config.Config{TunMTU: tc.profile, TunMaxMTU: tc.maxMTU}
		if got, want := maxTunMTU(cfg), max(tc.profile, tc.maxMTU, 1600); got != want {
			t.Errorf("maxTunMTU(tun-mtu %d, tun-max-mtu %d) = %d, want %d", tc.profile, tc.maxMTU, got, want)
		}
		r, fr, logs := newTestRunner(t, cfg)
		if err := applyPushLines(r, append(labPush[:len(labPush):len(labPush)], fmt.Sprintf("tun-mtu %d", tc.pushed)), netip.MustParseAddr("198.18.0.1")); err != nil {
			t.Fatal(err)
		}
		if got := fr.last().MTU; got != tc.want {
			t.Errorf("profile %d, pushed %d: MTU %d, want %d", tc.profile, tc.pushed, got, tc.want)
		}
		if warned := strings.Contains(logs(), "server pushed tun-mtu"); warned != (tc.pushed != tc.want) {
			t.Errorf("profile %d, pushed %d: warned %v", tc.profile, tc.pushed, warned)
		}
	}
}

func TestRouteDelay(t *testing.T) {
	t.Run("routes after the delay", func(t *testing.T) {
		r, fr, _ := newTestRunner(t, &config.Config{TunMTU: 1500, RouteDelay: 200 * time.Millisecond})
		start := time.Now()
		if err := applyPushLines(r, labPush, netip.MustParseAddr("198.18.0.1")); err != nil {
			t.Fatal(err)
		}
		first := fr.last()
		if first == nil || len(first.Addrs) != 1 || len(first.Routes) != 0 || first.Redirect != nil || first.DNS != nil {
			t.Fatalf("before the delay: %+v, want the address only", first)
		}
		for fr.count() < 2 {
			if time.Since(start) > 5*time.Second {
				t.Fatal("routes never added")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("routes added after %v, before the delay", d)
		}
		if full := fr.last(); len(full.Routes) != 1 || full.Redirect == nil || full.DNS == nil {
			t.Errorf("after the delay: %+v", full)
		}
	})
	t.Run("teardown cancels", func(t *testing.T) {
		r, fr, _ := newTestRunner(t, &config.Config{TunMTU: 1500, RouteDelay: 100 * time.Millisecond})
		if err := applyPushLines(r, labPush, netip.MustParseAddr("198.18.0.1")); err != nil {
			t.Fatal(err)
		}
		if err := r.closeTun(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if n := fr.count(); n != 2 || fr.last() != nil {
			t.Errorf("%d Set calls, last %+v; want the address, then nil and nothing after", n, fr.last())
		}
	})
	t.Run("failed routes retried within the window", func(t *testing.T) {
		r, fr, _ := newTestRunner(t, &config.Config{TunMTU: 1500, RouteDelay: 50 * time.Millisecond, RouteDelayWin: 1500 * time.Millisecond})
		fr.err = errors.New("network unreachable")
		if err := applyPushLines(r, labPush, netip.MustParseAddr("198.18.0.1")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2500 * time.Millisecond)
		// The address, the first try after 50 ms, one retry a second later;
		// the next retry would fall outside the window.
		if n := fr.count(); n != 3 {
			t.Errorf("%d Set calls, want 3", n)
		}
		r.netMu.Lock()
		r.cancelDelayLocked()
		r.netMu.Unlock()
	})
}

func TestDNSText(t *testing.T) {
	ip := netip.MustParseAddr
	full := &routing.Config{Link: "tun0", DNS: &routing.DNS{Servers: []netip.Addr{ip("10.8.0.1"), ip("fd00:8::1")}, Search: []string{"lab.test"}, FullTunnel: true}}
	split := &routing.Config{Link: "tun0", DNS: &routing.DNS{Servers: []netip.Addr{ip("10.8.0.1")}, RoutingDomains: []string{"corp.test"}}}
	for _, tc := range []struct {
		mode string
		rc   *routing.Config
		want string
	}{
		{routing.ModeResolved, full, "DNS: systemd-resolved on tun0: servers 10.8.0.1 fd00:8::1, domains lab.test (all names)"},
		{routing.ModeResolved, split, "DNS: systemd-resolved on tun0: servers 10.8.0.1, domains corp.test (split)"},
		{routing.ModeResolvConf, full, "DNS: resolv.conf /etc/resolv.conf: servers 10.8.0.1 fd00:8::1, domains lab.test (all names)"},
		{routing.ModeNone, split, "DNS: none; servers 10.8.0.1, domains corp.test not applied"},
		{routing.ModeResolved, &routing.Config{Link: "tun0"}, "DNS: systemd-resolved; no DNS servers pushed or configured, resolver left alone"},
	} {
		if got := dnsText(tc.mode, "/etc/resolv.conf", tc.rc); got != tc.want {
			t.Errorf("dnsText(%s) = %q, want %q", tc.mode, got, tc.want)
		}
	}
}

// fakeSubscription hands the watcher a channel the test feeds.
type fakeSubscription struct {
	mu    sync.Mutex
	ch    chan<- netlink.RouteUpdate
	done  <-chan struct{}
	calls int
}

func (f *fakeSubscription) subscribe(ch chan<- netlink.RouteUpdate, done <-chan struct{}, _ func(error)) error {
	f.mu.Lock()
	f.ch, f.done = ch, done
	f.calls++
	f.mu.Unlock()
	// As netlink: the channel is closed once done is.
	go func() {
		<-done
		close(ch)
	}()
	return nil
}

func (f *fakeSubscription) send(u netlink.RouteUpdate) {
	f.mu.Lock()
	ch, done := f.ch, f.done
	f.mu.Unlock()
	select {
	case ch <- u:
	case <-done:
	}
}

func TestRouteWatcher(t *testing.T) {
	_, def, _ := net.ParseCIDR("0.0.0.0/0")
	_, host, _ := net.ParseCIDR("198.18.0.1/32")
	_, other, _ := net.ParseCIDR("10.20.0.0/16")
	upd := func(typ uint16, dst *net.IPNet, link int) netlink.RouteUpdate {
		return netlink.RouteUpdate{Type: typ, Route: netlink.Route{Dst: dst, LinkIndex: link, Table: unix.RT_TABLE_MAIN, Gw: net.ParseIP("198.18.0.254")}}
	}
	var mu sync.Mutex
	refreshes := 0
	var logs []string
	w := newRouteWatcher(func() {
		mu.Lock()
		refreshes++
		mu.Unlock()
	}, func(level int, f string, a ...any) {
		mu.Lock()
		logs = append(logs, fmt.Sprintf("%d "+f, append([]any{level}, a...)...))
		mu.Unlock()
	})
	w.debounce = 50 * time.Millisecond
	fs := &fakeSubscription{}
	w.subscribe = fs.subscribe
	w.setTunIndex(9)
	w.setServers([]netip.Addr{netip.MustParseAddr("198.18.0.1")})
	if err := w.start(); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return refreshes
	}

	// Irrelevant: routes on the tunnel, unrelated prefixes, other tables.
	fs.send(upd(unix.RTM_NEWROUTE, nil, 9))
	fs.send(upd(unix.RTM_NEWROUTE, other, 2))
	u := upd(unix.RTM_DELROUTE, nil, 2)
	u.Table = 200
	fs.send(u)
	time.Sleep(150 * time.Millisecond)
	if n := count(); n != 0 {
		t.Fatalf("%d refreshes for irrelevant changes", n)
	}

	// A burst of default-route changes is one refresh.
	fs.send(upd(unix.RTM_DELROUTE, nil, 2))
	fs.send(upd(unix.RTM_NEWROUTE, def, 3))
	fs.send(upd(unix.RTM_NEWROUTE, host, 3))
	time.Sleep(200 * time.Millisecond)
	if n := count(); n != 1 {
		t.Fatalf("%d refreshes after a burst, want 1", n)
	}
	mu.Lock()
	joined := strings.Join(logs, "\n")
	mu.Unlock()
	if !strings.Contains(joined, "1 underlying routes changed") || !strings.Contains(joined, "deleted default via 198.18.0.254 dev #2") {
		t.Errorf("logs:\n%s", joined)
	}

	// A lost subscription is replaced and followed by a refresh.
	fs.mu.Lock()
	ch := fs.ch
	fs.mu.Unlock()
	close(ch)
	deadline := time.Now().Add(5 * time.Second)
	for count() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no refresh after resubscribing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	fs.mu.Lock()
	calls := fs.calls
	fs.mu.Unlock()
	if calls != 2 {
		t.Errorf("%d subscriptions, want 2", calls)
	}

	stopped := make(chan struct{})
	go func() { w.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not return")
	}
	w.stop() // idempotent
}

func TestNetReason(t *testing.T) {
	if got := netReason(nil); got != "" {
		t.Errorf("nil: %q", got)
	}
	if got := netReason(errors.New("MTU 5 out of range")); got != "" {
		t.Errorf("other errors are not a degraded state: %q", got)
	}
	err := errors.Join(
		errors.Join(&routing.PolicyError{What: "route 10.50.0.0/17: it would capture 10.50.0.0/16, a route of another user's tunnel"},
			&routing.PolicyError{What: "address 192.168.1.99/24: x"}),
		fmt.Errorf("apply: %w", &routing.DNSError{Err: errors.New("writing /etc/resolv.conf: read-only file system")}))
	want := "DNS degraded: configuring DNS: writing /etc/resolv.conf: read-only file system; " +
		"refused: route 10.50.0.0/17: it would capture 10.50.0.0/16, a route of another user's tunnel (and 1 more; see the log)"
	if got := netReason(err); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestApplyPushUpdate: a PUSH_UPDATE replaces the kinds it names (all routes, all DHCP DNS
// options), removes the ones it prefixes with "-", keeps the rest (address, the other kinds),
// and goes to routing as one new desired state.
func TestApplyPushUpdate(t *testing.T) {
	server := netip.MustParseAddr("198.18.0.1")
	r, fr, logs := newTestRunner(t, &config.Config{TunMTU: 1500})
	if err := applyPushLines(r, labPush, server); err != nil {
		t.Fatal(err)
	}
	u, err := push.ParseUpdate([]string{
		"route 10.9.1.0 255.255.255.0", "route 10.9.2.0 255.255.255.0",
		"dhcp-option DNS 10.8.0.53", "-redirect-gateway",
	}, r.cfg.PushPolicy())
	if err != nil {
		t.Fatal(err)
	}
	r.applyPushUpdate(u, server)
	rc := fr.last()
	if fr.count() != 2 || rc == nil {
		t.Fatalf("%d routing changes", fr.count())
	}
	var routes []string
	for _, rt := range rc.Routes {
		routes = append(routes, rt.Dst.String())
	}
	if want := []string{"10.9.1.0/24", "10.9.2.0/24"}; !slices.Equal(routes, want) {
		t.Errorf("routes %q, want %q (the pushed 203.0.113.0/24 replaced)", routes, want)
	}
	if rc.Redirect != nil {
		t.Errorf("redirect-gateway not removed: %+v", rc.Redirect)
	}
	if rc.DNS == nil || len(rc.DNS.Servers) != 1 || rc.DNS.Servers[0] != netip.MustParseAddr("10.8.0.53") || len(rc.DNS.Search) != 0 {
		t.Errorf("DNS %+v, want only 10.8.0.53 (every dhcp-option replaced)", rc.DNS)
	}
	if len(rc.Addrs) != 1 || rc.Addrs[0].Prefix != netip.MustParsePrefix("10.8.0.2/24") {
		t.Errorf("address changed: %v", rc.Addrs)
	}
	if !strings.Contains(logs(), "PUSH_UPDATE: route 10.9.1.0") || !strings.Contains(logs(), "(removed: redirect-gateway)") {
		t.Errorf("update not logged:\n%s", logs())
	}

	// An update naming nothing of the network keeps the state as it is.
	u, _ = push.ParseUpdate([]string{"keepalive 5 30"}, r.cfg.PushPolicy())
	r.applyPushUpdate(u, server)
	if again := fr.last(); len(again.Routes) != 2 || again.DNS == nil {
		t.Errorf("keepalive-only update changed the network: %+v", again)
	}
}
