package routing

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"
)

// fakeBus records resolved calls as text.
type fakeBus struct {
	mu       sync.Mutex
	calls    []string
	owner    chan struct{}
	unknown  map[string]bool // methods to answer with UnknownMethod
	hasOwner bool
	closed   bool
}

func newFakeBus() *fakeBus {
	return &fakeBus{owner: make(chan struct{}, 1), unknown: map[string]bool{}, hasOwner: true}
}

func (b *fakeBus) call(method string, args ...any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var parts []string
	for _, a := range args {
		switch v := a.(type) {
		case []resolvedDomain:
			var ds []string
			for _, d := range v {
				if d.RoutingOnly {
					ds = append(ds, "~"+d.Domain)
				} else {
					ds = append(ds, d.Domain)
				}
			}
			parts = append(parts, "["+strings.Join(ds, " ")+"]")
		case []resolvedAddr:
			var as []string
			for _, x := range v {
				ip, _ := netip.AddrFromSlice(x.Address)
				as = append(as, fmt.Sprintf("%d:%v", x.Family, ip))
			}
			parts = append(parts, "["+strings.Join(as, " ")+"]")
		default:
			parts = append(parts, fmt.Sprint(v))
		}
	}
	b.calls = append(b.calls, method+" "+strings.Join(parts, " "))
	if b.unknown[method] {
		return dbus.Error{Name: "org.freedesktop.DBus.Error.UnknownMethod"}
	}
	return nil
}

func (b *fakeBus) nameHasOwner() (bool, error)   { return b.hasOwner, nil }
func (b *fakeBus) ownerChanged() <-chan struct{} { return b.owner }
func (b *fakeBus) close() error                  { b.mu.Lock(); b.closed = true; b.mu.Unlock(); return nil }

func (b *fakeBus) take() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.calls
	b.calls = nil
	return c
}

func TestResolvedSequence(t *testing.T) {
	full := &DNS{Servers: []netip.Addr{ma("10.8.0.53"), ma("fd00:8::53")}, Search: []string{"corp.example"}, FullTunnel: true}
	split := &DNS{Servers: []netip.Addr{ma("10.8.0.53")}, RoutingDomains: []string{"~corp.example", "8.10.in-addr.arpa."}}
	tests := []struct {
		name    string
		unknown string
		steps   []*DNS
		want    [][]string // calls after each step, then after Close
	}{
		{"full-tunnel", "", []*DNS{full}, [][]string{{
			"SetLinkDomains 5 [corp.example ~.]",
			"SetLinkDefaultRoute 5 true",
			"SetLinkDNS 5 [2:10.8.0.53 10:fd00:8::53]",
		}, {"RevertLink 5"}}},
		{"split", "", []*DNS{split}, [][]string{{
			"SetLinkDomains 5 [~corp.example ~8.10.in-addr.arpa]",
			"SetLinkDefaultRoute 5 false",
			"SetLinkDNS 5 [2:10.8.0.53]",
		}, {"RevertLink 5"}}},
		{"old-systemd", "SetLinkDefaultRoute", []*DNS{full}, [][]string{{
			"SetLinkDomains 5 [corp.example ~.]",
			"SetLinkDefaultRoute 5 true",
			"SetLinkDNS 5 [2:10.8.0.53 10:fd00:8::53]",
		}, {"RevertLink 5"}}},
		{"change-then-remove", "", []*DNS{full, full, split, nil}, [][]string{
			{"SetLinkDomains 5 [corp.example ~.]", "SetLinkDefaultRoute 5 true", "SetLinkDNS 5 [2:10.8.0.53 10:fd00:8::53]"},
			nil, // unchanged: no calls
			{"SetLinkDomains 5 [~corp.example ~8.10.in-addr.arpa]", "SetLinkDefaultRoute 5 false", "SetLinkDNS 5 [2:10.8.0.53]"},
			{"RevertLink 5"},
			nil, // nothing left to revert on Close
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus := newFakeBus()
			if tt.unknown != "" {
				bus.unknown[tt.unknown] = true
			}
			k := lanEnv(t, true)
			r, err := New(Options{StateDir: t.TempDir(), Instance: "t", Logf: t.Logf, DNSMode: ModeResolved, kernel: k,
				dialBus: func() (resolvedBus, error) { return bus, nil }})
			if err != nil {
				t.Fatal(err)
			}
			if r.DNSMode() != ModeResolved {
				t.Fatalf("DNSMode = %q", r.DNSMode())
			}
			for i, d := range tt.steps {
				if err := r.Set(&Config{Link: "tun0", DNS: d}); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if diff := cmp.Diff(tt.want[i], bus.take()); diff != "" {
					t.Errorf("step %d calls (-want +got):\n%s", i, diff)
				}
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want[len(tt.steps)], bus.take()); diff != "" {
				t.Errorf("Close calls (-want +got):\n%s", diff)
			}
			if !bus.closed {
				t.Error("bus not closed")
			}
		})
	}
}

