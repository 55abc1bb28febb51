package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/session"
)

// TestStateVocabulary pins every session state to its D-Bus word: one vocabulary from the
// session to the bus, sd_notify and the journal.
func TestStateVocabulary(t *testing.T) {
	want := map[session.State]string{
		session.StateIdle:           api.StateIdle,
		session.StateResolving:      api.StateResolving,
		session.StateConnecting:     api.StateConnecting,
		session.StateTLSHandshake:   api.StateTLSHandshake,
		session.StateAuthenticating: api.StateAuthenticating,
		session.StateAuthPending:    api.StateAuthPending,
		session.StateWaitingInput:   api.StateWaitingInput,
		session.StateConnected:      api.StateConnected,
		session.StateReconnecting:   api.StateReconnecting,
		session.StateExiting:        api.StateExiting,
		session.StateDisconnected:   api.StateDisconnected,
		session.StateFailed:         api.StateFailed,
	}
	all := session.States()
	if len(all) != len(want) {
		t.Fatalf("session has %d states, the contract %d", len(all), len(want))
	}
	for _, st := range all {
		w, ok := want[st]
		if !ok || stateName(st) != w {
			t.Errorf("session state %d is %q on the bus, want %q", st, stateName(st), w)
		}
		if st.Finished() != api.StateFinished(w) {
			t.Errorf("state %s: finished disagrees", w)
		}
	}
}

// TestBusErrorUTF8 is the 4096-byte error with a multi-byte character at the cut: godbus
// refuses to send invalid UTF-8, and the caller then waited for the D-Bus timeout.
func TestBusErrorUTF8(t *testing.T) {
	for pad := 4093; pad <= 4096; pad++ {
		msg := strings.Repeat("a", pad) + "é€😀" + strings.Repeat("b", 10)
		e := busError(api.ErrFailed, "%s", msg)
		text := e.Body[0].(string)
		if !utf8.ValidString(text) || len(text) > maxErrorText+3 {
			t.Errorf("pad %d: %d bytes, valid %v", pad, len(text), utf8.ValidString(text))
		}
	}
	// Invalid UTF-8 in an argument is repaired, and a huge argument is clipped before the
	// message is built.
	e := busError(api.ErrFailed, "bad %s", "\xff\xfe"+strings.Repeat("x", 1<<20))
	if text := e.Body[0].(string); !utf8.ValidString(text) || len(text) > maxErrorText+3 {
		t.Errorf("%d bytes, valid %v", len(text), utf8.ValidString(text))
	}
}

// testManager is a manager on a private bus with fake tunnels and three callers.
type testManager struct {
	m                     *Manager
	srv, alice, bob, root *dbus.Conn
	auth                  *fakeAuth
}

