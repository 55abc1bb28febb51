package session

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine/push"
	"github.com/ovpnd/ovpnd/internal/israce"
)

// ip6Packet builds an IPv6 packet from src to dst: next header nh, hop
// limit 64, payload pl.
func ip6Packet(src, dst string, nh byte, pl []byte) []byte {
	p := make([]byte, 40+len(pl))
	p[0], p[1], p[2], p[3] = 0x60, 0x12, 0x34, 0x56 // traffic class 0x01, flow label 0x23456
	binary.BigEndian.PutUint16(p[4:6], uint16(len(pl)))
	p[6], p[7] = nh, 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	copy(p[40:], pl)
	return p
}

// echoRequest is an ICMPv6 echo request (its checksum is not checked here).
func echoRequest(n int) []byte {
	b := make([]byte, 8+n)
	b[0] = 128
	binary.BigEndian.PutUint16(b[4:], 0x1234)
	for i := range n {
		b[8+i] = byte(i)
	}
	return b
}

// checkUnreachable verifies reply as the answer to pkt from src: headers,
// the invoking packet's leading bytes, and the checksum two ways, by the
// ones'-complement sum over pseudo-header and message, and against
// golang.org/x/net/icmp's marshalling of the same message.
func checkUnreachable(t testing.TB, reply, pkt []byte, src netip.Addr) {
	t.Helper()
	if len(reply) > 1280 || len(reply) < 48 {
		t.Fatalf("reply is %d bytes, want 48..1280", len(reply))
	}
	if reply[0]>>4 != 6 || !bytes.Equal(reply[0:4], pkt[0:4]) {
		t.Errorf("version/class/flow %x, want %x", reply[0:4], pkt[0:4])
	}
	if int(binary.BigEndian.Uint16(reply[4:6])) != len(reply)-40 || reply[6] != 58 || reply[7] == 0 {
		t.Errorf("payload length %d next header %d hop limit %d", binary.BigEndian.Uint16(reply[4:6]), reply[6], reply[7])
	}
	rsrc, _ := netip.AddrFromSlice(reply[8:24])
	rdst, _ := netip.AddrFromSlice(reply[24:40])
	if rsrc != src || !bytes.Equal(reply[24:40], pkt[8:24]) {
		t.Errorf("reply %v -> %v, want %v -> the packet's source %x", rsrc, rdst, src, pkt[8:24])
	}
	m := reply[40:]
	want := pkt[:min(len(pkt), 1280-48)]
	if m[0] != 1 || m[1] != 0 || !bytes.Equal(m[4:8], []byte{0, 0, 0, 0}) || !bytes.Equal(m[8:], want) {
		t.Fatalf("message type %d code %d, body %d bytes (want %d of the packet)", m[0], m[1], len(m)-8, len(want))
	}

	// Ones'-complement sum of pseudo-header and message, checksum included: 0xffff.
	var sum uint32
	add := func(b []byte) {
		for i := 0; i < len(b); i += 2 {
			w := uint32(b[i]) << 8
			if i+1 < len(b) {
				w |= uint32(b[i+1])
			}
			sum += w
		}
	}
	add(reply[8:40])
	var ln [8]byte
	binary.BigEndian.PutUint32(ln[0:4], uint32(len(m)))
	ln[7] = 58
	add(ln[:])
	add(m)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		t.Errorf("checksum %04x does not verify (sum %04x)", binary.BigEndian.Uint16(m[2:4]), sum)
	}

	msg := icmp.Message{Type: ipv6.ICMPTypeDestinationUnreachable, Code: 0, Body: &icmp.DstUnreach{Data: want}}
	ref, err := msg.Marshal(icmp.IPv6PseudoHeader(rsrc.AsSlice(), rdst.AsSlice()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ref, m) {
		t.Errorf("message differs from x/net/icmp's:\n got %x\nwant %x", m[:16], ref[:16])
	}
}