func TestResolvedRestart(t *testing.T) {
	bus := newFakeBus()
	k := lanEnv(t, true)
	r, err := New(Options{StateDir: t.TempDir(), Instance: "t", Logf: t.Logf, DNSMode: ModeResolved, kernel: k,
		dialBus: func() (resolvedBus, error) { return bus, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d := &DNS{Servers: []netip.Addr{ma("10.8.0.53")}, FullTunnel: true}
	if err := r.Set(&Config{Link: "tun0", DNS: d}); err != nil {
		t.Fatal(err)
	}
	first := bus.take()
	bus.owner <- struct{}{} // resolved restarted
	deadline := time.Now().Add(5 * time.Second)
	for {
		bus.mu.Lock()
		n := len(bus.calls)
		bus.mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if diff := cmp.Diff(first, bus.take()); diff != "" {
		t.Errorf("re-applied calls differ (-first +again):\n%s", diff)
	}
}

func TestResolvedCrashCleanUp(t *testing.T) {
	bus := newFakeBus()
	dial := func() (resolvedBus, error) { return bus, nil }
	k := lanEnv(t, true)
	dir := t.TempDir()
	r, err := New(Options{StateDir: dir, Instance: "t", Logf: t.Logf, DNSMode: ModeResolved, kernel: k, dialBus: dial, pid: deadPID(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Set(&Config{Link: "tun0", DNS: &DNS{Servers: []netip.Addr{ma("10.8.0.53")}}}); err != nil {
		t.Fatal(err)
	}
	bus.take()
	if err := cleanUp(dir, k, dial, t.Logf); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"RevertLink 5"}, bus.take()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDetectDNSMode(t *testing.T) {
	dir := t.TempDir()
	stub := filepath.Join(dir, "stub.conf")
	plain := filepath.Join(dir, "plain.conf")
	os.WriteFile(stub, []byte("nameserver 127.0.0.53\noptions edns0 trust-ad\n"), 0o644)
	os.WriteFile(plain, []byte("nameserver 192.168.1.53\n"), 0o644)
	tests := []struct {
		name     string
		resolv   string
		hasOwner bool
		dialErr  error
		want     string
	}{
		{"resolved", stub, true, nil, ModeResolved},
		{"resolved-not-used", plain, true, nil, ModeResolvConf},
		{"resolved-not-running", stub, false, nil, ModeResolvConf},
		{"no-bus", plain, false, errors.New("no bus"), ModeResolvConf},
		{"nothing", filepath.Join(dir, "missing", "resolv.conf"), false, errors.New("no bus"), ModeNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus := newFakeBus()
			bus.hasOwner = tt.hasOwner
			var logs []string
			r, err := New(Options{StateDir: t.TempDir(), Instance: "t", ResolvConf: tt.resolv, kernel: lanEnv(t, true),
				Logf:    func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) },
				dialBus: func() (resolvedBus, error) { return bus, tt.dialErr }})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if got := r.DNSMode(); got != tt.want {
				t.Errorf("DNSMode = %q, want %q", got, tt.want)
			}
			if !strings.Contains(strings.Join(logs, "\n"), "DNS mode: "+tt.want) {
				t.Errorf("mode not logged: %q", logs)
			}
		})
	}
}

func TestResolvConf(t *testing.T) {
	orig := "# from DHCP\nnameserver 192.168.1.53\nnameserver 192.168.1.54\nsearch lan home.arpa\noptions edns0\n"
	tests := []struct {
		name string
		dns  *DNS
		want string
	}{
		{"full", &DNS{Servers: []netip.Addr{ma("10.8.0.53"), ma("fd00:8::53")}, Search: []string{"corp.example"}, FullTunnel: true},
			"nameserver 10.8.0.53\nnameserver fd00:8::53\nsearch corp.example\noptions edns0\n"},
		{"split", &DNS{Servers: []netip.Addr{ma("10.8.0.53")}, Search: []string{"corp.example"}},
			"nameserver 10.8.0.53\nnameserver 192.168.1.53\nnameserver 192.168.1.54\nsearch corp.example lan home.arpa\noptions edns0\n"},
		{"domains-only", &DNS{Search: []string{"corp.example"}, FullTunnel: true},
			"nameserver 192.168.1.53\nnameserver 192.168.1.54\nsearch corp.example\noptions edns0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "resolv.conf")
			if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := New(Options{StateDir: dir, Instance: "t", Logf: t.Logf, DNSMode: ModeResolvConf, ResolvConf: path, kernel: lanEnv(t, true)})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Set(&Config{Link: "tun0", DNS: tt.dns}); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			want := resolvHeader + tt.want
			if diff := cmp.Diff(want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path); string(b) != orig {
				t.Errorf("not restored: %q", b)
			}
			if _, err := os.Stat(filepath.Join(dir, ledgerName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("host ledger left behind")
			}
		})
	}
}

func TestResolvConfSymlinkAndForeignChange(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "stub-resolv.conf")
	path := filepath.Join(dir, "resolv.conf")
	os.WriteFile(target, []byte("nameserver 192.168.1.53\n"), 0o644)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	dns := &DNS{Servers: []netip.Addr{ma("10.8.0.53")}, FullTunnel: true}
	r, err := New(Options{StateDir: dir, Instance: "t", Logf: t.Logf, DNSMode: ModeResolvConf, ResolvConf: path, kernel: lanEnv(t, true), pid: deadPID(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Set(&Config{Link: "tun0", DNS: dns}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "nameserver 192.168.1.53\n" {
		t.Errorf("wrote through the symlink: %q", b)
	}
	// Crash, then clean up: the symlink comes back.
	if err := cleanUp(dir, lanEnv(t, true), nil, t.Logf); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(path); err != nil || got != target {
		t.Errorf("symlink not restored: %q, %v", got, err)
	}

	// A file rewritten by someone else after us is left alone.
	r2, err := New(Options{StateDir: dir, Instance: "t", Logf: t.Logf, DNSMode: ModeResolvConf, ResolvConf: path, kernel: lanEnv(t, true)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Set(&Config{Link: "tun0", DNS: dns}); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	os.WriteFile(path, []byte("nameserver 1.1.1.1\n"), 0o644)
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "nameserver 1.1.1.1\n" {
		t.Errorf("clobbered a newer resolv.conf: %q", b)
	}
}

func TestSanitizeDNS(t *testing.T) {
	d, err := sanitizeDNS(&DNS{
		Servers:        []netip.Addr{ma("10.8.0.53"), {}, ma("0.0.0.0"), ma("::ffff:10.8.0.54")},
		Search:         []string{"ok.example", "bad domain", "evil\nnameserver 6.6.6.6", "x..y"},
		RoutingDomains: []string{"~corp.example."},
	})
	if err == nil {
		t.Error("no error for invalid entries")
	}
	want := &DNS{Servers: []netip.Addr{ma("10.8.0.53"), ma("10.8.0.54")}, Search: []string{"ok.example"}, RoutingDomains: []string{"corp.example"}}
	if diff := cmp.Diff(want, d, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestBypassSources(t *testing.T) {
	if a, ok := networkdDHCPServer([]byte("# This is private data.\nADDRESS=192.168.1.10\nSERVER_ADDRESS=192.168.1.1\n")); !ok || a != ma("192.168.1.1") {
		t.Errorf("networkd lease: %v %v", a, ok)
	}
	lease := "lease {\n  option dhcp-server-identifier 10.0.0.1;\n}\nlease {\n  option dhcp-server-identifier 10.0.0.2;\n}\n"
	if a, ok := dhclientServer([]byte(lease)); !ok || a != ma("10.0.0.2") {
		t.Errorf("dhclient lease: %v %v", a, ok)
	}
	if _, ok := dhclientServer([]byte("garbage")); ok {
		t.Error("found a server in garbage")
	}
}

func FuzzParseResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 1.2.3.4\nsearch a b\noptions ndots:2\n"))
	f.Add([]byte("nameserver fe80::1%eth0\ndomain x\n; comment\n#c\n"))
	f.Add([]byte("\x00\xff nameserver"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ns, search, opts := parseResolvConf(b)
		if len(ns) > MaxDNS || len(search) > MaxDNS || len(opts) > MaxDNS {
			t.Fatalf("unbounded: %d %d %d", len(ns), len(search), len(opts))
		}
		// What we write back must not let a line inject another directive.
		l := &ledger{Tunnels: []*ledgerTunnel{{ID: "f", ResolvConf: "r", DNS: &DNS{Servers: []netip.Addr{ma("10.0.0.1")}}}}}
		out := composeResolvConf(l, &ledgerResolv{Path: "r", Orig: b})
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Count(l, "nameserver") > 1 {
				t.Fatalf("line %q", l)
			}
		}
	})
}

const resolvHeader = resolvMarker + " for the tunnels that are up; the original comes back when the last one goes down.\n"

// TestDNSTransport: pushed DoT is applied through resolved's DNSOverTLS
// before the servers; DoH (which resolved lacks), DoT without resolved's
// support and any encryption in resolv.conf mode are applied in the clear
// with an error that says DNS is unencrypted.
func TestDNSTransport(t *testing.T) {
	dot := &DNS{Servers: []netip.Addr{ma("10.8.0.53")}, FullTunnel: true, Transport: TransportDoT}
	for _, tc := range []struct {
		name, unknown string
		dns           *DNS
		wantCalls     []string
		wantErr       bool
	}{
		{"dot", "", dot, []string{"SetLinkDomains 5 [~.]", "SetLinkDefaultRoute 5 true", "SetLinkDNSOverTLS 5 yes", "SetLinkDNS 5 [2:10.8.0.53]"}, false},
		{"dot-unsupported", "SetLinkDNSOverTLS", dot, []string{"SetLinkDomains 5 [~.]", "SetLinkDefaultRoute 5 true", "SetLinkDNSOverTLS 5 yes", "SetLinkDNS 5 [2:10.8.0.53]"}, true},
		{"doh", "", &DNS{Servers: []netip.Addr{ma("10.8.0.53")}, FullTunnel: true, Transport: TransportDoH},
			[]string{"SetLinkDomains 5 [~.]", "SetLinkDefaultRoute 5 true", "SetLinkDNS 5 [2:10.8.0.53]"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := newFakeBus()
			if tc.unknown != "" {
				bus.unknown[tc.unknown] = true
			}
			r, err := New(Options{StateDir: t.TempDir(), Instance: "t", Logf: t.Logf, DNSMode: ModeResolved, kernel: lanEnv(t, true),
				dialBus: func() (resolvedBus, error) { return bus, nil }})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			err = r.Set(&Config{Link: "tun0", DNS: tc.dns})
			var de *DNSError
			if errors.As(err, &de) != tc.wantErr || (tc.wantErr && !strings.Contains(err.Error(), "unencrypted")) {
				t.Errorf("Set: %v, want an unencrypted-DNS error: %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantCalls, bus.take()); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	os.WriteFile(path, []byte("nameserver 192.168.1.53\n"), 0o644)
	r, err := New(Options{StateDir: dir, Instance: "t", Logf: t.Logf, DNSMode: ModeResolvConf, ResolvConf: path, kernel: lanEnv(t, true)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = r.Set(&Config{Link: "tun0", DNS: dot})
	if de := (*DNSError)(nil); !errors.As(err, &de) || !strings.Contains(err.Error(), "unencrypted") {
		t.Errorf("resolv.conf with DoT: %v, want an unencrypted-DNS error", err)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), "nameserver 10.8.0.53") {
		t.Errorf("resolv.conf not written:\n%s", b)
	}
}

// TestResolvConfReadOnlyDir: with only the file writable (the shipped
// unit's ReadWritePaths=/etc/resolv.conf), it is rewritten in place.
func TestResolvConfReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores directory permissions; the lab test uses a
		// read-only bind mount instead.
		t.Skip("needs a non-root user to make the directory read-only")
	}
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	os.Mkdir(etc, 0o755)
	path := filepath.Join(etc, "resolv.conf")
	orig := "nameserver 192.168.1.53\n"
	os.WriteFile(path, []byte(orig), 0o644)
	os.Chmod(etc, 0o555)
	defer os.Chmod(etc, 0o755)
	r, err := New(Options{StateDir: dir, Instance: "t", Logf: t.Logf, DNSMode: ModeResolvConf, ResolvConf: path, kernel: lanEnv(t, true)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Set(&Config{Link: "tun0", DNS: &DNS{Servers: []netip.Addr{ma("10.8.0.53")}, FullTunnel: true}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), "nameserver 10.8.0.53") {
		t.Errorf("not written:\n%s", b)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != orig {
		t.Errorf("not restored: %q", b)
	}
}