func newTestManager(t *testing.T, linger time.Duration, newTunnel TunnelFactory) *testManager {
	t.Helper()
	addr := privateBus(t)
	tm := &testManager{srv: dial(t, addr), alice: dial(t, addr), bob: dial(t, addr), root: dial(t, addr)}
	tm.auth = &fakeAuth{
		uids:    map[string]uint32{tm.alice.Names()[0]: 1000, tm.bob.Names()[0]: 1001, tm.root.Names()[0]: 0},
		allowed: map[uint32]bool{1000: true, 1001: true},
	}
	if newTunnel == nil {
		newTunnel = func(cfg *config.Config, o session.Options) (Tunnel, error) { return newFakeTunnel(o), nil }
	}
	m, err := NewManager(Options{Conn: tm.srv, Auth: tm.auth, Log: NewLogger(&bytes.Buffer{}), Linger: linger, NewTunnel: newTunnel})
	if err != nil {
		t.Fatal(err)
	}
	tm.m = m
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	if _, err := tm.srv.RequestName(api.BusName, dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	return tm
}

// dialAs adds a connection with the given uid.
func (tm *testManager) dialAs(t *testing.T, addr string, uid uint32) *dbus.Conn {
	c := dial(t, addr)
	tm.auth.mu.Lock()
	tm.auth.uids[c.Names()[0]] = uid
	tm.auth.mu.Unlock()
	return c
}

// TestSpoofedNameOwnerChanged: another user sends the daemon a unicast NameOwnerChanged
// claiming that Alice left the bus. Before, the daemon believed it and dropped her
// subscription, so `ovpnctl up` never heard "connected".
func TestSpoofedNameOwnerChanged(t *testing.T) {
	tm := newTestManager(t, time.Hour, nil)
	profile := loadTestProfile(t)
	var p dbus.ObjectPath
	if err := tm.alice.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".Start", 0, "work", profile, map[string]dbus.Variant{}).Store(&p); err != nil {
		t.Fatal(err)
	}
	if err := tm.alice.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".Subscribe", 0).Err; err != nil {
		t.Fatal(err)
	}
	victim := tm.alice.Names()[0]
	spoof := &dbus.Message{
		Type: dbus.TypeSignal,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:        dbus.MakeVariant(dbus.ObjectPath("/org/freedesktop/DBus")),
			dbus.FieldInterface:   dbus.MakeVariant("org.freedesktop.DBus"),
			dbus.FieldMember:      dbus.MakeVariant("NameOwnerChanged"),
			dbus.FieldDestination: dbus.MakeVariant(tm.srv.Names()[0]),
			dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf("", "", "")),
		},
		Body: []any{victim, victim, ""},
	}
	for i := 0; i < 3; i++ {
		if call := tm.bob.Send(spoof, nil); call != nil && call.Err != nil {
			t.Fatal(call.Err)
		}
	}
	// A round trip to the daemon after the spoofed signals: the bus delivers in order, so
	// the listener has seen them by the time a later one from the bus itself arrives.
	// Make the bus itself announce a departure to be sure the listener ran.
	extra := dial(t, tm.busAddr(t))
	tm.auth.mu.Lock()
	tm.auth.uids[extra.Names()[0]] = 1001
	tm.auth.mu.Unlock()
	if err := extra.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".Subscribe", 0).Err; err != nil {
		t.Fatal(err)
	}
	extraName := extra.Names()[0]
	extra.Close()
	waitFor(t, func() bool {
		tm.m.mu.Lock()
		defer tm.m.mu.Unlock()
		_, ok := tm.m.subs[extraName]
		return !ok
	})
	tm.m.mu.Lock()
	_, mgrSub := tm.m.subs[victim]
	o := tm.m.sessions[sessionKey{1000, "work"}]
	tm.m.mu.Unlock()
	o.mu.Lock()
	_, sessSub := o.subs[victim]
	o.mu.Unlock()
	if !mgrSub || !sessSub {
		t.Errorf("a spoofed NameOwnerChanged ended the victim's subscriptions (manager %v, session %v)", mgrSub, sessSub)
	}
}

func (tm *testManager) busAddr(t *testing.T) string {
	t.Helper()
	return busAddrs[tm.srv]
}

