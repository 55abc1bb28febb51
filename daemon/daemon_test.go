package daemon

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/session"
)

// apiNode parses the contract.
func apiNode(t *testing.T) introspect.Node {
	t.Helper()
	var n introspect.Node
	if err := xml.Unmarshal([]byte(api.Introspection), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func methodSigs(ms []introspect.Method) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		var in, outs []string
		for _, a := range m.Args {
			if a.Direction == "out" {
				outs = append(outs, a.Type)
			} else {
				in = append(in, a.Type)
			}
		}
		out[m.Name] = strings.Join(in, "") + "->" + strings.Join(outs, "")
	}
	return out
}

// TestHandlersMatchContract keeps the Go handlers and net.ovpnd1.xml in step: every method
// the XML declares exists with the same signature, and nothing else is exported.
func TestHandlersMatchContract(t *testing.T) {
	n := apiNode(t)
	impls := map[string]any{api.ManagerInterface: managerIface{}, api.SessionInterface: sessionIface{}}
	for _, iface := range n.Interfaces {
		t.Run(iface.Name, func(t *testing.T) {
			want := methodSigs(iface.Methods)
			got := methodSigs(introspect.Methods(impls[iface.Name]))
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("handler methods %v\nXML methods     %v", got, want)
			}
		})
	}
	t.Run("session properties", func(t *testing.T) {
		var iface introspect.Interface
		for _, i := range n.Interfaces {
			if i.Name == api.SessionInterface {
				iface = i
			}
		}
		o := &object{tun: &fakeTunnel{}, subs: map[string]subscription{}}
		props := o.props()
		if len(props) != len(iface.Properties) {
			t.Errorf("%d properties served, %d declared", len(props), len(iface.Properties))
		}
		for _, p := range iface.Properties {
			v, ok := props[p.Name]
			if !ok {
				t.Errorf("property %s declared but not served", p.Name)
				continue
			}
			if v.Signature().String() != p.Type {
				t.Errorf("property %s has type %s, XML says %s", p.Name, v.Signature(), p.Type)
			}
			emits := true
			for _, a := range p.Annotations {
				if a.Name == "org.freedesktop.DBus.Property.EmitsChangedSignal" && a.Value == "false" {
					emits = false
				}
			}
			if emits == api.CounterProps[p.Name] {
				t.Errorf("property %s: EmitsChangedSignal annotation disagrees with publishProps", p.Name)
			}
		}
	})
}

func TestParseUserPass(t *testing.T) {
	tests := []struct {
		name, in   string
		user, pass string
		ok         bool
	}{
		{"plain", "alice\ns3cret\n", "alice", "s3cret", true},
		{"crlf and bom", "\xef\xbb\xbfbob\r\npw\r\n", "bob", "pw", true},
		{"no newline at end", "a\nb", "a", "b", true},
		{"extra lines ignored", "a\nb\nc\n", "a", "b", true},
		{"password missing", "alice\n", "", "", false},
		{"empty", "", "", "", false},
		{"too long", "a\n" + strings.Repeat("p", api.MaxInputLen+1), "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, p, err := parseUserPass([]byte(tc.in))
			if (err == nil) != tc.ok || u != tc.user || p != tc.pass {
				t.Errorf("parseUserPass(%q) = %q, %q, %v", tc.in, u, p, err)
			}
		})
	}
}

func FuzzParseUserPass(f *testing.F) {
	f.Add([]byte("alice\ns3cret\n"))
	f.Add([]byte("\xef\xbb\xbf\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		u, p, err := parseUserPass(data)
		if err == nil && (u == "" || p == "" || strings.ContainsAny(u+p, "\n")) {
			t.Fatalf("accepted %q as %q/%q", data, u, p)
		}
	})
}

