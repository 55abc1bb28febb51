package routing

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// liveNS creates a fresh network namespace shaped like lanEnv (eth0 with
// IPv4/IPv6 default routes, an unconfigured tun0) and returns
// a kernel bound to it. The test's thread is back in its original
// namespace when liveNS returns: everything goes through handles bound to
// the new one, so the host's routing is never touched.
func liveNS(t *testing.T) (*netlinkKernel, *netlink.Handle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("live tests need root")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Skip("no netns support:", err)
	}
	ns, err := netns.New()
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Skip("cannot create a network namespace:", err)
	}
	if err := netns.Set(orig); err != nil {
		// Staying in the wrong namespace would poison other tests on this thread.
		panic(fmt.Sprintf("restoring the original network namespace: %v", err))
	}
	orig.Close()
	runtime.UnlockOSThread()
	t.Cleanup(func() { ns.Close() })

	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	k, err := newNetlinkKernelAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.close)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	lo, err := h.LinkByName("lo")
	must(err)
	must(h.LinkSetUp(lo))
	// veth pairs stand in for the LAN card and the tun device: the dummy
	// driver is not available everywhere, and a veth has carrier once both
	// ends are up.
	for _, name := range []string{"eth0", "tun0"} {
		must(h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: 1500}, PeerName: name + "p"}))
		for _, n := range []string{name, name + "p"} {
			l, err := h.LinkByName(n)
			must(err)
			// No IPv6 link-local addresses: they appear asynchronously
			// and would make snapshots racy.
			must(h.LinkSetIP6AddrGenMode(l, 1 /* IN6_ADDR_GEN_MODE_NONE */))
			must(h.LinkSetUp(l))
		}
	}
	eth0, _ := h.LinkByName("eth0")
	for _, a := range []string{"192.168.1.10/24", "2001:db8:1::10/64"} {
		must(h.AddrAdd(eth0, &netlink.Addr{IPNet: prefixToIPNet(mp(a)), Flags: unix.IFA_F_NODAD}))
	}
	must(h.RouteAdd(&netlink.Route{Dst: prefixToIPNet(mp("0.0.0.0/0")), Gw: net.ParseIP("192.168.1.1"), LinkIndex: eth0.Attrs().Index, Priority: 100, Protocol: unix.RTPROT_DHCP}))
	must(h.RouteAdd(&netlink.Route{Dst: prefixToIPNet(mp("::/0")), Gw: net.ParseIP("fe80::1"), LinkIndex: eth0.Attrs().Index, Priority: 1024, Protocol: unix.RTPROT_DHCP}))
	return k, h
}

