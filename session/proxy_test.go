package session

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/config"
)

// testRunner is a runner with just enough of a session for the proxy code.
func testRunner(t *testing.T, px *config.Proxy, ask func(ctx context.Context, proxy string) (string, string, error)) *runner {
	s := &Session{opts: Options{Logf: t.Logf, now: time.Now, ProxyCredentials: ask}, verb: 3}
	return &runner{s: s, cfg: &config.Config{Proxy: px}}
}

// fakeHTTPProxy answers CONNECT requests: each connection's request head goes to
// heads, and answer decides the response (its bytes are written as they are).
type fakeHTTPProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	heads  []string
	answer func(head string) string
	wg     sync.WaitGroup
}

func newFakeHTTPProxy(t *testing.T, answer func(head string) string) *fakeHTTPProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeHTTPProxy{ln: ln, answer: answer}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				var head strings.Builder
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					head.WriteString(line)
					if line == "\r\n" {
						break
					}
				}
				p.mu.Lock()
				p.heads = append(p.heads, head.String())
				p.mu.Unlock()
				c.Write([]byte(p.answer(head.String())))
				// Echo whatever the tunnel sends afterwards.
				io.Copy(c, br)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *fakeHTTPProxy) addr() netip.AddrPort { return p.ln.Addr().(*net.TCPAddr).AddrPort() }

func (p *fakeHTTPProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.heads...)
}