func TestCredentialsFromDirectory(t *testing.T) {
	if cb, err := CredentialsFromDirectory(""); cb != nil || err != nil {
		t.Fatalf("empty dir: %v %v", cb != nil, err)
	}
	dir := t.TempDir()
	if cb, err := CredentialsFromDirectory(dir); cb != nil || err != nil {
		t.Fatalf("no credential: %v %v", cb != nil, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "auth-user-pass"), []byte("u\np\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cb, err := CredentialsFromDirectory(dir)
	if err != nil || cb == nil {
		t.Fatalf("credential present: %v", err)
	}
	u, p, err := cb(context.Background())
	if u != "u" || p != "p" || err != nil {
		t.Errorf("got %q %q %v", u, p, err)
	}
}

// TestPassphraseFromDirectory: the askpass credential's first line (CR dropped) is the
// passphrase; no credential is no reader; an oversized one is refused when read.
func TestPassphraseFromDirectory(t *testing.T) {
	dir := t.TempDir()
	if rd, err := PassphraseFromDirectory(dir); rd != nil || err != nil {
		t.Fatalf("no credential: %v %v", rd != nil, err)
	}
	path := filepath.Join(dir, "askpass")
	if err := os.WriteFile(path, []byte("secret\r\nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rd, err := PassphraseFromDirectory(dir)
	if err != nil || rd == nil {
		t.Fatalf("credential present: %v", err)
	}
	if pass, err := rd("key"); string(pass) != "secret" || err != nil {
		t.Errorf("got %q %v, want secret", pass, err)
	}
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), maxCredentialFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rd("key"); err == nil || !strings.Contains(err.Error(), "askpass is larger") {
		t.Errorf("oversized credential: %v", err)
	}
}

func TestCheckGroupFallback(t *testing.T) {
	a := &BusAuthorizer{
		FallbackGID: func() (uint32, error) { return 990, nil },
		Groups: func(uid uint32) ([]uint32, error) {
			if uid == 1000 {
				return []uint32{1000, 990}, nil
			}
			return []uint32{uid}, nil
		},
	}
	if err := a.checkGroup(1000, api.ActionOverride); !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("the group granted %s: %v", api.ActionOverride, err)
	}
	if err := a.checkGroup(1000, api.ActionStart); err != nil {
		t.Errorf("member of the group refused: %v", err)
	}
	if err := a.checkGroup(1001, api.ActionStart); !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("non-member: %v, want ErrNotAuthorized", err)
	}
	a.FallbackGID = func() (uint32, error) { return 0, errors.New("group ovpnd does not exist") }
	if err := a.checkGroup(1000, api.ActionStart); !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("missing group: %v, want ErrNotAuthorized", err)
	}
}

// fakeTunnel is a Tunnel driven by the test.
type fakeTunnel struct {
	mu       sync.Mutex
	status   session.Status
	subs     []chan session.Event
	watchers []chan struct{}
	stop     chan struct{}
	restarts int
	creds    func(ctx context.Context) (string, string, error)
	gotUser  string
	gotPass  string
}

func newFakeTunnel(opts session.Options) *fakeTunnel {
	return &fakeTunnel{stop: make(chan struct{}), creds: opts.Credentials}
}

func (f *fakeTunnel) Status() session.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeTunnel) Subscribe() (<-chan session.Event, func()) {
	ch := make(chan session.Event, 64)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	return ch, func() {}
}

func (f *fakeTunnel) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.watchers = append(f.watchers, ch)
	f.mu.Unlock()
	return ch, func() {}
}

func (f *fakeTunnel) set(st session.State, reason string) {
	f.mu.Lock()
	f.status.State, f.status.Reason = st, reason
	if st == session.StateConnected {
		f.status.Remote = netip.MustParseAddrPort("192.0.2.1:1194")
		f.status.Proto = "udp"
		f.status.Link = "tun7"
		f.status.Addrs = []netip.Prefix{netip.MustParsePrefix("10.8.0.2/24")}
		f.status.Connected = time.Now()
	}
	for _, ch := range f.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	f.mu.Unlock()
}

func (f *fakeTunnel) log(msg string) {
	f.mu.Lock()
	subs := append([]chan session.Event(nil), f.subs...)
	f.mu.Unlock()
	for _, ch := range subs {
		ch <- session.Event{Kind: session.EventLog, Level: 1, Message: msg, Time: time.Now()}
	}
}

