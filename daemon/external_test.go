package daemon

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/routing"
	"github.com/ovpnd/ovpnd/session"
)

// TestExternalNetworkStart: only root may start a session in external network mode; the
// mode reaches the session, and what the session publishes is the NetworkConfig property,
// announced by PropertiesChanged and decodable by the plugin's parser.
func TestExternalNetworkStart(t *testing.T) {
	var mu sync.Mutex
	var opts []session.Options
	var tunList []*fakeTunnel
	tm := newTestManager(t, time.Hour, func(cfg *config.Config, o session.Options) (Tunnel, error) {
		f := newFakeTunnel(o)
		f.creds = nil // the profile carries what it needs
		mu.Lock()
		opts, tunList = append(opts, o), append(tunList, f)
		mu.Unlock()
		return f, nil
	})
	got := func() []session.Options { mu.Lock(); defer mu.Unlock(); return append([]session.Options(nil), opts...) }
	tuns := func(i int) *fakeTunnel { mu.Lock(); defer mu.Unlock(); return tunList[i] }
	ext := map[string]dbus.Variant{api.StartOptionExternalNetwork: dbus.MakeVariant(true)}
	call := func(c *dbus.Conn, name string, opts map[string]dbus.Variant) (dbus.ObjectPath, error) {
		var p dbus.ObjectPath
		err := c.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".Start", 0, name, loadTestProfile(t), opts).Store(&p)
		return p, err
	}

	if _, err := call(tm.alice, "nm", ext); err == nil || !strings.Contains(err.Error(), "root only") {
		t.Fatalf("alice's external start: %v, want refused for root only", err)
	}
	if _, err := call(tm.root, "bad", map[string]dbus.Variant{api.StartOptionExternalNetwork: dbus.MakeVariant("yes")}); err == nil || !strings.Contains(err.Error(), "boolean") {
		t.Fatalf("a string option: %v, want refused", err)
	}
	if _, err := call(tm.root, "bad", map[string]dbus.Variant{"frobnicate": dbus.MakeVariant(true)}); err == nil || !strings.Contains(err.Error(), "unknown options: frobnicate") {
		t.Fatalf("an unknown option: %v, want refused", err)
	}
	if len(got()) != 0 {
		t.Fatalf("%d tunnels made for refused starts", len(got()))
	}
	path, err := call(tm.root, "nm", ext)
	if err != nil {
		t.Fatal(err)
	}
	if g := got(); len(g) != 1 || !g[0].ExternalNet {
		t.Fatalf("session options %+v: want ExternalNet", g)
	}
	if _, err := call(tm.root, "plain", map[string]dbus.Variant{}); err != nil || got()[1].ExternalNet {
		t.Fatalf("a plain start: %v, want ExternalNet false", err)
	}

	sigs := make(chan *dbus.Signal, 64)
	tm.root.Signal(sigs)
	obj := tm.root.Object(api.BusName, path)
	prop := func() *api.NetConfig {
		t.Helper()
		v, err := obj.GetProperty(api.SessionInterface + "." + api.PropNetworkConfig)
		if err != nil {
			t.Fatal(err)
		}
		m, ok := v.Value().(map[string]dbus.Variant)
		if !ok {
			t.Fatalf("NetworkConfig is %s", v.Signature())
		}
		c, err := api.ParseNetConfig(m)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	waitFor(t, func() bool { return tuns(0).Status().State == session.StateConnected })
	if c := prop(); c != nil {
		t.Fatalf("NetworkConfig before any push: %+v", c)
	}

	f := tuns(0)
	f.mu.Lock()
	f.status.NetGen = 3
	f.status.NetConfig = &routing.Config{
		Link: "tun7", MTU: 1400,
		Addrs:       []routing.Addr{{Prefix: netip.MustParsePrefix("10.8.0.2/24")}, {Prefix: netip.MustParsePrefix("fd00::2/64")}},
		ServerAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		Routes: []routing.Route{
			{Dst: netip.MustParsePrefix("10.9.0.0/16"), Gateway: netip.MustParseAddr("10.8.0.1")},
			{Dst: netip.MustParsePrefix("198.51.100.0/24"), ViaNetGateway: true, Metric: 5},
		},
		Redirect: &routing.Redirect{Def1: true, BypassDHCP: true, Gateway4: netip.MustParseAddr("10.8.0.1")},
		DNS:      &routing.DNS{Servers: []netip.Addr{netip.MustParseAddr("10.8.0.1")}, Search: []string{"corp.example"}, FullTunnel: true},
	}
	f.mu.Unlock()
	f.set(session.StateConnected, "")

	deadline := time.After(5 * time.Second)
	for announced := false; !announced; {
		select {
		case s := <-sigs:
			if s.Path != path || s.Name != api.PropertiesInterface+"."+api.SignalPropertiesChanged {
				continue
			}
			if ch, ok := s.Body[1].(map[string]dbus.Variant); ok {
				_, announced = ch[api.PropNetworkConfig]
			}
		case <-deadline:
			t.Fatal("no PropertiesChanged with NetworkConfig")
		}
	}
	c := prop()
	if c == nil || c.Generation != 3 || c.Device != "tun7" || c.MTU != 1400 || c.Server != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("NetworkConfig %+v", c)
	}
	if len(c.Addrs) != 2 || c.Addrs[1].Prefix != netip.MustParsePrefix("fd00::2/64") || c.Gateway4 != netip.MustParseAddr("10.8.0.1") {
		t.Errorf("addresses %+v, gateway4 %v", c.Addrs, c.Gateway4)
	}
	if len(c.Routes) != 2 || c.Routes[0].Gateway != netip.MustParseAddr("10.8.0.1") || !c.Routes[1].ViaNetGateway || c.Routes[1].Metric != 5 {
		t.Errorf("routes %+v", c.Routes)
	}
	if !c.Redirect4 || c.Redirect6 || !c.HasRedirectFlag("def1") || !c.HasRedirectFlag("bypass-dhcp") || c.HasRedirectFlag("local") {
		t.Errorf("redirect %v %v %v", c.Redirect4, c.Redirect6, c.RedirectFlags)
	}
	if len(c.DNS) != 1 || c.DNS[0] != netip.MustParseAddr("10.8.0.1") || len(c.SearchDomains) != 1 || !c.DNSDefault {
		t.Errorf("DNS %v %v %v", c.DNS, c.SearchDomains, c.DNSDefault)
	}
}