func TestICMP6Unreachable(t *testing.T) {
	src := block6Source
	src16 := src.As16()
	hbh := func(inner byte, rest []byte) []byte { // hop-by-hop header, 8 bytes, then rest
		return append([]byte{inner, 0, 1, 4, 0, 0, 0, 0}, rest...)
	}
	for _, tc := range []struct {
		name   string
		pkt    []byte
		answer bool
	}{
		{"echo request", ip6Packet("2001:db8::2", "2001:db8:1::1", 58, echoRequest(56)), true},
		{"udp", ip6Packet("fd00::2", "fd00:1::9", 17, make([]byte, 20)), true},
		{"odd length", ip6Packet("2001:db8::2", "2001:db8:1::1", 17, make([]byte, 9)), true},
		{"header only", ip6Packet("2001:db8::2", "2001:db8:1::1", 59, nil), true},
		{"large, truncated", ip6Packet("2001:db8::2", "2001:db8:1::1", 17, make([]byte, 1460)), true},
		{"echo behind hop-by-hop", ip6Packet("2001:db8::2", "2001:db8:1::1", 0, hbh(58, echoRequest(8))), true},
		{"icmp error", ip6Packet("2001:db8::2", "2001:db8:1::1", 58, []byte{1, 0, 0, 0, 0, 0, 0, 0}), false},
		{"packet too big", ip6Packet("2001:db8::2", "2001:db8:1::1", 58, []byte{2, 0, 0, 0, 0, 0, 5, 0}), false},
		{"icmp error behind hop-by-hop", ip6Packet("2001:db8::2", "2001:db8:1::1", 0, hbh(58, []byte{3, 0, 0, 0, 0, 0, 0, 0})), false},
		{"icmp without type", ip6Packet("2001:db8::2", "2001:db8:1::1", 58, nil), false},
		{"truncated extension header", ip6Packet("2001:db8::2", "2001:db8:1::1", 0, []byte{58}), false},
		{"extension header past the end", ip6Packet("2001:db8::2", "2001:db8:1::1", 60, []byte{58, 9, 0, 0, 0, 0, 0, 0}), false},
		{"later fragment of icmp", ip6Packet("2001:db8::2", "2001:db8:1::1", 44, []byte{58, 0, 0, 8, 0, 0, 0, 1}), false},
		{"later fragment of udp", ip6Packet("2001:db8::2", "2001:db8:1::1", 44, []byte{17, 0, 0, 8, 0, 0, 0, 1}), true},
		{"first fragment of echo", ip6Packet("2001:db8::2", "2001:db8:1::1", 44, append([]byte{58, 0, 0, 1, 0, 0, 0, 1}, echoRequest(8)...)), true},
		{"multicast destination", ip6Packet("fe80::2", "ff02::16", 0, hbh(58, []byte{143, 0, 0, 0})), false},
		{"unspecified source", ip6Packet("::", "2001:db8:1::1", 58, echoRequest(8)), false},
		{"multicast source", ip6Packet("ff02::1", "2001:db8:1::1", 17, make([]byte, 8)), false},
		{"short", ip6Packet("2001:db8::2", "2001:db8:1::1", 17, nil)[:39], false},
		{"ipv4", testPackets(1, 60)[0], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, icmp6MaxLen)
			n := icmp6Unreachable(out, tc.pkt, &src16)
			if !tc.answer {
				if n != 0 {
					t.Fatalf("answered with %d bytes, want no answer", n)
				}
				return
			}
			if n == 0 {
				t.Fatal("no answer")
			}
			checkUnreachable(t, out[:n], tc.pkt, src)
		})
	}
}

func TestICMP6UnreachableTruncates(t *testing.T) {
	src16 := block6Source.As16()
	out := make([]byte, icmp6MaxLen)
	pkt := ip6Packet("2001:db8::2", "2001:db8:1::1", 17, make([]byte, 9000))
	if n := icmp6Unreachable(out, pkt, &src16); n != 1280 {
		t.Fatalf("reply to a 9040-byte packet is %d bytes, want 1280", n)
	}
}

// TestBlockIPv6Source: the replies come from ifconfig-ipv6's peer when the
// tunnel has one, from fe80::7 otherwise, as in OpenVPN.
func TestBlockIPv6Source(t *testing.T) {
	d, _, _ := newTestPath(t, &fakeTun{}, &fakeConn{})
	if d.block6.cfg.Load() != nil {
		t.Fatal("block-ipv6 on by default")
	}
	d.setBlockIPv6(true, netip.Addr{})
	if got := netip.AddrFrom16(d.block6.cfg.Load().src); got != netip.MustParseAddr("fe80::7") {
		t.Errorf("source without a peer %v, want fe80::7", got)
	}
	peer := netip.MustParseAddr("fd00:77::1")
	d.setBlockIPv6(true, peer)
	if got := netip.AddrFrom16(d.block6.cfg.Load().src); got != peer {
		t.Errorf("source %v, want the peer %v", got, peer)
	}
	d.setBlockIPv6(false, peer)
	if d.block6.cfg.Load() != nil {
		t.Error("block-ipv6 still on")
	}
}