func basicAuth(user, pass string) string {
	return "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// requireBasic is a proxy that wants alice:pw with Basic.
func requireBasic(head string) string {
	if strings.Contains(head, basicAuth("alice", "pw")+"\r\n") {
		return "HTTP/1.1 200 Connection established\r\n\r\n"
	}
	return "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"lab\"\r\nContent-Length: 0\r\n\r\n"
}

func TestHTTPProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const target = "vpn.example.com:443"
	creds := &config.ProxyCreds{User: "alice", Pass: "pw"}
	for _, tc := range []struct {
		name    string
		px      config.Proxy
		answer  func(string) string
		ask     func(context.Context, string) (string, string, error)
		wantErr string
		// requests the proxy must have seen, and what each must (not) contain
		wantReqs int
		auth     []bool
	}{
		{name: "no auth", px: config.Proxy{Version: "1.0"},
			answer:   func(string) string { return "HTTP/1.0 200 OK\r\n\r\n" },
			wantReqs: 1, auth: []bool{false}},
		{name: "basic sent at once", px: config.Proxy{Auth: config.ProxyAuthBasic, Creds: creds},
			answer: requireBasic, wantReqs: 1, auth: []bool{true}},
		{name: "auto answers the challenge", px: config.Proxy{Auth: config.ProxyAuthAuto, Creds: creds},
			answer: requireBasic, wantReqs: 2, auth: []bool{false, true}},
		{name: "auto asks", px: config.Proxy{Auth: config.ProxyAuthAuto, Ask: true},
			ask:    func(_ context.Context, p string) (string, string, error) { return "alice", "pw", nil },
			answer: requireBasic, wantReqs: 2, auth: []bool{false, true}},
		{name: "auto-nct refuses basic", px: config.Proxy{Auth: config.ProxyAuthAutoNCT, Creds: creds},
			answer: requireBasic, wantReqs: 1, wantErr: "auto-nct does not allow"},
		{name: "wrong credentials", px: config.Proxy{Auth: config.ProxyAuthBasic, Creds: &config.ProxyCreds{User: "alice", Pass: "nope"}},
			answer: requireBasic, wantReqs: 1, wantErr: "refused the credentials"},
		{name: "auth needed but none configured", px: config.Proxy{},
			answer: requireBasic, wantReqs: 1, wantErr: "needs authentication"},
		{name: "ntlm only", px: config.Proxy{Auth: config.ProxyAuthAuto, Creds: creds},
			answer: func(string) string {
				return "HTTP/1.1 407 No\r\nProxy-Authenticate: NTLM\r\nProxy-Authenticate: Negotiate\r\n\r\n"
			}, wantReqs: 1, wantErr: "asks for ntlm, negotiate authentication"},
		{name: "forbidden", px: config.Proxy{},
			answer: func(string) string { return "HTTP/1.1 403 Forbidden\r\n\r\n" }, wantReqs: 1, wantErr: "refused CONNECT vpn.example.com:443: HTTP/1.1 403 Forbidden"},
		{name: "garbage", px: config.Proxy{},
			answer: func(string) string { return "SSH-2.0-OpenSSH\r\n\r\n" }, wantReqs: 1, wantErr: "malformed response"},
		{name: "nobody to ask", px: config.Proxy{Auth: config.ProxyAuthBasic, Ask: true},
			answer: requireBasic, wantReqs: 0, wantErr: "nothing can ask for them"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := newFakeHTTPProxy(t, tc.answer)
			px := tc.px
			px.Kind, px.Host, px.Port = config.ProxyHTTP, "127.0.0.1", fp.addr().Port()
			r := testRunner(t, &px, tc.ask)
			pc, err := r.dialHTTPProxy(ctx, &px, fp.addr(), target, udpDialOptions{})
			reqs := fp.requests()
			if len(reqs) != tc.wantReqs {
				t.Errorf("%d requests, want %d: %q", len(reqs), tc.wantReqs, reqs)
			}
			for i, want := range tc.auth {
				if i < len(reqs) && strings.Contains(reqs[i], "Proxy-Authorization") != want {
					t.Errorf("request %d: credentials sent %v, want %v:\n%s", i, !want, want, reqs[i])
				}
			}
			for _, h := range reqs {
				if !strings.HasPrefix(h, "CONNECT "+target+" HTTP/1.0\r\n") {
					t.Errorf("request %q", h)
				}
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			// The tunnel runs over the proxied connection.
			if err := pc.WritePacket([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			bufs, sizes := [][]byte{make([]byte, 100)}, []int{0}
			if n, err := pc.ReadBatch(bufs, sizes); err != nil || n != 1 || string(bufs[0][:sizes[0]]) != "hello" {
				t.Fatalf("echo: %d %q %v", n, bufs[0][:sizes[0]], err)
			}
		})
	}
}

// TestHTTPProxyKeepsEarlyBytes: bytes that arrive in the same segment as the
// response head belong to the tunnel and must not be lost.
func TestHTTPProxyKeepsEarlyBytes(t *testing.T) {
	fp := newFakeHTTPProxy(t, func(string) string { return "HTTP/1.1 200 OK\r\nVia: x\r\n\r\n\x00\x03abc" })
	px := &config.Proxy{Kind: config.ProxyHTTP, Version: "1.0"}
	r := testRunner(t, px, nil)
	pc, err := r.dialHTTPProxy(context.Background(), px, fp.addr(), "h:1", udpDialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	bufs, sizes := [][]byte{make([]byte, 100)}, []int{0}
	if n, err := pc.ReadBatch(bufs, sizes); err != nil || n != 1 || string(bufs[0][:sizes[0]]) != "abc" {
		t.Fatalf("first frame: %d %q %v", n, bufs[0][:sizes[0]], err)
	}
}

func TestConnectRequest(t *testing.T) {
	px := &config.Proxy{Version: "1.1", Agent: "Mozilla/5.0", Headers: []config.ProxyHeader{{Name: "X-A", Content: "b c"}, {Name: "X-Raw: 1"}}}
	got := string(connectRequest(px, "[fd00::1]:1194", &proxyCreds{user: "u", pass: "p:w"}))
	want := "CONNECT [fd00::1]:1194 HTTP/1.1\r\nHost: fd00::1\r\nUser-Agent: Mozilla/5.0\r\nX-A: b c\r\nX-Raw: 1\r\n" +
		"Proxy-Authorization: Basic dTpwOnc=\r\n\r\n"
	if got != want {
		t.Errorf("request\n%q\nwant\n%q", got, want)
	}
}

func TestReadHTTPResponseBounds(t *testing.T) {
	long := "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxHTTPLine) + "\r\n\r\n"
	if _, err := readHTTPResponse(bufio.NewReader(strings.NewReader(long))); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("long line: %v", err)
	}
	many := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X: y\r\n", maxHTTPHeaders+2) + "\r\n"
	if _, err := readHTTPResponse(bufio.NewReader(strings.NewReader(many))); err == nil || !strings.Contains(err.Error(), "header lines") {
		t.Errorf("many headers: %v", err)
	}
	if _, err := readHTTPResponse(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\n"))); err == nil {
		t.Error("truncated head accepted")
	}
}

// FuzzHTTPConnectResponse: any response head is parsed without panic, within
// its bounds, and never reads past the empty line.
func FuzzHTTPConnectResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 Connection established\r\n\r\nTAIL"))
	f.Add([]byte("HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nProxy-Authenticate: NTLM\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200\n\n"))
	f.Add([]byte("HTTP/2 200\r\n\r\n"))
	f.Add([]byte("\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		h, err := readHTTPResponse(br)
		if err != nil {
			return
		}
		if h.status < 100 || h.status > 999 || len(h.schemes) > 8 || len(h.statusLine) > 130 {
			t.Fatalf("response %+v", h)
		}
		rest, _ := io.ReadAll(br)
		if !bytes.HasSuffix(data, rest) {
			t.Fatal("remaining bytes are not the tail of the input")
		}
	})
}

// fakeSOCKS is a SOCKS5 server for UDP ASSOCIATE with an echoing relay: it
// checks the credentials (when want is set), answers with relay's address
// (0.0.0.0 when zeroAddr), and echoes datagrams with their header.
type fakeSOCKS struct {
	ln      net.Listener
	relay   *net.UDPConn
	wg      sync.WaitGroup
	mu      sync.Mutex
	targets []string // CONNECT targets
}

func newFakeSOCKS(t *testing.T, want *proxyCreds, zeroAddr bool) *fakeSOCKS {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relay, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeSOCKS{ln: ln, relay: relay}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		b := make([]byte, 2048)
		for {
			n, from, err := relay.ReadFromUDP(b)
			if err != nil {
				return
			}
			relay.WriteToUDP(b[:n], from)
		}
	}()
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				b := make([]byte, 600)
				if _, err := io.ReadFull(c, b[:2]); err != nil {
					return
				}
				io.ReadFull(c, b[:b[1]])
				if want == nil {
					c.Write([]byte{5, 0})
				} else {
					c.Write([]byte{5, 2})
					io.ReadFull(c, b[:2])
					user := make([]byte, b[1])
					io.ReadFull(c, user)
					io.ReadFull(c, b[:1])
					pass := make([]byte, b[0])
					io.ReadFull(c, pass)
					if string(user) != want.user || string(pass) != want.pass {
						c.Write([]byte{1, 1})
						return
					}
					c.Write([]byte{1, 0})
				}
				if _, err := io.ReadFull(c, b[:4]); err != nil {
					return
				}
				if b[1] == 1 {
					// CONNECT (from x/net/proxy): record the target, then echo.
					var target string
					switch b[3] {
					case 1:
						io.ReadFull(c, b[:6])
						target = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), uint16(b[4])<<8|uint16(b[5])).String()
					case 3:
						io.ReadFull(c, b[:1])
						n := int(b[0])
						io.ReadFull(c, b[:n+2])
						target = fmt.Sprintf("%s:%d", b[:n], uint16(b[n])<<8|uint16(b[n+1]))
					default:
						return
					}
					s.mu.Lock()
					s.targets = append(s.targets, target)
					s.mu.Unlock()
					c.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0, 1})
					io.Copy(c, c)
					return
				}
				if _, err := io.ReadFull(c, b[4:10]); err != nil || b[1] != 3 {
					return
				}
				rep := []byte{5, 0, 0, 1, 127, 0, 0, 1, 0, 0}
				if zeroAddr {
					copy(rep[4:8], []byte{0, 0, 0, 0})
				}
				p := relay.LocalAddr().(*net.UDPAddr).Port
				rep[8], rep[9] = byte(p>>8), byte(p)
				c.Write(rep)
				io.Copy(io.Discard, c) // the association lives as long as this connection
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		relay.Close()
		s.wg.Wait()
	})
	return s
}

