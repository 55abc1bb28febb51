package session

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine"
	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/internal/israce"
)

// floatFake is a fakeConn whose datagrams carry a source address, with the float side a
// float socket has.
type floatFake struct {
	fakeConn
	src   []netip.AddrPort // source of each queued datagram
	peer  netip.AddrPort
	from  []netip.AddrPort
	batch bool
}

func (c *floatFake) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	n := min(len(c.in), len(bufs))
	c.from = c.from[:0]
	c.batch = false
	for i := 0; i < n; i++ {
		a := c.src[i]
		if a == c.peer {
			a = netip.AddrPort{}
		}
		c.batch = c.batch || a.IsValid()
		c.from = append(c.from, a)
	}
	c.src = c.src[n:]
	return c.fakeConn.ReadBatch(bufs, sizes)
}

func (c *floatFake) anyForeign() bool                      { return c.batch }
func (c *floatFake) foreign(i int) (netip.AddrPort, bool)  { return c.from[i], c.from[i].IsValid() }
func (c *floatFake) peerAddr() netip.AddrPort              { return c.peer }
func (c *floatFake) setPeer(p netip.AddrPort) (moved bool) { moved, c.peer = p != c.peer, p; return }

// TestFloatOnlyAuthenticMoves: on a float transport, packets from another address move the
// peer only once they decrypt. A forgery, a replayed copy of a real packet and a packet under
// a key the client does not have, all sent from a spoofer's address, leave the peer where it
// is and reach nothing; a control packet from there goes to the control loop marked with its
// source (which moves the peer only if the engine authenticates it); a real packet from the
// server's new address moves the peer and wakes the control loop.
func TestFloatOnlyAuthenticMoves(t *testing.T) {
	ck, sk := realKeyPair(t, "AES-256-GCM", "")
	seal := func(b byte) []byte {
		n := 40
		buf := make([]byte, datachannel.Headroom+n+datachannel.Tailroom)
		p := buf[datachannel.Headroom : datachannel.Headroom+n]
		p[0], p[1] = 0x45, b
		pkt, err := sk.Seal(buf, datachannel.Headroom, n)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), pkt...)
	}
	server := netip.MustParseAddrPort("192.0.2.1:1194")
	spoofer := netip.MustParseAddrPort("198.51.100.66:1194")
	moved := netip.MustParseAddrPort("192.0.2.2:1194")

	first, second, third := seal(1), seal(2), seal(3)
	forged := append([]byte(nil), second...)
	forged[len(forged)-1] ^= 1
	otherKey := append([]byte(nil), second...)
	otherKey[0] = otherKey[0]&^7 | 5
	control := []byte{4 << 3, 1, 2, 3, 4, 5, 6, 7, 8, 0}

	c := &floatFake{peer: server}
	c.in = [][]byte{first, append([]byte(nil), first...), forged, otherKey, control, second, third, {}}
	c.src = []netip.AddrPort{server, spoofer, spoofer, spoofer, spoofer, server, moved, server}
	tn := &fakeTun{record: true}
	cnt := &counters{}
	d := newDataPath(tn, cnt, dataPathConfig{Headroom: datachannel.Headroom, Tailroom: datachannel.Tailroom, MTU: 1500}, func(string, ...any) {})
	movedc := make(chan struct{}, 1)
	ctrl := make(chan *ctrlPacket, 4)
	ref := &connRef{conn: c, ctrl: ctrl, errc: make(chan error, 1), float: c, moved: movedc}
	d.conn.Store(ref)
	d.setKeys(&keySet{primary: ck})

	// One datagram per batch, so the peer each is checked against is the one before it.
	bufs, sizes := d.rx.rbufs[:1], d.rx.sizes
	step := func() {
		t.Helper()
		n, err := c.ReadBatch(bufs, sizes)
		if err != nil {
			t.Fatal(err)
		}
		d.openAndWrite(ref, n)
	}
	for range 6 { // first, the replay, the forgery, the other key, control, second
		step()
	}
	if c.peer != server {
		t.Fatalf("peer moved to %v by a packet that did not authenticate", c.peer)
	}
	select {
	case <-movedc:
		t.Fatal("control loop woken for a move without an authentic packet")
	default:
	}
	if s := cnt.snapshot(); len(tn.written) != 2 || s.Replayed != 1 || s.DecryptFailed != 1 || s.NoKey != 1 {
		t.Fatalf("delivered %d, counters %+v; want 2 delivered, 1 replayed, 1 failed, 1 without a key", len(tn.written), s)
	}
	select {
	case p := <-ctrl:
		if p.from != spoofer {
			t.Errorf("control packet from %v, want it marked from %v", p.from, spoofer)
		}
	default:
		t.Fatal("control packet from the new address not forwarded")
	}
	step() // third, from the server's new address
	if c.peer != moved {
		t.Fatalf("peer %v after an authentic packet from %v", c.peer, moved)
	}
	select {
	case <-movedc:
	default:
		t.Fatal("control loop not woken after the move")
	}
	if len(tn.written) != 3 {
		t.Fatalf("delivered %d, want 3", len(tn.written))
	}
}