// TestBlockIPv6DataPath runs the tun reader over a mix of IPv4 and IPv6
// packets: with block-ipv6 every IPv4 packet goes to the server in order and
// no IPv6 packet does; each answerable IPv6 packet gets its unreachable on
// the tun device. Without block-ipv6 everything goes to the server.
func TestBlockIPv6DataPath(t *testing.T) {
	v4 := testPackets(5, 100)
	echo := ip6Packet("2001:db8::2", "2001:db8:1::1", 58, echoRequest(56))
	udp := ip6Packet("2001:db8::2", "fd00::53", 17, make([]byte, 1400))
	mld := ip6Packet("fe80::2", "ff02::16", 58, []byte{143, 0, 0, 0})
	in := [][]byte{v4[0], echo, v4[1], v4[2], udp, mld, v4[3], echo, v4[4]}

	for _, block := range []bool{true, false} {
		tn := &fakeTun{in: append([][]byte(nil), in...), consume: true, record: true}
		c := &fakeConn{record: true}
		d, _, _ := newTestPath(t, tn, c)
		d.setKeys(&keySet{primary: &fakeKeys{id: 1}})
		peer := netip.MustParseAddr("fd00:77::1")
		d.setBlockIPv6(block, peer)
		d.RoutineTunToSocket() // returns when the fake runs dry

		var sent [][]byte
		for _, s := range c.sent {
			sent = append(sent, s[fakeHead:len(s)-fakeTail])
		}
		if !block {
			if len(sent) != len(in) || len(tn.written) != 0 {
				t.Fatalf("block-ipv6 off: %d sent, %d written to tun; want %d, 0", len(sent), len(tn.written), len(in))
			}
			continue
		}
		if len(sent) != len(v4) {
			t.Fatalf("sent %d packets to the server, want the %d IPv4 ones", len(sent), len(v4))
		}
		for i := range v4 {
			if !bytes.Equal(sent[i], v4[i]) {
				t.Fatalf("packet %d to the server is not IPv4 packet %d", i, i)
			}
		}
		if len(tn.written) != 3 { // echo, udp, echo; not the MLD report
			t.Fatalf("%d replies on the tun device, want 3", len(tn.written))
		}
		for i, p := range [][]byte{echo, udp, echo} {
			checkUnreachable(t, tn.written[i], p, peer)
		}
	}
}

// TestDataPathZeroAllocsBlockIPv6: answering IPv6 in the tun reader
// allocates nothing per batch once its reply buffers exist.
func TestDataPathZeroAllocsBlockIPv6(t *testing.T) {
	if israce.Enabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	pkts := testPackets(maxBatch, 1400)
	for i := 0; i < len(pkts); i += 3 {
		pkts[i] = ip6Packet("2001:db8::2", "2001:db8:1::1", 17, make([]byte, 1400))
	}
	tn := &fakeTun{in: pkts}
	c := &fakeConn{}
	d, _, _ := newTestPath(t, tn, c)
	d.setKeys(&keySet{primary: &fakeKeys{id: 1}})
	d.setBlockIPv6(true, netip.Addr{})
	b := d.block6.cfg.Load()
	batch := func() {
		n, _ := tn.Read(d.tx.bufs, d.tx.sizes, d.txOff)
		d.sealAndSend(d.answerIPv6(b, n))
	}
	batch() // grows the reply buffers
	if a := testing.AllocsPerRun(50, batch); a != 0 {
		t.Errorf("block-ipv6 batch: %v allocs, want 0", a)
	}
	if tn.nwrites == 0 || c.nsent == 0 {
		t.Fatalf("%d replies, %d sent", tn.nwrites, c.nsent)
	}
}

// FuzzICMP6Unreachable feeds arbitrary packets to the ICMPv6 builder: it
// never panics, and whatever it answers is a well-formed, checksummed
// Destination Unreachable of at most 1280 bytes to the packet's source.
func FuzzICMP6Unreachable(f *testing.F) {
	f.Add(ip6Packet("2001:db8::2", "2001:db8:1::1", 58, echoRequest(56)))
	f.Add(ip6Packet("2001:db8::2", "2001:db8:1::1", 58, []byte{1, 0, 0, 0, 0, 0, 0, 0}))
	f.Add(ip6Packet("2001:db8::2", "2001:db8:1::1", 0, []byte{58, 0, 1, 4, 0, 0, 0, 0, 128, 0, 0, 0}))
	f.Add(ip6Packet("2001:db8::2", "2001:db8:1::1", 44, []byte{58, 0, 0, 8, 0, 0, 0, 1}))
	f.Add(ip6Packet("2001:db8::2", "2001:db8:1::1", 60, []byte{43, 0, 0, 0, 0, 0, 0, 0, 58, 255}))
	f.Add(ip6Packet("::", "ff02::2", 58, []byte{133, 0, 0, 0}))
	f.Add(ip6Packet("2001:db8::2", "2001:db8:1::1", 17, make([]byte, 1500)))
	f.Add([]byte{0x60})
	f.Add(testPackets(1, 60)[0])
	src := netip.MustParseAddr("fd00:77::1")
	src16 := src.As16()
	f.Fuzz(func(t *testing.T, pkt []byte) {
		out := make([]byte, icmp6MaxLen)
		n := icmp6Unreachable(out, pkt, &src16)
		if n == 0 {
			return
		}
		if len(pkt) < 40 || pkt[0]>>4 != 6 || pkt[24] == 0xff || pkt[8] == 0xff {
			t.Fatalf("answered a packet it must not: %x", pkt[:min(len(pkt), 40)])
		}
		checkUnreachable(t, out[:n], pkt, src)
	})
}