// TestSubscribeExhaustion: one uid with many connections cannot fill the subscription
// tables; another user still gets in.
func TestSubscribeExhaustion(t *testing.T) {
	tm := newTestManager(t, time.Hour, nil)
	addr := tm.busAddr(t)
	mgr := func(c *dbus.Conn) dbus.BusObject { return c.Object(api.BusName, api.ManagerPath) }
	refused := 0
	for i := 0; i < api.MaxSubscribers*4+1; i++ {
		c := tm.dialAs(t, addr, 1001)
		if err := mgr(c).Call(api.ManagerInterface+".Subscribe", 0).Err; err != nil {
			if dbusErrName(err) != api.ErrLimitExceeded {
				t.Fatalf("Subscribe: %v", err)
			}
			refused++
		}
		if refused > 0 {
			break
		}
	}
	if refused == 0 {
		t.Fatal("one uid filled the whole subscriber table")
	}
	if err := mgr(tm.alice).Call(api.ManagerInterface+".Subscribe", 0).Err; err != nil {
		t.Errorf("another user cannot subscribe: %v", err)
	}
	// The same per session.
	profile := loadTestProfile(t)
	var p dbus.ObjectPath
	if err := mgr(tm.alice).Call(api.ManagerInterface+".Start", 0, "work", profile, map[string]dbus.Variant{}).Store(&p); err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := 0; i < api.MaxSubscribers+1; i++ {
		c := tm.dialAs(t, addr, 1000)
		if err := c.Object(api.BusName, p).Call(api.SessionInterface+".Subscribe", 0).Err; err != nil {
			if dbusErrName(err) != api.ErrLimitExceeded {
				t.Fatalf("Subscribe: %v", err)
			}
			break
		}
		n++
	}
	if n >= api.MaxSubscribers {
		t.Errorf("one uid took %d of the session's %d subscriber slots", n+1, api.MaxSubscribers)
	}
	if err := tm.root.Object(api.BusName, p).Call(api.SessionInterface+".Subscribe", 0).Err; err != nil {
		t.Errorf("root cannot subscribe: %v", err)
	}
}

// TestPasswordAcrossReconnect: a reconnect (hand-window) asks again while the first prompt
// is open. Before, both waited on one shared wake-up, the stale one could take it and the
// live one timed out, losing the password. Now the newer request takes over the open inputs
// and the answer given for the first prompt reaches it.
func TestPasswordAcrossReconnect(t *testing.T) {
	for round := 0; round < 50; round++ {
		o := newObject(nil, "work", 1000, &config.Config{AuthUserPass: &config.AuthUserPass{Ask: true}}, NewLogger(&bytes.Buffer{}))
		ctx1, cancel1 := context.WithCancel(context.Background())
		first := make(chan error, 1)
		go func() { _, _, err := o.askCredentials(ctx1); first <- err }()
		ids := waitPending(t, o, 2)
		// The user types the username for the first prompt; then a reconnect asks again,
		// and the session cancels the first request, as it does at the end of an attempt.
		if derr := o.provide(ids[0], "alice"); derr != nil {
			t.Fatal(derr)
		}
		type answer struct {
			user, pass string
			err        error
		}
		second := make(chan answer, 1)
		ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
		go func() { u, p, err := o.askCredentials(ctx2); second <- answer{u, p, err} }()
		cancel1()
		if err := <-first; err == nil {
			t.Fatal("the cancelled request returned credentials")
		}
		left := waitPending(t, o, 1)
		if left[0] != ids[1] {
			t.Fatalf("the new request asks for %v, want the open id %d", left, ids[1])
		}
		if derr := o.provide(ids[1], "s3cret"); derr != nil {
			t.Fatal(derr)
		}
		a := <-second
		cancel2()
		if a.err != nil || a.user != "alice" || a.pass != "s3cret" {
			t.Fatalf("round %d: live request got %q/%q, %v", round, a.user, a.pass, a.err)
		}
	}
}

func waitPending(t *testing.T, o *object, n int) []uint32 {
	t.Helper()
	var ids []uint32
	waitFor(t, func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		ids = ids[:0]
		for _, r := range o.pendingLocked() {
			ids = append(ids, r.id)
		}
		return len(ids) == n
	})
	return ids
}

// TestNewLoggerWithoutWriter: without journald, NewLogger(nil) fell back to a text logger
// with a nil writer, which panicked on its first line.
func TestNewLoggerWithoutWriter(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	NewLogger(nil).Log(1, "work", api.StateConnected, "a line on stderr")
}

