package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestFindAddr(t *testing.T) {
	out := `1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
2: veth0    inet 198.18.0.2/24 scope global veth0\       valid_lft forever preferred_lft forever
5: tun0    inet 10.8.0.6 peer 10.8.0.5/32 scope global tun0\       valid_lft forever preferred_lft forever
6: tun1    inet6 fd00:8::1000/64 scope global \       valid_lft forever preferred_lft forever
`
	tests := []struct{ addr, want string }{
		{"10.8.0.6", "tun0"},
		{"10.8.0.5", ""}, // a peer address is not configured on the client
		{"198.18.0.2", "veth0"},
		{"fd00:8::1000", "tun1"},
		{"10.8.0.2", ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := findAddr(out, tt.addr); got != tt.want {
				t.Errorf("findAddr(%s) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

func FuzzFindAddr(f *testing.F) {
	f.Add("5: tun0    inet 10.8.0.6 peer 10.8.0.5/32 scope global tun0", "10.8.0.6")
	f.Add("inet", "")
	f.Fuzz(func(t *testing.T, out, addr string) {
		if dev := findAddr(out, addr); dev != "" && !strings.Contains(out, dev) {
			t.Fatalf("device %q not in output", dev)
		}
	})
}

func TestParsePing(t *testing.T) {
	tests := []struct {
		name     string
		out      string
		sent     int
		received int
		avg      time.Duration
		wantErr  bool
	}{
		{"all", "5 packets transmitted, 5 received, 0% packet loss, time 803ms\nrtt min/avg/max/mdev = 0.301/0.350/0.412/0.040 ms\n", 5, 5, 350 * time.Microsecond, false},
		{"some lost", "10 packets transmitted, 7 received, 30% packet loss, time 1803ms\nrtt min/avg/max/mdev = 1.0/2.5/4.0/1 ms\n", 10, 7, 2500 * time.Microsecond, false},
		{"none", "3 packets transmitted, 0 received, 100% packet loss, time 2040ms\n", 3, 0, 0, false},
		{"errors line", "4 packets transmitted, 0 received, +4 errors, 100% packet loss\n", 4, 0, 0, false},
		{"garbage", "ping: connect: Network is unreachable\n", 0, 0, 0, true},
		{"impossible", "1 packets transmitted, 2 received\n", 1, 2, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := parsePing(tt.out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if st.Sent != tt.sent || st.Received != tt.received || st.AvgRTT != tt.avg {
				t.Errorf("got sent %d received %d avg %v", st.Sent, st.Received, st.AvgRTT)
			}
		})
	}
}

func FuzzParsePing(f *testing.F) {
	f.Add("5 packets transmitted, 5 received\nrtt min/avg/max/mdev = 0.3/0.35/0.4/0.04 ms")
	f.Add("99999999999999999999 packets transmitted, 1 received")
	f.Fuzz(func(t *testing.T, out string) {
		st, err := parsePing(out)
		if err == nil && (st.Received > st.Sent || st.Received < 0 || st.AvgRTT < 0) {
			t.Fatalf("accepted %+v", st)
		}
	})
}

func TestOwnerPID(t *testing.T) {
	tests := []struct {
		name, prefix string
		pid          int
		ok           bool
	}{
		{"ovl-1234-7-s", "ovl-", 1234, true},
		{"ovl-1234-7-abc", "ovl-", 1234, true},
		{"ovpnd-lab-99", "ovpnd-lab-", 99, true},
		{"ovl-1-2-s", "ovl-", 0, false}, // never pid 1
		{"ovl-x-2", "ovl-", 0, false},
		{"other-12", "ovl-", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid, ok := ownerPID(tt.name, tt.prefix)
			if pid != tt.pid || ok != tt.ok {
				t.Errorf("ownerPID = %d, %v; want %d, %v", pid, ok, tt.pid, tt.ok)
			}
		})
	}
}

func TestSyncBufferIsCapped(t *testing.T) {
	var b syncBuffer
	chunk := strings.Repeat("x", 1<<20)
	for range 10 {
		b.Write([]byte(chunk))
	}
	out := b.String()
	if len(out) > maxOutput+200 || !strings.Contains(out, "dropped") {
		t.Fatalf("buffer holds %d bytes, want at most %d and a drop note", len(out), maxOutput)
	}
}

// configLab is a Lab with fake key paths, enough to render configs without root.
func configLab(t *testing.T) *Lab {
	d := t.TempDir()
	p := &PKI{Dir: d}
	for _, f := range []*string{&p.CACert, &p.ServerCert, &p.ServerKey, &p.ClientCert, &p.ClientKey,
		&p.TLSAuthKey, &p.TLSCryptKey, &p.TLSCryptV2Server, &p.TLSCryptV2Client} {
		*f = filepath.Join(d, "k"+time.Now().Format("150405.000000000"))
		if err := os.WriteFile(*f, []byte("KEY "+filepath.Base(*f)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &Lab{tb: t, Dir: d, pki: p}
}

func TestServerAndClientConfig(t *testing.T) {
	tests := []struct {
		name                 string
		opts                 ServerOptions
		client               ClientOptions
		server, clientLines  []string
		notServer, notClient []string
	}{
		{
			name:        "defaults",
			opts:        ServerOptions{},
			server:      []string{"proto udp", "port 1194", "topology subnet", "server 10.8.0.0 255.255.255.0", "dh none", "keepalive 10 60", "explicit-exit-notify 1", "verb 3"},
			clientLines: []string{"client", "proto udp", "remote 198.18.0.1 1194", "remote-cert-tls server", "<ca>", "</key>"},
			notServer:   []string{"tls-auth", "tls-crypt", "data-ciphers", "comp-lzo", "auth-gen-token"},
			notClient:   []string{"data-ciphers", "comp-lzo", "auth-user-pass", "key-direction"},
		},
		{
			name:        "tcp6 tls-auth cbc",
			opts:        ServerOptions{Proto: "tcp6", Wrap: "tls-auth", DataCiphers: []string{"AES-256-CBC"}, Auth: "SHA256"},
			server:      []string{"proto tcp6", "tls-auth ", "data-ciphers AES-256-CBC", "auth SHA256"},
			clientLines: []string{"remote fd18::1 1194", "key-direction 1", "<tls-auth>", "data-ciphers AES-256-CBC", "auth SHA256"},
			notServer:   []string{"explicit-exit-notify"}, // UDP only
		},
		{
			name:        "gcm subset needs no client data-ciphers",
			opts:        ServerOptions{Wrap: "tls-crypt", DataCiphers: []string{"AES-128-GCM"}},
			server:      []string{"data-ciphers AES-128-GCM", "tls-crypt "},
			clientLines: []string{"<tls-crypt>"},
			notClient:   []string{"data-ciphers"},
		},
		{
			name:        "files tls-crypt-v2 lzo net30 ipv6 push",
			opts:        ServerOptions{Wrap: "tls-crypt-v2", CompLZO: true, Topology: "net30", IPv6: true, Push: []string{"route 10.9.0.0 255.255.255.0"}},
			client:      ClientOptions{Files: true, Verb: 4, Extra: []string{"mute 5"}},
			server:      []string{"tls-crypt-v2 ", "comp-lzo yes", "allow-compression yes", "topology net30", "server-ipv6 fd00:8::/64", `push "route 10.9.0.0 255.255.255.0"`},
			clientLines: []string{"tls-crypt-v2 /", "ca /", "comp-lzo", "verb 4", "mute 5"},
			notClient:   []string{"<ca>"},
		},
		{
			name:        "user pass with short reneg",
			opts:        ServerOptions{RenegSec: 5, UserPass: &UserPass{User: "u", Pass: "p"}},
			server:      []string{"reneg-sec 5", "auth-user-pass-verify ", "via-file", "script-security 2", "auth-gen-token 0 120"},
			clientLines: []string{"auth-user-pass /"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := configLab(t)
			s := &Server{lab: l, opts: tt.opts.withDefaults(), dir: t.TempDir()}
			conf, err := s.config()
			if err != nil {
				t.Fatal(err)
			}
			cli := s.ClientConfig(tt.client)
			check := func(what, text string, want, not []string) {
				for _, w := range want {
					if !strings.Contains(text, w) {
						t.Errorf("%s config lacks %q:\n%s", what, w, text)
					}
				}
				for _, n := range not {
					if strings.Contains(text, n) {
						t.Errorf("%s config has %q:\n%s", what, n, text)
					}
				}
			}
			check("server", conf, tt.server, tt.notServer)
			check("client", cli, tt.clientLines, tt.notClient)
		})
	}
}

func TestServerConfigRejects(t *testing.T) {
	for _, o := range []ServerOptions{
		{Wrap: "tls-magic"},
		{UserPass: &UserPass{User: "it's", Pass: "x"}},
		{UserPass: &UserPass{User: "a", Pass: ""}},
	} {
		l := configLab(t)
		s := &Server{lab: l, opts: o.withDefaults(), dir: t.TempDir()}
		if _, err := s.config(); err == nil {
			t.Errorf("config(%+v) accepted", o)
		}
	}
}

// TestLabIsolation checks the lab's own promises: the underlay works, tunnel addresses are
// unreachable without a tunnel (so interop pings prove the tunnel), and snapshots are stable.
func TestLabIsolation(t *testing.T) {
	l := New(t, Options{})
	srv := l.StartServer(ServerOptions{IPv6: true})
	for _, a := range []string{ServerUnderlay4, ServerUnderlay6} {
		if st, err := l.Ping(a, 2, 3*time.Second); err != nil || st.Lost() > 0 {
			t.Errorf("underlay ping %s: %v\n%s", a, err, st.Output)
		}
	}
	for _, a := range []string{srv.TunnelAddr(), ServerTunnel6} {
		if st, err := l.Ping(a, 1, 2*time.Second); err == nil {
			t.Errorf("tunnel address %s answered without a tunnel:\n%s", a, st.Output)
		}
	}
	if _, err := l.TransferErr(ServerUnderlay4, 1<<20, XferOptions{Download: true}); err != nil {
		t.Errorf("transfer over the underlay: %v", err)
	}
	if res, err := l.Iperf(ServerUnderlay4, time.Second, true); err != nil || res.Bytes == 0 || res.BitsPerSecond <= 0 {
		t.Errorf("iperf3 over the underlay: %+v, %v", res, err)
	}
	a, b := l.ClientNetState(), l.ClientNetState()
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("snapshot unstable:\n%s", diff)
	}
	if srv.PID() == 0 || !strings.Contains(srv.Log(), "Initialization Sequence Completed") {
		t.Errorf("server not running: pid %d", srv.PID())
	}
	srv.Restart()
	if strings.Count(srv.Log(), "Initialization Sequence Completed") != 2 {
		t.Errorf("log after restart does not show two starts")
	}
}
