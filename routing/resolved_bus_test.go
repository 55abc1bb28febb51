package routing

import (
	"bufio"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"
)

// privateBus starts a dbus-daemon of its own and returns its address.
func privateBus(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("dbus-daemon not installed")
	}
	// The stock session configuration, listening on a socket of our own.
	cmd := exec.Command(bin, "--session", "--address=unix:path="+filepath.Join(t.TempDir(), "bus"), "--nofork", "--print-address")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skip("cannot start dbus-daemon:", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal("reading bus address:", err)
	}
	return strings.TrimSpace(line)
}

// fakeResolved serves org.freedesktop.resolve1.Manager on a bus and records
// what it is told, decoded from the wire.
type fakeResolved struct {
	conn  *dbus.Conn
	mu    sync.Mutex
	calls []string
}

func (f *fakeResolved) add(s string) *dbus.Error {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
	return nil
}

func (f *fakeResolved) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func startFakeResolved(t *testing.T, addr string, withDefaultRoute bool) *fakeResolved {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeResolved{conn: conn}
	methods := map[string]any{
		"SetLinkDomains": func(i int32, doms []struct {
			Domain      string
			RoutingOnly bool
		}) *dbus.Error {
			var s []string
			for _, d := range doms {
				s = append(s, fmt.Sprintf("%s/%v", d.Domain, d.RoutingOnly))
			}
			return f.add(fmt.Sprintf("SetLinkDomains %d %v", i, s))
		},
		"SetLinkDNS": func(i int32, addrs []struct {
			Family  int32
			Address []byte
		}) *dbus.Error {
			var s []string
			for _, a := range addrs {
				ip, _ := netip.AddrFromSlice(a.Address)
				s = append(s, fmt.Sprintf("%d/%v", a.Family, ip))
			}
			return f.add(fmt.Sprintf("SetLinkDNS %d %v", i, s))
		},
		"RevertLink": func(i int32) *dbus.Error { return f.add(fmt.Sprintf("RevertLink %d", i)) },
	}
	if withDefaultRoute {
		methods["SetLinkDefaultRoute"] = func(i int32, b bool) *dbus.Error {
			return f.add(fmt.Sprintf("SetLinkDefaultRoute %d %v", i, b))
		}
	}
	if err := conn.ExportMethodTable(methods, resolvedPath, resolvedIface); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(resolvedName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName: %v %v", reply, err)
	}
	return f
}

// TestResolvedOverPrivateBus runs the godbus client against a fake resolved
// on a real dbus-daemon: argument encoding, call order, revert, and a
// restart of resolved (by an implementation without SetLinkDefaultRoute).
func TestResolvedOverPrivateBus(t *testing.T) {
	addr := privateBus(t)
	srv := startFakeResolved(t, addr, true)
	dial := func() (resolvedBus, error) {
		conn, err := dbus.Connect(addr)
		if err != nil {
			return nil, err
		}
		return newGodbusResolved(conn, true)
	}
	r, err := New(Options{StateDir: t.TempDir(), Instance: "t", Logf: t.Logf, ResolvConf: filepath.Join(t.TempDir(), "absent", "r"),
		kernel: lanEnv(t, true), dialBus: dial, DNSMode: ModeResolved})
	if err != nil {
		t.Fatal(err)
	}
	d := &DNS{Servers: []netip.Addr{ma("10.8.0.53"), ma("fd00:8::53")}, Search: []string{"corp.example"}, FullTunnel: true}
	if err := r.Set(&Config{Link: "tun0", DNS: d}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"SetLinkDomains 5 [corp.example/false ./true]",
		"SetLinkDefaultRoute 5 true",
		"SetLinkDNS 5 [2/10.8.0.53 10/fd00:8::53]",
	}
	if diff := cmp.Diff(want, srv.take()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	// resolved restarts as an older version.
	srv.conn.Close()
	srv2 := startFakeResolved(t, addr, false)
	defer srv2.conn.Close()
	wantAgain := []string{want[0], want[2]}
	var got []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		got = append(got, srv2.take()...)
		if len(got) >= len(wantAgain) {
			break
		}
	}
	if diff := cmp.Diff(wantAgain, got); diff != "" {
		t.Errorf("after restart (-want +got):\n%s", diff)
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"RevertLink 5"}, srv2.take()); diff != "" {
		t.Errorf("Close (-want +got):\n%s", diff)
	}
}
