package routing

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// externalCfg is what an external-mode session hands NetworkManager: a split route, a
// net_gateway route (not handed on), a def1 redirect and DNS domains.
func externalCfg() *Config {
	return with(func(c *Config) {
		c.Routes = []Route{{Dst: mp("10.50.0.0/16"), Gateway: vpnGw4}, {Dst: mp("192.0.2.0/24"), ViaNetGateway: true}}
		c.Redirect = &Redirect{Def1: true, Gateway4: vpnGw4}
		c.DNS = &DNS{Servers: []netip.Addr{ma("10.8.0.53")}, Search: []string{"corp.example"}, RoutingDomains: []string{"lab.example"}}
	})
}

// nmRoutes puts on tun0 what NetworkManager installs for externalCfg: the address, its
// routes at metric 50, the default route instead of def1.
func nmRoutes(t *testing.T, k *fakeKernel) {
	t.Helper()
	if err := k.AddrAdd(kaddr{LinkIndex: 5, Prefix: mp("10.8.0.2/24")}); err != nil {
		t.Fatal(err)
	}
	for _, rt := range []kroute{
		{Dst: mp("10.50.0.0/16"), Gw: vpnGw4, LinkIndex: 5, Metric: 50, Table: tableMain, Protocol: unix.RTPROT_STATIC},
		{Dst: mp("0.0.0.0/0"), Gw: vpnGw4, LinkIndex: 5, Metric: 50, Table: tableMain, Protocol: unix.RTPROT_STATIC},
	} {
		if err := k.RouteAdd(rt); err != nil {
			t.Fatal(err)
		}
	}
	k.ops = nil
}