// TestSOCKSTCP runs the SOCKS5 CONNECT path (golang.org/x/net/proxy) against the fake
// server: the server's name goes to the proxy unresolved, credentials are offered when
// configured, and the tunnel then runs over the proxied TCP connection.
func TestSOCKSTCP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		px      config.Proxy
		want    *proxyCreds
		wantErr string
	}{
		{name: "no auth"},
		{name: "user/pass", px: config.Proxy{Creds: &config.ProxyCreds{User: "bob", Pass: "pw"}}, want: &proxyCreds{user: "bob", pass: "pw"}},
		{name: "wrong pass", px: config.Proxy{Creds: &config.ProxyCreds{User: "bob", Pass: "x"}}, want: &proxyCreds{user: "bob", pass: "pw"}, wantErr: "username/password authentication failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeSOCKS(t, tc.want, false)
			px := tc.px
			px.Kind = config.ProxySOCKS
			r := testRunner(t, &px, nil)
			addr := fs.ln.Addr().(*net.TCPAddr).AddrPort()
			pc, err := r.dialSOCKSTCP(context.Background(), &px, addr, "vpn.example.com:443", udpDialOptions{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			fs.mu.Lock()
			targets := fs.targets
			fs.mu.Unlock()
			if len(targets) != 1 || targets[0] != "vpn.example.com:443" {
				t.Errorf("CONNECT targets %v", targets)
			}
			if err := pc.WritePacket([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			bufs, sizes := [][]byte{make([]byte, 100)}, []int{0}
			if n, err := pc.ReadBatch(bufs, sizes); err != nil || n != 1 || string(bufs[0][:sizes[0]]) != "hello" {
				t.Fatalf("echo: %d %q %v", n, bufs[0][:sizes[0]], err)
			}
		})
	}
}

func TestSOCKSUDP(t *testing.T) {
	server := netip.MustParseAddrPort("192.0.2.7:1194")
	for _, tc := range []struct {
		name     string
		creds    *proxyCreds
		want     *proxyCreds
		zeroAddr bool
		wantErr  string
	}{
		{name: "no auth"},
		{name: "user/pass", creds: &proxyCreds{user: "bob", pass: "pw"}, want: &proxyCreds{user: "bob", pass: "pw"}, zeroAddr: true},
		{name: "wrong pass", creds: &proxyCreds{user: "bob", pass: "x"}, want: &proxyCreds{user: "bob", pass: "pw"}, wantErr: "refused the username and password"},
		{name: "auth needed", want: &proxyCreds{user: "bob", pass: "pw"}, wantErr: "not offered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeSOCKS(t, tc.want, tc.zeroAddr)
			ctl, err := net.Dial("tcp", fs.ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			relay, err := socksUDPAssociate(ctl, tc.creds)
			if tc.wantErr != "" {
				ctl.Close()
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.zeroAddr != relay.Addr().IsUnspecified() {
				t.Fatalf("relay %v", relay)
			}
			uc, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), relay.Port())))
			if err != nil {
				t.Fatal(err)
			}
			c := newSOCKSUDPConn(ctl.(*net.TCPConn), uc, server, relay)
			defer c.Close()
			if err := c.WriteBatch([][]byte{[]byte("one"), []byte("two")}); err != nil {
				t.Fatal(err)
			}
			bufs, sizes := [][]byte{make([]byte, 100)}, []int{0}
			for _, want := range []string{"one", "two"} {
				if n, err := c.ReadBatch(bufs, sizes); err != nil || n != 1 || string(bufs[0][:sizes[0]]) != want {
					t.Fatalf("echo: %q %v, want %q", bufs[0][:sizes[0]], err, want)
				}
			}
			if c.DatagramOverhead() != 10 || transportOf(c).extra != 10 {
				t.Error("SOCKS header not counted as datagram overhead")
			}
		})
	}
}

