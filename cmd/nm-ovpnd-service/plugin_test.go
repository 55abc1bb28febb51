package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/internal/nmvpn"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// privateBus starts a dbus-daemon for the test and returns its address.
func privateBus(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon not installed")
	}
	dir := t.TempDir()
	conf, sock := filepath.Join(dir, "bus.conf"), filepath.Join(dir, "bus")
	err := os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><auth>EXTERNAL</auth><listen>unix:path=`+sock+`</listen>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>
</busconfig>`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, "the test bus", func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "unix:path=" + sock
}

func dial(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	c, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	testBusAddrMu.Lock()
	testBusAddr[c] = addr
	testBusAddrMu.Unlock()
	return c
}

var (
	testBusAddrMu sync.Mutex
	testBusAddr   = map[*dbus.Conn]string{}
)

// fakeDaemon is ovpnd's side: Manager.Start and one session whose state the test drives.
type fakeDaemon struct {
	t    *testing.T
	conn *dbus.Conn

	mu         sync.Mutex
	started    []startCall
	caller     string
	props      map[string]dbus.Variant
	pending    []api.InputEntry
	provided   map[uint32]string
	disconnect int
}

type startCall struct {
	name, profile string
	options       map[string]dbus.Variant
}

const fakeSession = dbus.ObjectPath("/net/ovpnd1/session/s1")

type fakeManager struct{ d *fakeDaemon }

func (m fakeManager) Start(sender dbus.Sender, name, profile string, options map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	m.d.started = append(m.d.started, startCall{name, profile, options})
	m.d.caller = string(sender)
	return fakeSession, nil
}

type fakeSessionIface struct{ d *fakeDaemon }

func (s fakeSessionIface) PendingInput() ([]api.InputEntry, *dbus.Error) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	return append([]api.InputEntry{}, s.d.pending...), nil
}

func (s fakeSessionIface) ProvideInput(id uint32, v string) *dbus.Error {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	s.d.provided[id] = v
	for i, p := range s.d.pending {
		if p.ID == id {
			s.d.pending = append(s.d.pending[:i], s.d.pending[i+1:]...)
			break
		}
	}
	return nil
}

func (s fakeSessionIface) Disconnect() *dbus.Error {
	s.d.mu.Lock()
	s.d.disconnect++
	s.d.mu.Unlock()
	go s.d.set(map[string]dbus.Variant{api.PropState: dbus.MakeVariant(api.StateDisconnected)})
	return nil
}

type fakeProps struct{ d *fakeDaemon }

func (p fakeProps) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	out := map[string]dbus.Variant{}
	for k, v := range p.d.props {
		out[k] = v
	}
	return out, nil
}

func newFakeDaemon(t *testing.T, addr string) *fakeDaemon {
	d := &fakeDaemon{t: t, conn: dial(t, addr), provided: map[uint32]string{},
		props: map[string]dbus.Variant{api.PropState: dbus.MakeVariant(api.StateIdle), api.PropNetworkConfig: dbus.MakeVariant(map[string]dbus.Variant{})}}
	for _, e := range []struct {
		v     any
		path  dbus.ObjectPath
		iface string
	}{{fakeManager{d}, api.ManagerPath, api.ManagerInterface}, {fakeSessionIface{d}, fakeSession, api.SessionInterface}, {fakeProps{d}, fakeSession, api.PropertiesInterface}} {
		if err := d.conn.Export(e.v, e.path, e.iface); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.conn.RequestName(api.BusName, dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	return d
}

// unicast sends a session signal to the plugin only, as ovpnd does.
func unicast(c *dbus.Conn, dest string, member, iface string, body ...any) error {
	msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath: dbus.MakeVariant(fakeSession), dbus.FieldInterface: dbus.MakeVariant(iface),
		dbus.FieldMember: dbus.MakeVariant(member), dbus.FieldDestination: dbus.MakeVariant(dest),
	}, Body: body}
	if len(body) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
	}
	return c.Send(msg, nil).Err
}

// set changes session properties and announces them to the caller of Start.
func (d *fakeDaemon) set(ch map[string]dbus.Variant) {
	d.mu.Lock()
	for k, v := range ch {
		d.props[k] = v
	}
	caller := d.caller
	d.mu.Unlock()
	if err := unicast(d.conn, caller, api.SignalPropertiesChanged, api.PropertiesInterface, api.SessionInterface, ch, []string{}); err != nil {
		d.t.Errorf("PropertiesChanged: %v", err)
	}
}

func (d *fakeDaemon) ask(entries ...api.InputEntry) {
	d.mu.Lock()
	d.pending = append(d.pending, entries...)
	caller := d.caller
	d.mu.Unlock()
	d.set(map[string]dbus.Variant{api.PropState: dbus.MakeVariant(api.StateWaitingInput)})
	for _, e := range entries {
		if err := unicast(d.conn, caller, api.SignalInputRequired, api.SessionInterface, e.ID, e.Kind, e.Prompt, e.Secret, e.URL); err != nil {
			d.t.Errorf("InputRequired: %v", err)
		}
	}
}

// fakeNM is NetworkManager's side: it calls the plugin and records its signals.
type fakeNM struct {
	conn *dbus.Conn
	mu   sync.Mutex
	sigs []*dbus.Signal
}

func newFakeNM(t *testing.T, addr string) *fakeNM {
	n := &fakeNM{conn: dial(t, addr)}
	if err := n.conn.AddMatchSignal(dbus.WithMatchInterface(pluginIface)); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 256)
	n.conn.Signal(ch)
	go func() {
		for s := range ch {
			if s.Path == pluginPath {
				n.mu.Lock()
				n.sigs = append(n.sigs, s)
				n.mu.Unlock()
			}
		}
	}()
	return n
}

func (n *fakeNM) plugin() dbus.BusObject { return n.conn.Object(nmvpn.ServiceName, pluginPath) }

// seen lists the signals so far as "Member(arg)" for states and failures, "Member" else.
func (n *fakeNM) seen() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, s := range n.sigs {
		m := strings.TrimPrefix(s.Name, pluginIface+".")
		if m == "StateChanged" || m == "Failure" {
			m = fmt.Sprintf("%s(%v)", m, s.Body[0])
		}
		out = append(out, m)
	}
	return out
}

func (n *fakeNM) last(member string) map[string]dbus.Variant {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := len(n.sigs) - 1; i >= 0; i-- {
		if n.sigs[i].Name == pluginIface+"."+member {
			m, _ := n.sigs[i].Body[0].(map[string]dbus.Variant)
			return m
		}
	}
	return nil
}

func (n *fakeNM) waitSeen(t *testing.T, want string) {
	t.Helper()
	waitFor(t, "signal "+want, func() bool {
		for _, s := range n.seen() {
			if s == want {
				return true
			}
		}
		return false
	})
}

type testPlugin struct {
	p      *plugin
	d      *fakeDaemon
	nm     *fakeNM
	logs   *syncBuf
	served chan int
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) logf(f string, a ...any) {
	s.mu.Lock()
	fmt.Fprintf(&s.b, f+"\n", a...)
	s.mu.Unlock()
}

func (s *syncBuf) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startPlugin runs the plugin on a private bus beside a fake ovpnd and a fake
// NetworkManager; the NM connection counts as root, every other as uid 1000.
func startPlugin(t *testing.T) *testPlugin {
	addr := privateBus(t)
	tp := &testPlugin{d: newFakeDaemon(t, addr), nm: newFakeNM(t, addr), logs: &syncBuf{}, served: make(chan int, 1)}
	conn := dial(t, addr)
	tp.p = newPlugin(conn, tp.logs.logf)
	nmName := tp.nm.conn.Names()[0]
	tp.p.callerUID = func(s string) (uint32, error) {
		if s == nmName {
			return 0, nil
		}
		return 1000, nil
	}
	if err := tp.p.export(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.RequestName(nmvpn.ServiceName, dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	go func() { tp.served <- tp.p.serve(tp.logs.logf) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plugin log:\n%s", tp.logs)
		}
	})
	return tp
}

const testData = "client\nremote vpn.example 1194\nauth-user-pass\n<ca>\nCA\n</ca>\n"

func testConn(secrets map[string]string) map[string]map[string]dbus.Variant {
	return map[string]map[string]dbus.Variant{
		"connection": {"id": dbus.MakeVariant("work"), "uuid": dbus.MakeVariant("0b4c4f4e-2a33-4d7e-9a55-3f0e8a1d2c11"), "type": dbus.MakeVariant("vpn")},
		"vpn": {
			"service-type": dbus.MakeVariant(nmvpn.ServiceName),
			"data":         dbus.MakeVariant(map[string]string{nmvpn.DataProfile: testData, nmvpn.DataUsername: "alice"}),
			"secrets":      dbus.MakeVariant(secrets),
		},
	}
}

func testNetConfig(gen uint64) *api.NetConfig {
	return &api.NetConfig{Generation: gen, Device: "tun0", MTU: 1500, Server: mustAddr("198.18.0.1"),
		Addrs:    []api.NetAddr{{Prefix: mustPrefix("10.8.0.2/24")}, {Prefix: mustPrefix("fd00::1000/64")}},
		Gateway4: mustAddr("10.8.0.1"),
		Routes: []api.NetRoute{
			{Dst: mustPrefix("10.20.0.0/16"), Gateway: mustAddr("10.8.0.1")},
			{Dst: mustPrefix("192.0.2.0/24"), ViaNetGateway: true},
			{Dst: mustPrefix("fd01::/64")},
		},
		Redirect4: true, RedirectFlags: []string{"def1"},
		DNS:           []netip.Addr{mustAddr("10.8.0.1"), mustAddr("fd00::53")},
		SearchDomains: []string{"corp.example"},
	}
}

func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func u32(s string) uint32 { b := mustAddr(s).As4(); return binary.NativeEndian.Uint32(b[:]) }

// TestPluginConnectSequence is NetworkManager's call sequence against the plugin: secrets,
// Connect, credentials answered from vpn.data and vpn.secrets, the configuration mapped,
// a reconnect through STARTING, and Disconnect.
func TestPluginConnectSequence(t *testing.T) {
	tp := startPlugin(t)
	var setting string
	if err := tp.nm.plugin().Call(pluginIface+".NeedSecrets", 0, testConn(map[string]string{})).Store(&setting); err != nil || setting != "vpn" {
		t.Fatalf("NeedSecrets without a password: %q, %v", setting, err)
	}
	secrets := map[string]string{nmvpn.SecretPassword: "s3cret", "inline-key": "PRIVATE KEY\n"}
	if err := tp.nm.plugin().Call(pluginIface+".NeedSecrets", 0, testConn(secrets)).Store(&setting); err != nil || setting != "" {
		t.Fatalf("NeedSecrets with a password: %q, %v", setting, err)
	}
	if err := tp.nm.plugin().Call(pluginIface+".ConnectInteractive", 0, testConn(secrets), map[string]dbus.Variant{}).Err; err != nil {
		t.Fatal(err)
	}
	tp.d.mu.Lock()
	st := tp.d.started
	tp.d.mu.Unlock()
	if len(st) != 1 || st[0].name != "nm-0b4c4f4e-2a33-4d7e-9a55-3f0e8a1d2c11" || st[0].options[api.StartOptionExternalNetwork].Value() != true {
		t.Fatalf("Start calls %+v", st)
	}
	if !strings.Contains(st[0].profile, "<key>\nPRIVATE KEY\n</key>") || !strings.Contains(st[0].profile, "auth-user-pass") {
		t.Errorf("the profile ovpnd got:\n%s", st[0].profile)
	}
	tp.nm.waitSeen(t, "StateChanged(3)")

	tp.d.ask(api.InputEntry{ID: 1, Kind: api.InputUsername, Prompt: "Auth Username"}, api.InputEntry{ID: 2, Kind: api.InputPassword, Prompt: "Auth Password", Secret: true})
	waitFor(t, "the credentials", func() bool {
		tp.d.mu.Lock()
		defer tp.d.mu.Unlock()
		return len(tp.d.provided) == 2
	})
	tp.d.mu.Lock()
	if tp.d.provided[1] != "alice" || tp.d.provided[2] != "s3cret" {
		t.Errorf("answers %v", tp.d.provided)
	}
	tp.d.mu.Unlock()

	tp.d.set(map[string]dbus.Variant{api.PropState: dbus.MakeVariant(api.StateConnected), api.PropNetworkConfig: dbus.MakeVariant(testNetConfig(1).Variants())})
	tp.nm.waitSeen(t, "StateChanged(4)")
	if got, want := strings.Join(tp.nm.seen(), " "), "StateChanged(3) Config Ip4Config Ip6Config StateChanged(4)"; got != want {
		t.Errorf("signals %s, want %s", got, want)
	}
	cfg, ip4, ip6 := tp.nm.last("Config"), tp.nm.last("Ip4Config"), tp.nm.last("Ip6Config")
	if cfg["tundev"].Value() != "tun0" || cfg["gateway"].Value() != u32("198.18.0.1") || cfg["has-ip6"].Value() != true || cfg["mtu"].Value() != uint32(1500) {
		t.Errorf("Config %v", cfg)
	}
	if ip4["address"].Value() != u32("10.8.0.2") || ip4["prefix"].Value() != uint32(24) || ip4["never-default"].Value() != false || ip4["internal-gateway"].Value() != u32("10.8.0.1") {
		t.Errorf("Ip4Config %v", ip4)
	}
	if r := ip4["routes"].Value().([][]uint32); len(r) != 1 || r[0][0] != u32("10.20.0.0") || r[0][1] != 16 {
		t.Errorf("IPv4 routes %v (the net_gateway route must be dropped)", r)
	}
	if d := ip4["dns"].Value().([]uint32); len(d) != 1 || d[0] != u32("10.8.0.1") {
		t.Errorf("IPv4 DNS %v", d)
	}
	if d := ip4["domains"].Value().([]string); len(d) != 1 || d[0] != "corp.example" {
		t.Errorf("domains %v", d)
	}
	if ip6["never-default"].Value() != true || len(ip6["dns"].Value().([][]byte)) != 1 {
		t.Errorf("Ip6Config %v", ip6)
	}
	if !strings.Contains(tp.logs.String(), "route 192.0.2.0/24 via net_gateway: its next hop is outside the tunnel") {
		t.Errorf("dropped route not logged:\n%s", tp.logs)
	}

	// A reconnect: activating again, then the new configuration.
	tp.d.set(map[string]dbus.Variant{api.PropState: dbus.MakeVariant(api.StateReconnecting)})
	waitFor(t, "STARTING after the reconnect", func() bool { return len(tp.nm.seen()) == 6 })
	tp.d.set(map[string]dbus.Variant{api.PropState: dbus.MakeVariant(api.StateConnected), api.PropNetworkConfig: dbus.MakeVariant(testNetConfig(2).Variants())})
	waitFor(t, "STARTED after the reconnect", func() bool { return len(tp.nm.seen()) == 10 })
	if got, want := strings.Join(tp.nm.seen()[5:], " "), "StateChanged(3) Config Ip4Config Ip6Config StateChanged(4)"; got != want {
		t.Errorf("reconnect signals %s, want %s", got, want)
	}

	if err := tp.nm.plugin().Call(pluginIface+".Disconnect", 0).Err; err != nil {
		t.Fatal(err)
	}
	tp.nm.waitSeen(t, "StateChanged(6)")
	select {
	case code := <-tp.served:
		if code != 0 {
			t.Errorf("exit code %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the plugin did not finish after Disconnect")
	}
	tp.d.mu.Lock()
	defer tp.d.mu.Unlock()
	if tp.d.disconnect != 1 {
		t.Errorf("session Disconnect called %d times", tp.d.disconnect)
	}
}

// TestPluginLoginFailure: a refused password is Failure(LOGIN_FAILED) and STOPPED, which
// NetworkManager shows as invalid secrets; a second request for the password is not
// answered with the same stored one.
func TestPluginLoginFailure(t *testing.T) {
	tp := startPlugin(t)
	secrets := map[string]string{nmvpn.SecretPassword: "wrong"}
	if err := tp.nm.plugin().Call(pluginIface+".Connect", 0, testConn(secrets)).Err; err != nil {
		t.Fatal(err)
	}
	tp.nm.waitSeen(t, "StateChanged(3)")
	tp.d.ask(api.InputEntry{ID: 1, Kind: api.InputUsername}, api.InputEntry{ID: 2, Kind: api.InputPassword, Secret: true})
	waitFor(t, "the credentials", func() bool { tp.d.mu.Lock(); defer tp.d.mu.Unlock(); return len(tp.d.provided) == 2 })
	// auth-retry interact: the server refused, the session asks again.
	tp.d.ask(api.InputEntry{ID: 3, Kind: api.InputPassword, Prompt: "Auth Password", Secret: true})
	tp.nm.waitSeen(t, "Failure(0)")
	tp.nm.waitSeen(t, "StateChanged(6)")
	tp.d.mu.Lock()
	_, again := tp.d.provided[3]
	tp.d.mu.Unlock()
	if again {
		t.Error("the refused password was given a second time")
	}
	select {
	case <-tp.served:
	case <-time.After(5 * time.Second):
		t.Fatal("the plugin did not finish")
	}
}

// TestPluginAuthFailedState: a session that fails with AUTH_FAILED is LOGIN_FAILED; any
// other failure CONNECT_FAILED.
func TestPluginAuthFailedState(t *testing.T) {
	for _, tc := range []struct {
		reason string
		want   string
	}{{"authentication failed: AUTH_FAILED", "Failure(0)"}, {"all connection attempts failed", "Failure(1)"}} {
		tp := startPlugin(t)
		if err := tp.nm.plugin().Call(pluginIface+".Connect", 0, testConn(map[string]string{nmvpn.SecretPassword: "x"})).Err; err != nil {
			t.Fatal(err)
		}
		tp.nm.waitSeen(t, "StateChanged(3)")
		tp.d.set(map[string]dbus.Variant{api.PropState: dbus.MakeVariant(api.StateFailed), api.PropStateReason: dbus.MakeVariant(tc.reason)})
		tp.nm.waitSeen(t, tc.want)
		tp.nm.waitSeen(t, "StateChanged(6)")
	}
}

// TestPluginNetworkManagerLeaves: when NetworkManager goes away (restart) without calling
// Disconnect, the plugin ends the session and exits: no orphaned tunnel.
func TestPluginNetworkManagerLeaves(t *testing.T) {
	tp := startPlugin(t)
	if err := tp.nm.plugin().Call(pluginIface+".Connect", 0, testConn(map[string]string{nmvpn.SecretPassword: "x"})).Err; err != nil {
		t.Fatal(err)
	}
	tp.d.set(map[string]dbus.Variant{api.PropState: dbus.MakeVariant(api.StateConnected), api.PropNetworkConfig: dbus.MakeVariant(testNetConfig(1).Variants())})
	tp.nm.waitSeen(t, "StateChanged(4)")
	tp.nm.conn.Close()
	select {
	case <-tp.served:
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin did not finish after NetworkManager left")
	}
	tp.d.mu.Lock()
	defer tp.d.mu.Unlock()
	if tp.d.disconnect != 1 {
		t.Errorf("session Disconnect called %d times", tp.d.disconnect)
	}
}

// TestPluginRefusesOthers: only root may call the plugin, and session signals from anyone
// but ovpnd are ignored.
func TestPluginRefusesOthers(t *testing.T) {
	tp := startPlugin(t)
	other := dial(t, busAddress(t, tp.d.conn))
	obj := other.Object(nmvpn.ServiceName, pluginPath)
	for _, call := range []*dbus.Call{
		obj.Call(pluginIface+".Connect", 0, testConn(map[string]string{})),
		obj.Call(pluginIface+".Disconnect", 0),
		obj.Call(pluginIface+".NewSecrets", 0, testConn(map[string]string{})),
	} {
		if call.Err == nil || !strings.Contains(call.Err.Error(), "only root") {
			t.Errorf("%s from uid 1000: %v", call.Method, call.Err)
		}
	}
	if err := tp.nm.plugin().Call(pluginIface+".Connect", 0, testConn(map[string]string{nmvpn.SecretPassword: "x"})).Err; err != nil {
		t.Fatal(err)
	}
	tp.nm.waitSeen(t, "StateChanged(3)")
	// A spoofed "connected" with a configuration that would take the default route.
	tp.d.mu.Lock()
	caller := tp.d.caller
	tp.d.mu.Unlock()
	if err := unicast(other, caller, api.SignalPropertiesChanged, api.PropertiesInterface, api.SessionInterface,
		map[string]dbus.Variant{api.PropState: dbus.MakeVariant(api.StateConnected), api.PropNetworkConfig: dbus.MakeVariant(testNetConfig(9).Variants())}, []string{}); err != nil {
		t.Fatal(err)
	}
	tp.d.set(map[string]dbus.Variant{api.PropStateReason: dbus.MakeVariant("still connecting")})
	time.Sleep(100 * time.Millisecond)
	for _, s := range tp.nm.seen() {
		if s == "Config" || s == "StateChanged(4)" {
			t.Fatalf("a spoofed signal reached NetworkManager: %v", tp.nm.seen())
		}
	}
}

// busAddress is the address of the bus c is on.
func busAddress(t *testing.T, c *dbus.Conn) string {
	t.Helper()
	testBusAddrMu.Lock()
	defer testBusAddrMu.Unlock()
	return testBusAddr[c]
}