func readTestLedger(t *testing.T, dir string) *ledger {
	t.Helper()
	l, err := readLedger(filepath.Join(dir, ledgerName))
	if errors.Is(err, os.ErrNotExist) {
		return &ledger{}
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestExternalClaims: a tunnel whose settings NetworkManager applies records its addresses,
// routes (a redirect as the default route, its server's host route, no net_gateway route)
// and DNS domains in the host ledger without one kernel change; another user's session is
// refused what would capture them, and a user's full tunnel does not take NetworkManager's
// default route on the tunnel for the host's; a reconnect's configuration replaces the
// claims, and Close releases them, the kernel untouched throughout.
func TestExternalClaims(t *testing.T) {
	k := lanEnv(t, true)
	dir := t.TempDir()
	if _, err := New(Options{StateDir: dir, Instance: "user", Owner: 1000, External: true, kernel: k}); err == nil {
		t.Error("a user's tunnel may leave its settings to another program")
	}
	ext, err := New(Options{StateDir: dir, Instance: "nm", External: true, Logf: t.Logf, kernel: k, bypassFunc: testBypass})
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Set(externalCfg()); err != nil {
		t.Fatal(err)
	}
	if len(k.ops) != 0 {
		t.Fatalf("recording changed the kernel: %v", k.ops)
	}
	nmRoutes(t, k)
	tun := readTestLedger(t, dir).tunnel("nm", false)
	if tun == nil || !tun.External || tun.Owner != 0 || tun.LinkIndex != 5 {
		t.Fatalf("ledger entry %+v", tun)
	}
	want := []recordedRoute{{Dst: mp("0.0.0.0/0"), Full: true}, {Dst: mp("10.50.0.0/16")}, {Dst: mp("203.0.113.5/32")}, {Dst: mp("2001:db8:ff::5/128")}}
	if !slices.Equal(tun.Recorded, want) {
		t.Errorf("recorded routes %+v, want %+v", tun.Recorded, want)
	}
	if !slices.Equal(tun.Domains, []string{"corp.example", "lab.example"}) || len(tun.Addrs) != 2 {
		t.Errorf("recorded domains %v addresses %v", tun.Domains, tun.Addrs)
	}

	// Another user's session.
	cfgB := tunB(k)
	cfgB.Addrs = append(cfgB.Addrs, Addr{Prefix: mp("10.8.0.2/24")})
	cfgB.Routes = []Route{{Dst: mp("10.50.0.0/17")}, {Dst: mp("203.0.113.5/32"), ViaNetGateway: true}, {Dst: mp("10.0.0.0/8")}}
	cfgB.Redirect = &Redirect{Gateway4: ma("10.9.0.1")} // replaces the host's default route
	cfgB.DNS = &DNS{Servers: []netip.Addr{ma("10.9.0.53")}, Search: []string{"hr.corp.example"}, RoutingDomains: []string{"b.example"}}
	b, err := New(Options{StateDir: dir, Instance: "bob", Owner: 1001, Logf: t.Logf, DNSMode: ModeNone, kernel: k, bypassFunc: testBypass})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Set(cfgB)
	for _, refused := range []string{
		"route 10.50.0.0/17: it would capture 10.50.0.0/16", "route 203.0.113.5/32: it would capture 203.0.113.5/32",
		"address 10.8.0.2/24: another user's tunnel", "DNS domain hr.corp.example",
	} {
		if !strings.Contains(ferr(err), refused) {
			t.Errorf("not refused: %s (Set: %v)", refused, err)
		}
	}
	state := k.String()
	if strings.Contains(state, "route 10.50.0.0/17") || !strings.Contains(state, "route 10.0.0.0/8 dev tun1") {
		t.Errorf("bob's routes:\n%s", state)
	}
	if !strings.Contains(state, "route default via 10.8.0.1 dev tun0 proto static metric 50") || !strings.Contains(state, "route 198.51.100.9/32 via 192.168.1.1 dev eth0") {
		t.Errorf("bob's full tunnel took NetworkManager's default route on tun0 for the host's:\n%s", state)
	}
	if strings.Contains(state, "route default via 192.168.1.1 dev eth0") {
		t.Errorf("bob's full tunnel left the host's default route:\n%s", state)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if state := k.String(); !strings.Contains(state, "route default via 10.8.0.1 dev tun0 proto static metric 50") || !strings.Contains(state, "route default via 192.168.1.1 dev eth0") {
		t.Errorf("after bob left:\n%s", state)
	}

	// A reconnect with another configuration replaces the claims.
	k.ops = nil
	if err := ext.Set(with(func(c *Config) { c.Routes = []Route{{Dst: mp("10.60.0.0/16")}} })); err != nil {
		t.Fatal(err)
	}
	tun = readTestLedger(t, dir).tunnel("nm", false)
	want = []recordedRoute{{Dst: mp("10.60.0.0/16")}, {Dst: mp("203.0.113.5/32")}, {Dst: mp("2001:db8:ff::5/128")}}
	if tun == nil || !slices.Equal(tun.Recorded, want) || tun.Domains != nil {
		t.Errorf("after a reconnect: %+v", tun)
	}
	if err := ext.Close(); err != nil {
		t.Fatal(err)
	}
	if len(k.ops) != 0 {
		t.Errorf("the external tunnel changed the kernel: %v", k.ops)
	}
	if l := readTestLedger(t, dir); !l.empty() {
		t.Errorf("Close left %+v", l.Tunnels)
	}
	if _, err := os.Stat(filepath.Join(dir, "nm"+stateSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left: %v", err)
	}
}

func ferr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestExternalCrashCleanUp: the claims of an external tunnel whose process died are released
// by cleanup without touching the routes on its link (NetworkManager's), and the claims of a
// live one are kept.
func TestExternalCrashCleanUp(t *testing.T) {
	k := lanEnv(t, true)
	dir := t.TempDir()
	dead, err := New(Options{StateDir: dir, Instance: "nm-dead", External: true, Logf: t.Logf, kernel: k, bypassFunc: testBypass, pid: deadPID(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := dead.Set(externalCfg()); err != nil {
		t.Fatal(err)
	}
	k.addLink(6, "tun1", 1500)
	live, err := New(Options{StateDir: dir, Instance: "nm-live", External: true, Logf: t.Logf, kernel: k, bypassFunc: testBypass})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := live.Set(&Config{Link: "tun1", Addrs: []Addr{{Prefix: mp("10.9.0.2/24")}}, Routes: []Route{{Dst: mp("10.70.0.0/16")}}}); err != nil {
		t.Fatal(err)
	}
	nmRoutes(t, k)
	before := k.String()
	if err := cleanUp(dir, k, nil, t.Logf); err != nil {
		t.Fatal(err)
	}
	if len(k.ops) != 0 || k.String() != before {
		t.Errorf("cleanup changed the kernel: %v", k.ops)
	}
	l := readTestLedger(t, dir)
	if l.tunnel("nm-dead", false) != nil || l.tunnel("nm-live", false) == nil {
		t.Errorf("after cleanup the ledger holds %+v", l.Tunnels)
	}
	if _, err := os.Stat(filepath.Join(dir, "nm-dead"+stateSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead tunnel's record left: %v", err)
	}
	// A ledger entry without a record (removed by hand) is released the same way.
	os.Remove(filepath.Join(dir, "nm-live"+stateSuffix))
	if err := cleanUp(dir, k, nil, t.Logf); err != nil {
		t.Fatal(err)
	}
	if len(k.ops) != 0 || !readTestLedger(t, dir).empty() {
		t.Errorf("orphan cleanup: ops %v, ledger %+v", k.ops, readTestLedger(t, dir).Tunnels)
	}
}
