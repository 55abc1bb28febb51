package daemon

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/session"
)

// TestOwnersAndNames: two users may both have "work", with their own state files and
// opaque object paths; nobody's Start or Lookup mentions another user's sessions; the
// owner's uid and the override decision reach the session; lport below 1024 and an
// existing interface are refused to non-root owners.
func TestOwnersAndNames(t *testing.T) {
	addr := privateBus(t)
	profile := loadTestProfile(t)
	srv := dial(t, addr)
	alice, bob, root := dial(t, addr), dial(t, addr), dial(t, addr)
	auth := &fakeAuth{
		uids:    map[string]uint32{alice.Names()[0]: 1000, bob.Names()[0]: 1001, root.Names()[0]: 0},
		allowed: map[uint32]bool{1000: true, 1001: true},
		// bob is not trusted to override the network policy.
		deny: func(uid uint32, action string) bool { return uid == 1001 && action == api.ActionOverride },
	}
	var mu sync.Mutex
	opts := map[dbus.ObjectPath]session.Options{}
	var last session.Options
	_, err := NewManager(Options{Conn: srv, Auth: auth, Log: NewLogger(&bytes.Buffer{}), Linger: time.Hour,
		NewTunnel: func(cfg *config.Config, o session.Options) (Tunnel, error) {
			mu.Lock()
			last = o
			mu.Unlock()
			return newFakeTunnel(o), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.RequestName(api.BusName, dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	mgr := func(c *dbus.Conn) dbus.BusObject { return c.Object(api.BusName, api.ManagerPath) }
	start := func(c *dbus.Conn, name, prof string) (dbus.ObjectPath, error) {
		var p dbus.ObjectPath
		err := mgr(c).Call(api.ManagerInterface+".Start", 0, name, prof, map[string]dbus.Variant{}).Store(&p)
		if err == nil {
			mu.Lock()
			opts[p] = last
			mu.Unlock()
		}
		return p, err
	}

	pa, err := start(alice, "work", profile)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := start(bob, "work", profile)
	if err != nil {
		t.Fatalf("bob's work beside alice's: %v", err)
	}
	if pa == pb {
		t.Fatalf("both sessions at %s", pa)
	}
	if _, err := start(bob, "work", profile); dbusErrName(err) != api.ErrExists || strings.Contains(err.Error(), "1000") {
		t.Errorf("bob's second work: %v, want Exists about his own", err)
	}
	for _, tc := range []struct {
		c    *dbus.Conn
		want dbus.ObjectPath
	}{{alice, pa}, {bob, pb}} {
		var p dbus.ObjectPath
		if err := mgr(tc.c).Call(api.ManagerInterface+".Lookup", 0, "work").Store(&p); err != nil || p != tc.want {
			t.Errorf("Lookup(work): %s %v, want %s", p, err, tc.want)
		}
	}
	var p dbus.ObjectPath
	if err := mgr(root).Call(api.ManagerInterface+".Lookup", 0, "work").Store(&p); err != nil || p != pa {
		t.Errorf("root's Lookup(work): %s %v, want the lowest uid's %s", p, err, pa)
	}
	mu.Lock()
	oa, ob := opts[pa], opts[pb]
	mu.Unlock()
	if oa.StateName != "user-1000-work" || ob.StateName != "user-1001-work" || oa.StateName == InstanceStateName("work") {
		t.Errorf("state names %q %q", oa.StateName, ob.StateName)
	}
	if oa.Owner != 1000 || !oa.MayOverride || !oa.NewLinkOnly || ob.Owner != 1001 || ob.MayOverride {
		t.Errorf("owner options: alice %+v, bob %+v", oa, ob)
	}
	// Another user's path answers like a path with no session, without the name.
	if err := bob.Object(api.BusName, pa).Call(api.SessionInterface+".Disconnect", 0).Err; dbusErrName(err) != api.ErrNotFound || strings.Contains(err.Error(), "work") {
		t.Errorf("bob on alice's path: %v", err)
	}

	lport := strings.Replace(profile, "client\n", "client\nlport 53\n", 1)
	if _, err := start(alice, "low", lport); dbusErrName(err) != api.ErrInvalidProfile || !strings.Contains(err.Error(), "lport 53") {
		t.Errorf("alice with lport 53: %v, want InvalidProfile naming lport", err)
	}
	if _, err := start(root, "low", lport); err != nil {
		t.Errorf("root with lport 53: %v", err)
	}
	lo := strings.Replace(profile, "dev null\n", "dev lo\ndev-type tun\n", 1)
	if _, err := start(alice, "lo", lo); dbusErrName(err) != api.ErrInvalidProfile || !strings.Contains(err.Error(), "dev lo") {
		t.Errorf("alice with dev lo: %v, want InvalidProfile naming the device", err)
	}
}