// TestBlockIPv6Push: a pushed block-ipv6 turns the data path's answering on
// (from fe80::7 without an IPv6 peer, from the peer with one) and asks
// routing for the IPv6 redirect routes; a PUSH_UPDATE removing it turns it
// off, and the profile's block-ipv6 holds whatever the server pushes.
func TestBlockIPv6Push(t *testing.T) {
	server := netip.MustParseAddr("198.18.0.1")
	src := func(r *runner) netip.Addr {
		b := r.dp.block6.cfg.Load()
		if b == nil {
			return netip.Addr{}
		}
		return netip.AddrFrom16(b.src)
	}
	r, fr, logs := newTestRunner(t, &config.Config{TunMTU: 1500})
	r.dp, _, _ = newTestPath(t, &fakeTun{}, &fakeConn{})
	if err := applyPushLines(r, append(labPush, "redirect-gateway def1 ipv6", "block-ipv6"), server); err != nil {
		t.Fatal(err)
	}
	if got := src(r); got != block6Source {
		t.Errorf("block-ipv6 pushed: replies from %v, want %v", got, block6Source)
	}
	if rd := fr.last().Redirect; rd == nil || !rd.IPv6 || !rd.BlockIPv6 {
		t.Errorf("routing redirect %+v, want IPv6 with BlockIPv6", rd)
	}
	if strings.Contains(logs(), "not implemented") {
		t.Errorf("log says block-ipv6 is not implemented:\n%s", logs())
	}

	if err := applyPushLines(r, append(labPush, "ifconfig-ipv6 fd00:8::2/64 fd00:8::1", "block-ipv6"), server); err != nil {
		t.Fatal(err)
	}
	if got, want := src(r), netip.MustParseAddr("fd00:8::1"); got != want {
		t.Errorf("with ifconfig-ipv6: replies from %v, want the peer %v", got, want)
	}
	u, err := push.ParseUpdate([]string{"-block-ipv6"}, r.cfg.PushPolicy())
	if err != nil {
		t.Fatal(err)
	}
	r.applyPushUpdate(u, server)
	if got := src(r); got.IsValid() {
		t.Errorf("block-ipv6 removed by PUSH_UPDATE, still answering from %v", got)
	}

	r2, _, _ := newTestRunner(t, &config.Config{TunMTU: 1500, Net: config.NetSettings{BlockIPv6: true}})
	r2.dp, _, _ = newTestPath(t, &fakeTun{}, &fakeConn{})
	if err := applyPushLines(r2, labPush, server); err != nil {
		t.Fatal(err)
	}
	if got := src(r2); got != block6Source {
		t.Errorf("block-ipv6 in the profile: replies from %v, want %v", got, block6Source)
	}
}

// BenchmarkBlockIPv6 is the tun reader's block-ipv6 step over one batch:
// IPv4 passes through (the per-packet check), IPv6 is answered.
func BenchmarkBlockIPv6(b *testing.B) {
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"ipv4-1400", testPackets(1, 1400)[0]},
		{"ipv6-1400", ip6Packet("2001:db8::2", "2001:db8:1::1", 17, make([]byte, 1360))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			pkts := make([][]byte, maxBatch)
			for i := range pkts {
				pkts[i] = tc.pkt
			}
			tn := &fakeTun{in: pkts}
			d, _, _ := newTestPath(b, tn, &fakeConn{})
			d.setBlockIPv6(true, netip.Addr{})
			blk := d.block6.cfg.Load()
			n, _ := tn.Read(d.tx.bufs, d.tx.sizes, d.txOff)
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.pkt) * n))
			for b.Loop() {
				d.answerIPv6(blk, n)
			}
		})
	}
}
