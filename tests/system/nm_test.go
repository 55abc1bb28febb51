package system

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// nmPackages make the NetworkManager machine's root (cached apart from the plain one).
var nmPackages = []string{"network-manager"}

// TestNetworkManager imports a profile with ovpnctl import --nm into a booted Debian 12
// with NetworkManager and connects with nmcli against Debian's OpenVPN 2.6: NetworkManager
// applies the pushed configuration (its routes on the tun, the VPN's DNS on the tun link in
// resolved, no net_gateway route), down restores everything, a wrong password is reported
// as such, --ask is answered on a terminal, a server restart reconnects, and killing the
// plugin and restarting NetworkManager leaves no tunnel behind.
func TestNetworkManager(t *testing.T) {
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{
		Wrap:     "tls-crypt",
		UserPass: &lab.UserPass{User: user, Pass: pass},
		Push: []string{"redirect-gateway def1", "dhcp-option DNS 10.8.0.53", "dhcp-option DOMAIN corp.example",
			"route 10.99.0.0 255.255.0.0", "route 192.0.2.0 255.255.255.0 net_gateway"},
	})
	deb := debPath(t)
	m := Boot(t, Options{NetNS: l.ClientNS, Flavor: "nm", ExtraPackages: nmPackages})
	t.Logf("install:\n%s", m.InstallDeb(t, deb))
	m.MustSh(t, "nm-online -s -q -t 30 || true; nmcli -t -f RUNNING general")
	// NetworkManager activates a VPN only over a connection it manages (else "Could not
	// find source connection"); the lab's link is a veth, unmanaged by default. A manual
	// connection with the link's own address and gateway takes it over unchanged.
	lan := m.MustSh(t, `set -e
		dev=$(ip -4 route show default | awk '{print $5; exit}')
		addr=$(ip -4 -br addr show dev "$dev" | awk '{print $3}')
		gw=$(ip -4 route show default | awk '{print $3; exit}')
		nmcli device set "$dev" managed yes
		nmcli connection add type ethernet con-name lab ifname "$dev" ipv4.method manual ipv4.addresses "$addr" ipv4.gateway "$gw" ipv6.method ignore >/dev/null
		nmcli connection up lab >/dev/null
		echo "$dev $addr via $gw"`)
	t.Logf("LAN: %s", strings.TrimSpace(lan))
	before := netState(t, m)
	profile := instanceProfile(srv.ClientConfig(lab.ClientOptions{}))
	if err := m.WriteFile("/root/work.ovpn", []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile("/root/pw", []byte("vpn.secrets.password:"+pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile("/root/bad", []byte("vpn.secrets.password:wrong-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	journal := func() string {
		return m.MustSh(t, "journalctl --no-pager -o cat -u NetworkManager | grep -i -e nm-ovpnd -e vpn -e agent | tail -80")
	}
	// nmcli's secret agent (passwd-file, --ask) is only accepted from a logind session, as
	// at a console or over ssh: su - gives root one.
	nmcli := func(args string) string { return "su - root -c 'nmcli " + args + "' 2>&1" }
	defer func() {
		if t.Failed() {
			t.Logf("NetworkManager's journal:\n%s\novpnd:\n%s", journal(), m.MustSh(t, "journalctl --no-pager -o cat -u ovpnd | tail -40"))
		}
	}()
	tunLink := func() string {
		return strings.TrimSpace(m.MustSh(t, "ip -br link show type tun | cut -d' ' -f1"))
	}
	restored := func(t *testing.T, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		var after string
		for time.Now().Before(deadline) {
			if after = netState(t, m); after == before && tunLink() == "" {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Errorf("%s did not restore the network (tun: %q):\n%s\n---\n%s", what, tunLink(), before, after)
	}

	out := m.MustSh(t, "ovpnctl import --nm --name work /root/work.ovpn")
	if !strings.Contains(out, `connection "work"`) {
		t.Fatalf("import: %s", out)
	}
	// The lab's profile names no username (ovpnd@ units get it from a credential): give the
	// connection one, as for a profile whose auth-user-pass file held only the username.
	m.MustSh(t, "nmcli connection modify work +vpn.data username="+user)
	data := m.MustSh(t, "nmcli -g vpn.service-type,vpn.data connection show work")
	if !strings.Contains(data, "org.freedesktop.NetworkManager.ovpnd") || strings.Contains(data, "PRIVATE KEY") || strings.Contains(data, "Static key") {
		t.Fatalf("vpn.data:\n%s", data)
	}

	t.Run("UpAndDown", func(t *testing.T) {
		start := time.Now()
		out, err := m.Sh(nmcli("connection up work passwd-file /root/pw"))
		took := time.Since(start)
		if err != nil {
			t.Fatalf("nmcli connection up: %v\n%s", err, out)
		}
		t.Logf("nmcli connection up took %v", took.Round(time.Millisecond))
		state := m.MustSh(t, "nmcli -g GENERAL.STATE connection show work")
		if !strings.Contains(state, "activated") {
			t.Fatalf("state %q", state)
		}
		tun := tunLink()
		routes := m.MustSh(t, "ping -c1 -W5 "+lab.ServerTunnel4+" >/dev/null && echo PING-OK; ip -4 route")
		if !strings.Contains(routes, "PING-OK") {
			t.Errorf("no ping through the tunnel:\n%s", routes)
		}
		for _, want := range []string{"default via 10.8.0.1 dev " + tun + " proto static metric 50", "10.99.0.0/16 via 10.8.0.1 dev " + tun} {
			if !strings.Contains(routes, want) {
				t.Errorf("routes lack %q:\n%s", want, routes)
			}
		}
		if strings.Contains(routes, "192.0.2.0/24") || strings.Contains(routes, "0.0.0.0/1") {
			t.Errorf("a net_gateway route or def1 halves installed:\n%s", routes)
		}
		dns := m.MustSh(t, "resolvectl dns "+tun+"; resolvectl domain "+tun)
		if !strings.Contains(dns, "10.8.0.53") || !strings.Contains(dns, "corp.example") {
			t.Errorf("resolved on %s:\n%s", tun, dns)
		}
		if j := journal(); !strings.Contains(j, "route 192.0.2.0/24 via net_gateway: its next hop is outside the tunnel") {
			t.Errorf("no log line for the dropped net_gateway route:\n%s", j)
		}
		if s := m.MustSh(t, "ovpnctl list"); !strings.Contains(s, "nm-") {
			t.Errorf("ovpnctl list:\n%s", s)
		}
		m.MustSh(t, "nmcli connection down work")
		restored(t, "nmcli connection down")
		if s := m.MustSh(t, "ovpnctl list --json"); strings.Contains(s, `"state": "connected"`) {
			t.Errorf("a session is left after down:\n%s", s)
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		out, err := m.Sh(nmcli("connection up work passwd-file /root/bad"))
		if err == nil {
			t.Fatalf("connected with a wrong password:\n%s", out)
		}
		t.Logf("nmcli: %s", strings.TrimSpace(out))
		if !strings.Contains(strings.ToLower(out), "secrets") && !strings.Contains(strings.ToLower(out), "login") {
			t.Errorf("NetworkManager's reason does not name the login:\n%s", out)
		}
		restored(t, "a refused login")
	})

	t.Run("Ask", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := m.Converse(ctx, "su --pty - root -c 'nmcli --ask connection up work'", []Exchange{{Expect: "assword", Send: pass + "\n"}})
		if err != nil || !strings.Contains(out, "successfully activated") {
			t.Fatalf("nmcli --ask: %v\n%s", err, out)
		}
		m.MustSh(t, "nmcli connection down work")
		restored(t, "down after --ask")
	})

	t.Run("ServerRestart", func(t *testing.T) {
		m.MustSh(t, nmcli("connection up work passwd-file /root/pw"))
		srv.Restart()
		var states []string
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			s := strings.TrimSpace(m.MustSh(t, "nmcli -g GENERAL.STATE connection show work 2>/dev/null || true"))
			if len(states) == 0 || states[len(states)-1] != s {
				states = append(states, s)
			}
			if s == "activated" && len(states) > 1 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("states: %q", states)
		if len(states) < 2 || states[len(states)-1] != "activated" || !strings.Contains(strings.Join(states, " "), "activating") {
			t.Errorf("after a server restart the states were %q, want activating then activated", states)
		}
		if out := m.MustSh(t, "ping -c1 -W5 "+lab.ServerTunnel4+" >/dev/null && echo PING-OK || true"); !strings.Contains(out, "PING-OK") {
			t.Errorf("no ping after the reconnect")
		}
		m.MustSh(t, "nmcli connection down work")
		restored(t, "down after the reconnect")
	})

	t.Run("PluginKilledAndNetworkManagerRestarted", func(t *testing.T) {
		m.MustSh(t, nmcli("connection up work passwd-file /root/pw"))
		m.MustSh(t, "kill -KILL $(pidof nm-ovpnd-service)")
		m.MustSh(t, "systemctl restart NetworkManager; nm-online -s -q -t 30 || true")
		restored(t, "killing the plugin and restarting NetworkManager")
		if s := m.MustSh(t, "ovpnctl list --json"); strings.Contains(s, `"state": "connected"`) {
			t.Errorf("an orphaned session:\n%s", s)
		}
	})
}