// Run walks through the states; with credentials wanted it asks for them first.
func (f *fakeTunnel) Run(ctx context.Context) error {
	f.set(session.StateConnecting, "udp:192.0.2.1:1194")
	f.log("connecting")
	f.set(session.StateAuthenticating, "")
	if f.creds != nil {
		f.set(session.StateWaitingInput, "")
		// Like the session, Disconnect ends the prompt.
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-f.stop:
				cancel()
			case <-cctx.Done():
			}
		}()
		u, p, err := f.creds(cctx)
		cancel()
		if err != nil {
			f.set(session.StateFailed, err.Error())
			return err
		}
		f.mu.Lock()
		f.gotUser, f.gotPass = u, p
		f.mu.Unlock()
	}
	f.set(session.StateConnected, "")
	select {
	case <-ctx.Done():
	case <-f.stop:
	}
	f.set(session.StateExiting, "disconnect requested")
	f.set(session.StateDisconnected, "")
	return nil
}

func (f *fakeTunnel) Disconnect() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
}

func (f *fakeTunnel) Restart() {
	f.mu.Lock()
	f.restarts++
	f.mu.Unlock()
}

func TestNotifier(t *testing.T) {
	var mu sync.Mutex
	var sent []string
	n := &Notifier{send: func(s string) error {
		mu.Lock()
		sent = append(sent, s)
		mu.Unlock()
		return nil
	}, watchdog: 40 * time.Millisecond}
	ft := newFakeTunnel(session.Options{})
	stop := n.Observe(context.Background(), ft)
	go ft.Run(context.Background())
	waitFor(t, func() bool { return ft.Status().State == session.StateConnected })
	time.Sleep(60 * time.Millisecond) // at least one watchdog ping at 20 ms
	ft.Disconnect()
	waitFor(t, func() bool { return ft.Status().State == session.StateDisconnected })
	time.Sleep(20 * time.Millisecond)
	stop()

	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(sent, "\n")
	readyAt := strings.Index(all, "READY=1")
	connectedAt := strings.Index(all, "STATUS=connected to udp:192.0.2.1:1194 address 10.8.0.2/24")
	if readyAt < 0 || connectedAt < 0 || readyAt < connectedAt {
		t.Errorf("READY=1 must follow the connected status:\n%s", all)
	}
	if strings.Count(all, "READY=1") != 1 || strings.Count(all, "STOPPING=1") != 1 {
		t.Errorf("want exactly one READY=1 and one STOPPING=1:\n%s", all)
	}
	if strings.Index(all, "STATUS=authenticating") > readyAt {
		t.Errorf("READY=1 before authenticating:\n%s", all)
	}
	if !strings.Contains(all, "WATCHDOG=1") {
		t.Errorf("no watchdog ping:\n%s", all)
	}
	if strings.Index(all, "STOPPING=1") < strings.Index(all, "STATUS=exiting: disconnect requested") {
		t.Errorf("STOPPING=1 before the exiting status:\n%s", all)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// privateBus starts a dbus-daemon for the test (any user can run one) and returns its address.
func privateBus(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon not installed")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "bus.conf")
	sock := filepath.Join(dir, "bus")
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
	// The socket file appears at bind(), before listen(): wait until it accepts connections.
	waitFor(t, func() bool {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return "unix:path=" + sock
}

// busAddrs remembers which bus each dialled connection is on.
var busAddrs = map[*dbus.Conn]string{}

// fakeAuth maps bus names to uids and allows actions from a table.
type fakeAuth struct {
	mu      sync.Mutex
	uids    map[string]uint32
	allowed map[uint32]bool
	// deny, when set, refuses actions the table allows.
	deny func(uid uint32, action string) bool
	// others, when set, is the uid of every sender not in uids (busctl's connections).
	others *uint32
}

func (a *fakeAuth) CallerUID(s dbus.Sender) (uint32, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	uid, ok := a.uids[string(s)]
	if !ok {
		if a.others != nil {
			return *a.others, nil
		}
		return 0, fmt.Errorf("unknown sender %s", s)
	}
	return uid, nil
}

func (a *fakeAuth) CheckAction(_ dbus.Sender, uid uint32, action string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if uid == 0 || (a.allowed[uid] && (a.deny == nil || !a.deny(uid, action))) {
		return nil
	}
	return fmt.Errorf("%w: table denies %s to %d", ErrNotAuthorized, action, uid)
}

func dial(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	c, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	busAddrs[c] = addr
	t.Cleanup(func() { c.Close() })
	return c
}

func dbusErrName(err error) string {
	var de dbus.Error
	if errors.As(err, &de) {
		return de.Name
	}
	var dep *dbus.Error
	if errors.As(err, &dep) {
		return dep.Name
	}
	return fmt.Sprint(err)
}

const testProfile = "client\ndev null\nremote 192.0.2.1 1194\nauth-user-pass\n<ca>\n%s</ca>\n<cert>\n%s</cert>\n<key>\n%s</key>\n"

func loadTestProfile(t *testing.T) string {
	t.Helper()
	read := func(n string) string {
		b, err := os.ReadFile(filepath.Join("..", "config", "testdata", "key files", n))
		if err != nil {
			t.Skipf("test key material missing: %v", err)
		}
		return string(b)
	}
	p := fmt.Sprintf(testProfile, read("ca.crt"), read("rsa-client.crt"), read("rsa-client.key"))
	if _, _, err := config.ParseInline("t", []byte(p)); err != nil {
		t.Fatalf("test profile: %v", err)
	}
	return p
}

// TestManagerOverBus drives the manager on a private bus with a fake tunnel: ownership,
// polkit decisions, the input queue, unicast signals, Disconnect, and the error names.
func TestManagerOverBus(t *testing.T) {
	addr := privateBus(t)
	profile := loadTestProfile(t)
	srv := dial(t, addr)
	alice, bob, root := dial(t, addr), dial(t, addr), dial(t, addr)
	auth := &fakeAuth{
		uids:    map[string]uint32{alice.Names()[0]: 1000, bob.Names()[0]: 1001, root.Names()[0]: 0},
		allowed: map[uint32]bool{1000: true},
	}
	var tunMu sync.Mutex
	tunnels := map[string]*fakeTunnel{}
	m, err := NewManager(Options{Conn: srv, Auth: auth, Log: NewLogger(&bytes.Buffer{}), Linger: time.Hour,
		NewTunnel: func(cfg *config.Config, o session.Options) (Tunnel, error) {
			ft := newFakeTunnel(o)
			tunMu.Lock()
			tunnels[o.Name] = ft
			tunMu.Unlock()
			return ft, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.RequestName(api.BusName, dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	mgr := func(c *dbus.Conn) dbus.BusObject { return c.Object(api.BusName, api.ManagerPath) }
	start := func(c *dbus.Conn, name, prof string, opts map[string]dbus.Variant) (dbus.ObjectPath, error) {
		var p dbus.ObjectPath
		err := mgr(c).Call(api.ManagerInterface+".Start", 0, name, prof, opts).Store(&p)
		return p, err
	}
	aliceSigs := make(chan *dbus.Signal, 256)
	alice.Signal(aliceSigs)
	bobSigs := make(chan *dbus.Signal, 256)
	bob.Signal(bobSigs)

	t.Run("refusals", func(t *testing.T) {
		tests := []struct {
			name    string
			conn    *dbus.Conn
			sess    string
			profile string
			opts    map[string]dbus.Variant
			want    string
		}{
			{"bad name", alice, "a/b", profile, nil, api.ErrInvalidArgument},
			{"long name", alice, strings.Repeat("n", 65), profile, nil, api.ErrInvalidArgument},
			{"huge profile", alice, "big", strings.Repeat("#", api.MaxProfileSize+1), nil, api.ErrLimitExceeded},
			{"unknown option", alice, "opt", profile, map[string]dbus.Variant{"x": dbus.MakeVariant(1)}, api.ErrInvalidArgument},
			{"polkit denies", bob, "bobs", profile, nil, api.ErrAccessDenied},
			{"file reference", alice, "shadow", "client\nremote 192.0.2.1\nca /etc/shadow\n", nil, api.ErrInvalidProfile},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if tc.opts == nil {
					tc.opts = map[string]dbus.Variant{}
				}
				_, err := start(tc.conn, tc.sess, tc.profile, tc.opts)
				if got := dbusErrName(err); got != tc.want {
					t.Errorf("error %v, want %s", err, tc.want)
				}
			})
		}
	})

	path, err := start(alice, "work", profile, map[string]dbus.Variant{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(path), api.SessionPathPrefix) || strings.Contains(string(path), "work") {
		t.Errorf("path %s: want an opaque path under %s", path, api.SessionPathPrefix)
	}
	if _, err := start(alice, "work", profile, map[string]dbus.Variant{}); dbusErrName(err) != api.ErrExists {
		t.Errorf("second Start with the same name: %v, want Exists", err)
	}
	// Alice was subscribed by Start: the password prompt reaches her and only her.
	var inputs []struct {
		ID     uint32
		Kind   string
		Prompt string
	}
	deadline := time.After(5 * time.Second)
	for len(inputs) < 1 {
		select {
		case s := <-aliceSigs:
			if s.Name == api.SessionInterface+".InputRequired" {
				var in struct {
					ID     uint32
					Kind   string
					Prompt string
				}
				var secret bool
				var url string
				if err := dbus.Store(s.Body, &in.ID, &in.Kind, &in.Prompt, &secret, &url); err != nil {
					t.Fatal(err)
				}
				inputs = append(inputs, in)
			}
		case <-deadline:
			t.Fatal("no InputRequired signal")
		}
	}
	sobj := func(c *dbus.Conn) dbus.BusObject { return c.Object(api.BusName, path) }

	t.Run("other user is shut out", func(t *testing.T) {
		calls := []struct {
			method string
			args   []any
		}{
			{api.SessionInterface + ".Disconnect", nil},
			{api.SessionInterface + ".Restart", nil},
			{api.SessionInterface + ".LogHistory", nil},
			{api.SessionInterface + ".PendingInput", nil},
			{api.SessionInterface + ".ProvideInput", []any{inputs[0].ID, "x"}},
			{api.SessionInterface + ".Subscribe", nil},
			{api.PropertiesInterface + ".GetAll", []any{api.SessionInterface}},
			{api.PropertiesInterface + ".Get", []any{api.SessionInterface, "State"}},
			{"org.freedesktop.DBus.Introspectable.Introspect", nil},
		}
		for _, c := range calls {
			t.Run(c.method, func(t *testing.T) {
				// Another user's session and a path with no session answer the same.
				err := sobj(bob).Call(c.method, 0, c.args...).Err
				none := bob.Object(api.BusName, dbus.ObjectPath(api.SessionPath("nosuch"))).Call(c.method, 0, c.args...).Err
				want := strings.Replace(fmt.Sprint(none), api.SessionPath("nosuch"), string(path), 1)
				if dbusErrName(err) != api.ErrNotFound || fmt.Sprint(err) != want {
					t.Errorf("%s by another user: %v; on a path with no session: %v", c.method, err, none)
				}
			})
		}
		var p dbus.ObjectPath
		if err := mgr(bob).Call(api.ManagerInterface+".Lookup", 0, "work").Store(&p); dbusErrName(err) != api.ErrNotFound {
			t.Errorf("Lookup by another user: %v, want NotFound", err)
		}
		var list []dbus.ObjectPath
		if err := mgr(bob).Call(api.ManagerInterface+".List", 0).Store(&list); err != nil || len(list) != 0 {
			t.Errorf("List by another user: %v %v", list, err)
		}
	})

	if err := sobj(alice).Call(api.SessionInterface+".ProvideInput", 0, uint32(999), "x").Err; dbusErrName(err) != api.ErrNotWaiting {
		t.Errorf("ProvideInput with an unknown id: %v", err)
	}
	if err := sobj(alice).Call(api.SessionInterface+".ProvideInput", 0, inputs[0].ID, "pw\n").Err; dbusErrName(err) != api.ErrInvalidArgument {
		t.Errorf("ProvideInput with a newline: %v", err)
	}
	if err := sobj(alice).Call(api.SessionInterface+".ProvideInput", 0, inputs[0].ID, strings.Repeat("p", api.MaxInputLen+1)).Err; dbusErrName(err) != api.ErrLimitExceeded {
		t.Errorf("ProvideInput too long: %v", err)
	}
	// The profile has auth-user-pass without a file: username and password are asked.
	var pending []struct {
		ID     uint32
		Kind   string
		Prompt string
		Secret bool
		URL    string
	}
	if err := sobj(alice).Call(api.SessionInterface+".PendingInput", 0).Store(&pending); err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].Kind != api.InputUsername || pending[1].Kind != api.InputPassword || !pending[1].Secret {
		t.Fatalf("pending input %+v", pending)
	}
	for i, v := range []string{"alice", "s3cret"} {
		if err := sobj(alice).Call(api.SessionInterface+".ProvideInput", 0, pending[i].ID, v).Err; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		v, err := sobj(alice).GetProperty(api.SessionInterface + ".State")
		return err == nil && v.Value() == api.StateConnected
	})
	tunMu.Lock()
	ft := tunnels["work"]
	tunMu.Unlock()
	ft.mu.Lock()
	if ft.gotUser != "alice" || ft.gotPass != "s3cret" {
		t.Errorf("tunnel got %q/%q", ft.gotUser, ft.gotPass)
	}
	ft.mu.Unlock()

	var props map[string]dbus.Variant
	if err := sobj(alice).Call(api.PropertiesInterface+".GetAll", 0, api.SessionInterface).Store(&props); err != nil {
		t.Fatal(err)
	}
	if props["Owner"].Value() != uint32(1000) || props["Device"].Value() != "tun7" || props["Remote"].Value() != "udp:192.0.2.1:1194" {
		t.Errorf("properties %v", props)
	}
	var lines []struct {
		T     uint64
		Level uint32
		Msg   string
	}
	if err := sobj(alice).Call(api.SessionInterface+".LogHistory", 0).Store(&lines); err != nil || len(lines) == 0 || lines[0].Msg != "connecting" {
		t.Errorf("LogHistory %v %v", lines, err)
	}
	// Root sees everything.
	var list []dbus.ObjectPath
	if err := mgr(root).Call(api.ManagerInterface+".List", 0).Store(&list); err != nil || len(list) != 1 {
		t.Errorf("root List: %v %v", list, err)
	}

	// Bob never received a signal about Alice's session.
	for len(bobSigs) > 0 {
		s := <-bobSigs
		if strings.HasPrefix(string(s.Path), api.SessionPathPrefix) || s.Path == api.ManagerPath {
			t.Errorf("another user received %s %v", s.Name, s.Body)
		}
	}
	// Alice hears the state change to connected in PropertiesChanged (the observer publishes
	// after the session changed, so the signal may come after GetProperty saw the state).
	sawConnected := false
	sigDeadline := time.After(10 * time.Second)
	for !sawConnected {
		var s *dbus.Signal
		select {
		case s = <-aliceSigs:
		case <-sigDeadline:
			t.Fatal("no PropertiesChanged with State=connected")
		}
		if s.Name == api.PropertiesInterface+".PropertiesChanged" {
			if ch, ok := s.Body[1].(map[string]dbus.Variant); ok {
				if v, ok := ch["State"]; ok && v.Value() == api.StateConnected {
					sawConnected = true
				}
			}
		}
	}

	if err := sobj(alice).Call(api.SessionInterface+".Restart", 0).Err; err != nil {
		t.Errorf("Restart by the owner: %v", err)
	}
	if err := sobj(alice).Call(api.SessionInterface+".Disconnect", 0).Err; err != nil {
		t.Fatalf("Disconnect by the owner: %v", err)
	}
	waitFor(t, func() bool {
		v, err := sobj(alice).GetProperty(api.SessionInterface + ".State")
		return err == nil && v.Value() == api.StateDisconnected
	})

	// Introspection serves the contract's interface.
	var xmlText string
	if err := sobj(alice).Call("org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&xmlText); err != nil {
		t.Fatal(err)
	}
	var node introspect.Node
	if err := xml.Unmarshal([]byte(xmlText), &node); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range node.Interfaces {
		names = append(names, i.Name)
	}
	sort.Strings(names)
	if !strings.Contains(strings.Join(names, " "), api.SessionInterface) {
		t.Errorf("introspection interfaces %v", names)
	}
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