// loopbackPair listens on two loopback addresses: the server's, and the one it floats to.
func loopbackPair(t *testing.T) (a, b *net.UDPConn) {
	return listenPair(t, "udp4", net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2))
}

func listenPair(t *testing.T, network string, ipa, ipb net.IP) (a, b *net.UDPConn) {
	t.Helper()
	var err error
	a, err = net.ListenUDP(network, &net.UDPAddr{IP: ipa})
	if err != nil {
		t.Skipf("no %v: %v", ipa, err)
	}
	t.Cleanup(func() { a.Close() })
	b, err = net.ListenUDP(network, &net.UDPAddr{IP: ipb})
	if err != nil {
		t.Skipf("no second loopback address %v: %v", ipb, err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

// TestFloatSocket: a float socket reads from any address, marks datagrams from another one
// than the peer's, and sends (batches and control packets) wherever the peer is now, with
// and without UDP GRO/GSO, and over IPv6 (where the server moves to another port). Without
// float, the connected socket never sees the other address.
func TestFloatSocket(t *testing.T) {
	for _, tc := range []struct {
		name     string
		noGSO    bool
		network  string
		ipa, ipb net.IP
	}{
		{"gso", false, "udp4", net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2)},
		{"no gso", true, "udp4", net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2)},
		{"ipv6 port", false, "udp6", net.IPv6loopback, net.IPv6loopback},
	} {
		noGSO := tc.noGSO
		t.Run(tc.name, func(t *testing.T) {
			sa, sb := listenPair(t, tc.network, tc.ipa, tc.ipb)
			aAddr := sa.LocalAddr().(*net.UDPAddr).AddrPort()
			bAddr := sb.LocalAddr().(*net.UDPAddr).AddrPort()
			u, err := dialUDP(context.Background(), aAddr, udpDialOptions{Float: true, NoGSO: noGSO})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			if la := u.LocalAddr(); la.Addr() != aAddr.Addr() || la.Port() == 0 {
				t.Errorf("LocalAddr %v, want %v and the bound port", la, aAddr.Addr())
			}
			if err := u.WriteBatch([][]byte{[]byte("hello a")}); err != nil {
				t.Fatal(err)
			}
			client := recvFrom(t, sa, "hello a")
			if _, err := sa.WriteToUDPAddrPort([]byte("from a"), client); err != nil {
				t.Fatal(err)
			}
			if _, err := sb.WriteToUDPAddrPort([]byte("from b"), client); err != nil {
				t.Fatal(err)
			}
			got := map[string]netip.AddrPort{}
			bufs := [][]byte{make([]byte, 2048), make([]byte, 2048)}
			sizes := make([]int, 2)
			for len(got) < 2 {
				n, err := u.ReadBatch(bufs, sizes)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < n; i++ {
					from, _ := u.foreign(i)
					got[string(bufs[i][:sizes[i]])] = from
				}
			}
			if f := got["from a"]; f.IsValid() {
				t.Errorf("datagram from the peer marked as from %v", f)
			}
			if f := got["from b"]; f != bAddr {
				t.Errorf("datagram from %v marked as from %v", bAddr, f)
			}
			if !u.setPeer(bAddr) || u.setPeer(bAddr) {
				t.Fatal("setPeer does not report the move once")
			}
			if u.RemoteAddr() != bAddr {
				t.Errorf("RemoteAddr %v after the move, want %v", u.RemoteAddr(), bAddr)
			}
			if err := u.WriteBatch([][]byte{[]byte("batch b")}); err != nil {
				t.Fatal(err)
			}
			recvFrom(t, sb, "batch b")
			if err := u.WritePacket([]byte("control b")); err != nil {
				t.Fatal(err)
			}
			recvFrom(t, sb, "control b")
		})
	}
	t.Run("without float", func(t *testing.T) {
		sa, sb := loopbackPair(t)
		u, err := dialUDP(context.Background(), sa.LocalAddr().(*net.UDPAddr).AddrPort(), udpDialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		if asFloat(u) != nil {
			t.Fatal("a connected socket claims to float")
		}
		if _, err := sb.WriteToUDPAddrPort([]byte("from b"), u.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		if _, err := sa.WriteToUDPAddrPort([]byte("from a"), u.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		bufs, sizes := [][]byte{make([]byte, 2048)}, make([]int, 1)
		n, err := u.ReadBatch(bufs, sizes)
		if err != nil || n != 1 || string(bufs[0][:sizes[0]]) != "from a" {
			t.Fatalf("read %q (%d, %v), want only the peer's datagram", bufs[0][:sizes[0]], n, err)
		}
	})
}

func recvFrom(t *testing.T, c *net.UDPConn, want string) netip.AddrPort {
	t.Helper()
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("waiting for %q: %v", want, err)
	}
	if string(buf[:n]) != want {
		t.Fatalf("got %q, want %q", buf[:n], want)
	}
	return from
}

// TestFloatSocketZeroAllocs: a float socket's batches, sent to the peer and received from
// another address, allocate nothing.
func TestFloatSocketZeroAllocs(t *testing.T) {
	if israce.Enabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	sa, sb := loopbackPair(t)
	_ = sa.SetReadBuffer(4 << 20)
	u, err := dialUDP(context.Background(), sa.LocalAddr().(*net.UDPAddr).AddrPort(), udpDialOptions{Float: true})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	pkts := [][]byte{make([]byte, 1200), make([]byte, 1200), make([]byte, 300)}
	if a := testing.AllocsPerRun(20, func() {
		if err := u.WriteBatch(pkts); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("WriteBatch: %v allocs per batch, want 0", a)
	}
	const runs = 20
	for range runs + 1 {
		if _, err := sb.WriteToUDPAddrPort(make([]byte, 1000), u.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	bufs, sizes := [][]byte{make([]byte, 2048)}, make([]int, 1)
	if a := testing.AllocsPerRun(runs, func() {
		if n, err := u.ReadBatch(bufs, sizes); err != nil || n != 1 || !u.anyForeign() {
			t.Fatalf("read %d, %v, foreign %v", n, err, u.anyForeign())
		}
	}); a != 0 {
		t.Errorf("ReadBatch: %v allocs per batch, want 0", a)
	}
}

// TestFloatMovesRoutes: once the peer moved, the control loop follows: the attempt's remote,
// the status, and the routing configuration, whose server addresses (the bypass route of a
// redirect-gateway, the route monitor's watch list) name the new address, with the rest of
// the pushed settings unchanged.
func TestFloatMovesRoutes(t *testing.T) {
	cfg := &config.Config{TunMTU: 1500, TLSWrap: config.TLSWrap{Mode: config.WrapTLSCrypt}}
	r, fr, logs := newTestRunner(t, cfg)
	old := netip.MustParseAddrPort("198.18.0.1:1194")
	if err := applyPushLines(r, labPush, old.Addr()); err != nil {
		t.Fatal(err)
	}
	before := fr.last()
	c := &floatFake{peer: old}
	a := &attempt{r: r, s: r.s, remote: old, connected: true}
	a.ref = &connRef{conn: c, float: c}
	moved := netip.MustParseAddrPort("198.18.0.3:1194")
	c.setPeer(moved)
	a.floated()
	if a.remote != moved || r.s.Status().Remote != moved {
		t.Errorf("remote %v, status %v; want %v", a.remote, r.s.Status().Remote, moved)
	}
	after := fr.last()
	if after == before || len(after.ServerAddrs) != 1 || after.ServerAddrs[0] != moved.Addr() {
		t.Fatalf("routing server addresses %v, want [%v]", after.ServerAddrs, moved.Addr())
	}
	if len(after.Routes) != len(before.Routes) || (after.Redirect == nil) != (before.Redirect == nil) {
		t.Errorf("routes changed with the server's address: %+v → %+v", before, after)
	}
	if !strings.Contains(logs(), "float: the server now sends from 198.18.0.3:1194") {
		t.Errorf("move not logged:\n%s", logs())
	}
	n := fr.count()
	a.floated() // nothing new: no routing change
	if fr.count() != n {
		t.Error("routing set again without a move")
	}
}

// TestFloatControlNeedsAuthentication: a control packet from another address than the
// server's moves nothing unless the engine authenticated it. With tls-crypt a forged one
// fails there; without tls-auth or tls-crypt it is not even handed to the engine, since
// nothing could tell it from the server's.
func TestFloatControlNeedsAuthentication(t *testing.T) {
	for _, mode := range []config.WrapMode{config.WrapTLSCrypt, config.WrapNone} {
		cfg := &config.Config{
			CA: x509.NewCertPool(), DataCiphers: []string{"AES-256-GCM"}, RemoteCertTLS: "server",
			TLSVersionMin: config.TLSVersion{Version: tls.VersionTLS12}, RenegInterval: time.Hour,
			TunMTU: 1500, ReplayWindow: 64,
			TLSWrap:     config.TLSWrap{Mode: mode, Direction: config.KeyDirBidi},
			Connections: []config.Connection{{Remote: "192.0.2.1", Port: 1194, Float: true}},
		}
		if mode != config.WrapNone {
			cfg.TLSWrap.Key = bytes.Repeat([]byte{7}, 256)
		}
		ec, err := engineConfig(cfg, &cfg.Connections[0], false, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		eng, err := engine.NewClient(ec)
		if err != nil {
			t.Fatal(err)
		}
		defer eng.Close()
		r, _, _ := newTestRunner(t, cfg)
		server := netip.MustParseAddrPort("192.0.2.1:1194")
		c := &floatFake{peer: server}
		a := &attempt{r: r, s: r.s, eng: eng, remote: server}
		a.ref = &connRef{conn: c, float: c}
		now := time.Now()
		eng.Start(now)
		// A server hard reset with a made-up session id and garbage for the wrap.
		forged := append([]byte{8 << 3}, bytes.Repeat([]byte{0x5a}, 120)...)
		p := &ctrlPacket{b: forged, from: netip.MustParseAddrPort("198.51.100.66:1194")}
		a.handleCtrl(now, p)
		if c.peer != server || a.remote != server || a.gotPacket {
			t.Errorf("%v: a forged control packet from %v moved the peer to %v (got packet %v)", mode, p.from, c.peer, a.gotPacket)
		}
		if n := eng.AuthenticatedControl(); n != 0 {
			t.Errorf("%v: engine authenticated %d forged packets", mode, n)
		}
	}
}