// TestBusctlIntrospect runs `busctl introspect` on every object as the owner and as another
// user. busctl refused the manager's XML before ("duplicate method 'Ping'": ovpnd listed
// org.freedesktop.DBus.Peer and godbus added it again); the session prefix listed every
// user's sessions; another user's session answered AccessDenied instead of NotFound.
func TestBusctlIntrospect(t *testing.T) {
	if _, err := exec.LookPath("busctl"); err != nil {
		t.Skip("busctl not installed")
	}
	tm := newTestManager(t, time.Hour, nil)
	addr := tm.busAddr(t)
	var p dbus.ObjectPath
	if err := tm.alice.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".Start", 0, "work", loadTestProfile(t), map[string]dbus.Variant{}).Store(&p); err != nil {
		t.Fatal(err)
	}
	busctl := func(uid uint32, path string) (string, error) {
		tm.auth.mu.Lock()
		tm.auth.others = &uid
		tm.auth.mu.Unlock()
		out, err := exec.Command("busctl", "--address="+addr, "introspect", "--no-pager", api.BusName, path).CombinedOutput()
		return string(out), err
	}
	root := strings.TrimSuffix(api.SessionPathPrefix, "/")
	for _, tc := range []struct {
		uid  uint32
		path string
		ok   bool
		has  []string
		not  []string
	}{
		{1000, api.ManagerPath, true, []string{api.ManagerInterface, "org.freedesktop.DBus.Peer"}, nil},
		{1001, api.ManagerPath, true, []string{api.ManagerInterface}, nil},
		{1000, root, true, nil, nil},
		{1000, string(p), true, []string{api.SessionInterface, ".State", ".Disconnect"}, nil},
		{0, string(p), true, []string{api.SessionInterface}, nil},
		{1001, string(p), false, []string{api.ErrNotFound}, []string{api.SessionInterface, "work"}},
		{1001, api.SessionPath("nosuch"), false, []string{api.ErrNotFound}, nil},
	} {
		out, err := busctl(tc.uid, tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("uid %d, %s: %v\n%s", tc.uid, tc.path, err, out)
			continue
		}
		for _, h := range tc.has {
			if tc.ok && !strings.Contains(out, h) {
				t.Errorf("uid %d, %s: no %s in\n%s", tc.uid, tc.path, h, out)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(out, n) {
				t.Errorf("uid %d, %s: %s shown\n%s", tc.uid, tc.path, n, out)
			}
		}
	}
	// The prefix lists the caller's own sessions only (busctl tree walks it).
	elem := strings.TrimPrefix(string(p), api.SessionPathPrefix)
	for _, tc := range []struct {
		uid  uint32
		want bool
	}{{1000, true}, {0, true}, {1001, false}} {
		uid := tc.uid
		tm.auth.mu.Lock()
		tm.auth.others = &uid
		tm.auth.mu.Unlock()
		out, err := exec.Command("busctl", "--address="+addr, "tree", "--no-pager", api.BusName).CombinedOutput()
		if err != nil {
			t.Fatalf("busctl tree as %d: %v\n%s", uid, err, out)
		}
		if strings.Contains(string(out), elem) != tc.want {
			t.Errorf("busctl tree as uid %d lists %s: %v\n%s", uid, elem, !tc.want, out)
		}
	}
}

// failingTunnel holds buffers like a real session (data path, profile) and fails at once.
type failingTunnel struct {
	fakeTunnel
	ballast []byte
}

func (f *failingTunnel) Run(context.Context) error {
	f.set(session.StateFailed, "no route to host")
	return errors.New("no route to host")
}