// TestSOCKSUDPEndsWithControl: the association ends when the proxy closes the
// control connection, and the transport reports it.
func TestSOCKSUDPEndsWithControl(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	ctl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	relay, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer relay.Close()
	uc, _ := net.DialUDP("udp4", nil, relay.LocalAddr().(*net.UDPAddr))
	c := newSOCKSUDPConn(ctl.(*net.TCPConn), uc, netip.MustParseAddrPort("192.0.2.7:1194"), relay.LocalAddr().(*net.UDPAddr).AddrPort())
	errc := make(chan error, 1)
	go func() {
		bufs, sizes := [][]byte{make([]byte, 100)}, []int{0}
		_, err := c.ReadBatch(bufs, sizes)
		errc <- err
	}()
	srv.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("ReadBatch returned no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadBatch still blocked after the control connection closed")
	}
	c.Close()
}

func TestSOCKSUDPHeader(t *testing.T) {
	server := netip.MustParseAddrPort("192.0.2.7:1194")
	var b [10]byte
	putSOCKSUDPHeader(b[:], server)
	if want := []byte{0, 0, 0, 1, 192, 0, 2, 7, 0x04, 0xaa}; !bytes.Equal(b[:], want) {
		t.Fatalf("header %x, want %x", b, want)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		off  int
		ok   bool
	}{
		{"ipv4", append(b[:], 'x'), 10, true},
		{"ipv4 empty payload", b[:], 10, true},
		{"fragmented", []byte{0, 0, 1, 1, 192, 0, 2, 7, 0x04, 0xaa, 'x'}, 0, false},
		{"other source", []byte{0, 0, 0, 1, 192, 0, 2, 8, 0x04, 0xaa, 'x'}, 0, false},
		{"other port", []byte{0, 0, 0, 1, 192, 0, 2, 7, 0x04, 0xab, 'x'}, 0, false},
		{"short", b[:9], 0, false},
		{"domain", []byte{0, 0, 0, 3, 1, 'a', 0x04, 0xaa}, 0, false},
		{"mapped ipv6", append([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7, 0x04, 0xaa}, 'x'), 22, true},
		{"rsv set", []byte{1, 0, 0, 1, 192, 0, 2, 7, 0x04, 0xaa}, 0, false},
	} {
		off, ok := parseSOCKSUDPHeader(tc.in, server)
		if off != tc.off || ok != tc.ok {
			t.Errorf("%s: %d %v, want %d %v", tc.name, off, ok, tc.off, tc.ok)
		}
	}
}