// TestExternalSessionEndsWithItsApplier: when the connection that started an external-mode
// session leaves the bus (the plugin was killed, NetworkManager restarted), the session is
// disconnected, so no tun device or session is left behind; other sessions are not.
func TestExternalSessionEndsWithItsApplier(t *testing.T) {
	var mu sync.Mutex
	var tunList []*fakeTunnel
	tm := newTestManager(t, time.Hour, func(cfg *config.Config, o session.Options) (Tunnel, error) {
		f := newFakeTunnel(o)
		f.creds = nil
		mu.Lock()
		tunList = append(tunList, f)
		mu.Unlock()
		return f, nil
	})
	tuns := func(i int) *fakeTunnel { mu.Lock(); defer mu.Unlock(); return tunList[i] }
	plugin := tm.dialAs(t, tm.busAddr(t), 0)
	for _, tc := range []struct {
		name string
		ext  bool
	}{{"nm", true}, {"plain", false}} {
		var p dbus.ObjectPath
		opts := map[string]dbus.Variant{}
		if tc.ext {
			opts[api.StartOptionExternalNetwork] = dbus.MakeVariant(true)
		}
		if err := plugin.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".Start", 0, tc.name, loadTestProfile(t), opts).Store(&p); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		return tuns(0).Status().State == session.StateConnected && tuns(1).Status().State == session.StateConnected
	})
	plugin.Close()
	waitFor(t, func() bool { return tuns(0).Status().State == session.StateDisconnected })
	time.Sleep(50 * time.Millisecond)
	if st := tuns(1).Status().State; st != session.StateConnected {
		t.Errorf("the plain session is %v after its starter left", st)
	}
}