// TestFinishedSessionsDoNotPileUp is the lingering-session memory defect: 300 failing Starts
// took the daemon from 50 MB to 1.55 GB, because every finished session kept its tunnel
// (profile, buffers) for the linger time and was not counted. Now a finished session drops
// its tunnel, and a user's oldest finished sessions are forgotten beyond MaxFinishedPerUser.
func TestFinishedSessionsDoNotPileUp(t *testing.T) {
	const ballast = 1 << 20
	tm := newTestManager(t, time.Hour, func(cfg *config.Config, o session.Options) (Tunnel, error) {
		return &failingTunnel{fakeTunnel: *newFakeTunnel(o), ballast: make([]byte, ballast)}, nil
	})
	profile := loadTestProfile(t)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 300; i++ {
		var p dbus.ObjectPath
		name := fmt.Sprintf("s%d", i)
		if err := tm.alice.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".Start", 0, name, profile, map[string]dbus.Variant{}).Store(&p); err != nil {
			t.Fatalf("Start %d: %v", i, err)
		}
		tm.m.mu.Lock()
		o := tm.m.sessions[sessionKey{1000, name}]
		tm.m.mu.Unlock()
		<-o.done
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	tm.m.mu.Lock()
	n := len(tm.m.sessions)
	tm.m.mu.Unlock()
	t.Logf("after 300 failed Starts: %d sessions kept, heap in use %+d KiB", n, (int64(after.HeapInuse)-int64(before.HeapInuse))>>10)
	if n > api.MaxFinishedPerUser {
		t.Errorf("%d finished sessions kept for one user, limit %d", n, api.MaxFinishedPerUser)
	}
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 32*ballast {
		t.Errorf("heap grew by %d MiB over 300 failed sessions", grew>>20)
	}
	// The newest finished session still tells its owner why it ended.
	var list []dbus.ObjectPath
	if err := tm.alice.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".List", 0).Store(&list); err != nil || len(list) == 0 {
		t.Fatalf("List: %v %v", list, err)
	}
}

// TestManagerShutdownJoinsGoroutines: after Shutdown every goroutine the manager started
// (each session's Run and observer, the reaper, the bus listener) has returned.
func TestManagerShutdownJoinsGoroutines(t *testing.T) {
	addr := privateBus(t)
	srv, alice := dial(t, addr), dial(t, addr)
	auth := &fakeAuth{uids: map[string]uint32{alice.Names()[0]: 1000}, allowed: map[uint32]bool{1000: true}}
	base := runtime.NumGoroutine()
	m, err := NewManager(Options{Conn: srv, Auth: auth, Log: NewLogger(&bytes.Buffer{}), Linger: time.Hour,
		NewTunnel: func(cfg *config.Config, o session.Options) (Tunnel, error) {
			ft := newFakeTunnel(o)
			ft.creds = nil // connect at once
			return ft, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.RequestName(api.BusName, dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	profile := loadTestProfile(t)
	for i := 0; i < 3; i++ {
		var p dbus.ObjectPath
		if err := alice.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".Start", 0, fmt.Sprintf("s%d", i), profile, map[string]dbus.Variant{}).Store(&p); err != nil {
			t.Fatal(err)
		}
	}
	if runtime.NumGoroutine() <= base {
		t.Fatal("no goroutines running: the test proves nothing")
	}
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// godbus hands each call to a goroutine of its own that may still be finishing its reply.
	n := runtime.NumGoroutine()
	for i := 0; i < 500 && n > base; i++ {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > base {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Shutdown, %d before NewManager:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

// TestLongErrorReplyArrives: a profile error of more than 4096 bytes with multi-byte
// characters at the cut. busError cut at byte 4096 and could split a character; godbus then
// refused to send the reply and the caller waited for the D-Bus timeout.
func TestLongErrorReplyArrives(t *testing.T) {
	tm := newTestManager(t, time.Hour, nil)
	for pad := 0; pad < 4; pad++ {
		profile := "client\nremote 192.0.2.1\n" + strings.Repeat("x", pad)
		for len(profile) < 8192 {
			profile += "unknown-directive-é€😀 ééééééé\n"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := tm.alice.Object(api.BusName, api.ManagerPath).CallWithContext(ctx, api.ManagerInterface+".Start", 0, "long", profile, map[string]dbus.Variant{}).Err
		cancel()
		if dbusErrName(err) != api.ErrInvalidProfile {
			t.Fatalf("pad %d: %v, want InvalidProfile", pad, err)
		}
		if msg := err.Error(); !utf8.ValidString(msg) || len(msg) > maxErrorText+64 {
			t.Errorf("pad %d: %d bytes, valid UTF-8 %v", pad, len(msg), utf8.ValidString(msg))
		}
	}
}