func FuzzSOCKSUDPHeader(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 192, 0, 2, 7, 0x04, 0xaa, 'x'})
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7, 0x04, 0xaa})
	f.Add([]byte{0, 0, 0, 3, 3, 'a', 'b', 'c', 0, 1})
	f.Add([]byte{})
	server := netip.MustParseAddrPort("192.0.2.7:1194")
	f.Fuzz(func(t *testing.T, p []byte) {
		off, ok := parseSOCKSUDPHeader(p, server)
		if ok && (off > len(p) || off < 10) {
			t.Fatalf("payload offset %d in %d bytes", off, len(p))
		}
	})
}

// FuzzSOCKSReply feeds arbitrary replies to the UDP ASSOCIATE reply reader.
func FuzzSOCKSReply(f *testing.F) {
	f.Add([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38})
	f.Add([]byte{5, 0, 0, 3, 4, 'h', 'o', 's', 't', 0x04, 0x38})
	f.Add([]byte{5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1})
	f.Add([]byte{5, 7, 0, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		a, err := readSOCKSReply(bytes.NewReader(p))
		if err == nil && a.Port() == 0 {
			t.Fatal("relay port 0 accepted")
		}
	})
}

// TestSOCKSUDPNeedsIPv4: the datagram header carries an IPv4 server address
// only, so an IPv6 remote is refused with a clear error before any proxy
// connection.
func TestSOCKSUDPNeedsIPv4(t *testing.T) {
	px := &config.Proxy{Kind: config.ProxySOCKS, Host: "127.0.0.1", Port: 1}
	r := testRunner(t, px, nil)
	conn := &config.Connection{Remote: "2001:db8::1", Port: 1194, Proto: config.ProtoUDP}
	_, err := r.dialSOCKSUDP(context.Background(), conn, px, netip.MustParseAddrPort("127.0.0.1:1"), udpDialOptions{})
	if err == nil || !strings.Contains(err.Error(), "needs an IPv4 address") {
		t.Fatalf("error %v", err)
	}
}