// snapshot renders the namespace's links, addresses and main-table routes
// in the same notation as fakeKernel.String, so golden diffs apply to both.
func snapshot(t *testing.T, h *netlink.Handle) string {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	names := map[int]string{}
	var lines []string
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
		lines = append(lines, fmt.Sprintf("link %s mtu %d", a.Name, a.MTU))
		addrs, err := h.AddrList(l, unix.AF_UNSPEC)
		if err != nil {
			t.Fatal(err)
		}
		for _, ad := range addrs {
			p, _ := ipNetToPrefix(ad.IPNet)
			peer := ""
			if ad.Peer != nil {
				if pp, _ := ipNetToPrefix(ad.Peer); pp.Addr() != p.Addr() {
					peer = " peer " + pp.Addr().String()
				}
			}
			lines = append(lines, fmt.Sprintf("addr %s %v%s", a.Name, p, peer))
		}
	}
	f := &fakeKernel{links: map[int]*linkInfo{}}
	for i, n := range names {
		f.links[i] = &linkInfo{Index: i, Name: n}
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, err := h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			kr, ok := toKroute(r)
			if !ok {
				t.Fatalf("unparsable route %v", r)
			}
			if r.Type != unix.RTN_UNICAST {
				lines = append(lines, fmt.Sprintf("route type %d %s", r.Type, f.text(kr)))
				continue
			}
			lines = append(lines, "route "+f.text(kr))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// TestLiveGolden applies every golden Config to a real kernel: the changes
// must be exactly the golden ones (which also checks that the fake behaves
// like the kernel), and Close must restore the namespace exactly.
func TestLiveGolden(t *testing.T) {
	for _, g := range goldenTable() {
		t.Run(g.name, func(t *testing.T) {
			k, h := liveNS(t)
			before := snapshot(t, h)
			r := newTestRouter(t, k, t.TempDir(), "live")
			if err := r.Set(g.cfg); err != nil {
				t.Fatalf("Set: %v", err)
			}
			if diff := cmp.Diff(sortLines(g.want), lineDiff(before, snapshot(t, h))); diff != "" {
				t.Errorf("after Set (-want +got):\n%s", diff)
			}
			if err := r.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if diff := cmp.Diff(before, snapshot(t, h)); diff != "" {
				t.Errorf("after Close (-before +after):\n%s", diff)
			}
		})
	}
}

// TestLiveReplay walks through several Configs on a real kernel and checks
// each step against the golden result.
func TestLiveReplay(t *testing.T) {
	table := goldenTable()
	k, h := liveNS(t)
	before := snapshot(t, h)
	r := newTestRouter(t, k, t.TempDir(), "live")
	order := []int{2, 3, 13, 5, 4, 12, 15, 6, 1, 2}
	for _, i := range order {
		g := table[i%len(table)]
		if err := r.Set(g.cfg); err != nil {
			t.Fatalf("Set(%s): %v", g.name, err)
		}
		if diff := cmp.Diff(sortLines(g.want), lineDiff(before, snapshot(t, h))); diff != "" {
			t.Fatalf("after Set(%s) (-want +got):\n%s", g.name, diff)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, snapshot(t, h)); diff != "" {
		t.Errorf("after Close (-before +after):\n%s", diff)
	}
}

// TestLiveCrash drops a Router without Close and recovers with the state
// file alone, as `ovpnd cleanup` does after SIGKILL.
func TestLiveCrash(t *testing.T) {
	for _, name := range []string{"replace-default", "def1-ipv6", "block-local", "net30"} {
		t.Run(name, func(t *testing.T) {
			var cfg *Config
			for _, g := range goldenTable() {
				if g.name == name {
					cfg = g.cfg
				}
			}
			k, h := liveNS(t)
			before := snapshot(t, h)
			dir := t.TempDir()
			r, err := New(Options{StateDir: dir, Instance: "crash", Logf: t.Logf, DNSMode: ModeNone, kernel: k, bypassFunc: testBypass, pid: deadPID(t)})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Set(cfg); err != nil {
				t.Fatal(err)
			}
			if snapshot(t, h) == before {
				t.Fatal("Set changed nothing")
			}
			if err := cleanUp(dir, k, nil, t.Logf); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, snapshot(t, h)); diff != "" {
				t.Errorf("after cleanup (-before +after):\n%s", diff)
			}
		})
	}
}

// TestLiveTunGone checks teardown after the session already destroyed the
// tun device: everything on it vanished with it, and Close still restores
// the routes elsewhere.
func TestLiveTunGone(t *testing.T) {
	k, h := liveNS(t)
	before := snapshot(t, h)
	r := newTestRouter(t, k, t.TempDir(), "live")
	if err := r.Set(with(func(c *Config) { c.Redirect = &Redirect{Gateway4: vpnGw4, IPv6: true} })); err != nil {
		t.Fatal(err)
	}
	tun, _ := h.LinkByName("tun0")
	if err := h.LinkDel(tun); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	want := lineDiff(before, snapshot(t, h))
	for _, l := range strings.Split(want, "\n") {
		if !strings.Contains(l, "tun0") {
			t.Errorf("left behind: %q", l)
		}
	}
	if !strings.Contains(snapshot(t, h), "route default via 192.168.1.1 dev eth0 proto dhcp metric 100") {
		t.Error("original default route not restored")
	}
}
