package system

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/tests/lab"
)

// TestNetworkManagerCompare measures `nmcli connection up` wall time of an ovpnd connection
// against Debian's NetworkManager-openvpn (OpenVPN 2.6) with the same profile and server, in
// the same container, alternating five times. It asserts nothing about time (the machine is
// shared; timings are noisy) and runs only with OVPND_NM_COMPARE=1: it needs a root of its
// own with network-manager-openvpn, which CI does not build.
func TestNetworkManagerCompare(t *testing.T) {
	if os.Getenv("OVPND_NM_COMPARE") != "1" {
		t.Skip("a measurement; run with OVPND_NM_COMPARE=1")
	}
	l := lab.New(t, lab.Options{})
	srv := l.StartServer(lab.ServerOptions{Wrap: "tls-crypt", UserPass: &lab.UserPass{User: user, Pass: pass},
		Push: []string{"redirect-gateway def1", "dhcp-option DNS 10.8.0.53", "dhcp-option DOMAIN corp.example"}})
	m := Boot(t, Options{NetNS: l.ClientNS, Flavor: "nmcmp", ExtraPackages: []string{"network-manager", "network-manager-openvpn"}})
	m.InstallDeb(t, debPath(t))
	m.MustSh(t, "nm-online -s -q -t 30 || true")
	m.MustSh(t, `dev=$(ip -4 route show default | awk '{print $5; exit}')
		addr=$(ip -4 -br addr show dev "$dev" | awk '{print $3}'); gw=$(ip -4 route show default | awk '{print $3; exit}')
		nmcli device set "$dev" managed yes
		nmcli connection add type ethernet con-name lab ifname "$dev" ipv4.method manual ipv4.addresses "$addr" ipv4.gateway "$gw" ipv6.method ignore >/dev/null
		nmcli connection up lab >/dev/null`)
	profile := instanceProfile(srv.ClientConfig(lab.ClientOptions{}))
	for _, f := range []string{"/root/work.ovpn", "/root/ovpn.ovpn"} {
		if err := m.WriteFile(f, []byte(profile), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.WriteFile("/root/pw", []byte("vpn.secrets.password:"+pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.MustSh(t, "ovpnctl import --nm --name work /root/work.ovpn && nmcli connection modify work +vpn.data username="+user)
	m.MustSh(t, "nmcli connection import type openvpn file /root/ovpn.ovpn && nmcli connection modify ovpn +vpn.data username="+user)
	for i := 0; i < 5; i++ {
		for _, c := range []string{"work", "ovpn"} {
			start := time.Now()
			out, err := m.Sh("su - root -c 'nmcli connection up " + c + " passwd-file /root/pw' 2>&1")
			took := time.Since(start)
			if err != nil {
				t.Fatalf("%s: %v\n%s", c, err, out)
			}
			ping := strings.TrimSpace(m.MustSh(t, "ping -c1 -W3 "+lab.ServerTunnel4+" >/dev/null && echo ping-ok || echo no-ping"))
			t.Logf("%-4s nmcli connection up: %v (%s)", c, took.Round(time.Millisecond), ping)
			m.MustSh(t, "nmcli connection down "+c)
		}
	}
}
