package session

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine/datachannel"
)

// synOpts are the options of a typical Linux SYN: MSS, SACK permitted,
// timestamps, NOP, window scale (20 bytes, MSS value at an even offset).
func synOpts(mss uint16) []byte {
	return []byte{
		2, 4, byte(mss >> 8), byte(mss),
		4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0,
		1, 3, 3, 7,
	}
}

// tcpPacket builds an IPv4 (or IPv6) TCP packet with valid checksums.
// ipOpts are IPv4 options (a multiple of 4 bytes).
func tcpPacket(v6 bool, flags byte, tcpOpts, ipOpts, payload []byte) []byte {
	for len(tcpOpts)%4 != 0 {
		tcpOpts = append(tcpOpts, 0) // EOL padding
	}
	tcp := make([]byte, 20+len(tcpOpts)+len(payload))
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], 0x01020304)
	tcp[12] = byte((20+len(tcpOpts))/4) << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	copy(tcp[20:], tcpOpts)
	copy(tcp[20+len(tcpOpts):], payload)

	var p []byte
	if v6 {
		p = make([]byte, 40, 40+len(tcp))
		p[0] = 0x60
		binary.BigEndian.PutUint16(p[4:], uint16(len(tcp)))
		p[6], p[7] = ipProtoTCP, 64
		copy(p[8:], []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2})
		copy(p[24:], []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	} else {
		ihl := 20 + len(ipOpts)
		p = make([]byte, ihl, ihl+len(tcp))
		p[0] = 0x40 | byte(ihl/4)
		binary.BigEndian.PutUint16(p[2:], uint16(ihl+len(tcp)))
		p[6] = 0x40 // DF
		p[8], p[9] = 64, ipProtoTCP
		copy(p[12:], []byte{10, 8, 0, 2, 10, 8, 0, 1})
		copy(p[20:], ipOpts)
		binary.BigEndian.PutUint16(p[10:], ^onesSum(0, p[:ihl]))
	}
	p = append(p, tcp...)
	th := p[len(p)-len(tcp):]
	binary.BigEndian.PutUint16(th[16:], ^tcpSum(p))
	return p
}

// onesSum adds b to a ones'-complement running sum.
func onesSum(sum uint32, b []byte) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xFFFF + sum>>16
	}
	return uint16(sum)
}

// tcpSum is the ones'-complement sum of the pseudo-header and TCP segment of
// p; 0xFFFF means the checksum field is right, 0 that p is too short.
func tcpSum(p []byte) uint16 {
	var sum uint32
	var seg []byte
	if len(p) < 40 {
		return 0
	}
	if p[0]>>4 == 6 {
		sum += uint32(onesSum(0, p[8:40]))
		seg = p[40:]
	} else {
		ihl := int(p[0]&0x0F) * 4
		if ihl > len(p) {
			return 0
		}
		sum += uint32(onesSum(0, p[12:20]))
		seg = p[ihl:]
	}
	sum += ipProtoTCP + uint32(len(seg))
	return onesSum(sum, seg)
}

// mssOf returns the MSS option value of the TCP packet p, or 0.
func mssOf(p []byte) uint16 {
	off := int(p[0]&0x0F) * 4
	if p[0]>>4 == 6 {
		off = 40
	}
	tcp := p[off:]
	hlen := int(tcp[12]>>4) * 4
	for i := 20; i < hlen-1; {
		switch tcp[i] {
		case 0:
			return 0
		case 1:
			i++
			continue
		}
		if tcp[i] == 2 && tcp[i+1] == 4 {
			return binary.BigEndian.Uint16(tcp[i+2:])
		}
		if tcp[i+1] < 2 {
			return 0
		}
		i += int(tcp[i+1])
	}
	return 0
}

func TestClampMSS(t *testing.T) {
	const syn, synAck, ack = 0x02, 0x12, 0x10
	clamp := mssClamp{v4: 1400, v6: 1380}
	udp := tcpPacket(false, syn, synOpts(1460), nil, nil)
	udp[9] = 17
	for _, tc := range []struct {
		name    string
		pkt     []byte
		wantMSS uint16 // after clamping (0: no MSS option)
		changed bool
	}{
		{"v4 syn larger", tcpPacket(false, syn, synOpts(1460), nil, nil), 1400, true},
		{"v4 syn-ack larger", tcpPacket(false, synAck, synOpts(1460), nil, nil), 1400, true},
		{"v4 syn smaller", tcpPacket(false, syn, synOpts(1300), nil, nil), 1300, false},
		{"v4 syn equal", tcpPacket(false, syn, synOpts(1400), nil, nil), 1400, false},
		{"v4 syn no mss option", tcpPacket(false, syn, []byte{4, 2, 1, 3, 3, 7}, nil, nil), 0, false},
		{"v4 syn no options", tcpPacket(false, syn, nil, nil, nil), 0, false},
		{"v4 syn odd offset", tcpPacket(false, syn, []byte{1, 2, 4, 0xff, 0xd7, 1, 1, 1}, nil, nil), 1400, true},
		{"v4 syn mss after sack", tcpPacket(false, syn, []byte{4, 2, 1, 2, 4, 0x40, 0x00}, nil, nil), 1400, true},
		{"v4 syn ip options", tcpPacket(false, syn, synOpts(9000), []byte{1, 1, 1, 0}, nil), 1400, true},
		{"v4 syn with data", tcpPacket(false, syn, synOpts(1460), nil, []byte("hello")), 1400, true},
		{"v4 syn huge mss", tcpPacket(false, syn, synOpts(0xffff), nil, nil), 1400, true},
		{"v4 ack", tcpPacket(false, ack, synOpts(1460), nil, nil), 1460, false},
		{"v4 syn mss after eol", tcpPacket(false, syn, []byte{0, 0, 2, 4, 5, 0xb4}, nil, nil), 0, false},
		{"v4 syn bad mss length", tcpPacket(false, syn, []byte{2, 3, 5, 0xb4}, nil, nil), 0, false},
		{"v4 syn zero option length", tcpPacket(false, syn, []byte{8, 0, 2, 4, 5, 0xb4}, nil, nil), 0, false},
		{"v4 syn option past header", tcpPacket(false, syn, []byte{8, 40, 2, 4, 5, 0xb4, 0, 0}, nil, nil), 0, false},
		{"v4 udp", udp, 1460, false},
		{"v6 syn larger", tcpPacket(true, syn, synOpts(1440), nil, nil), 1380, true},
		{"v6 syn-ack larger", tcpPacket(true, synAck, synOpts(1440), nil, nil), 1380, true},
		{"v6 syn smaller", tcpPacket(true, syn, synOpts(1220), nil, nil), 1220, false},
		{"v6 syn no mss option", tcpPacket(true, syn, []byte{1, 1, 4, 2}, nil, nil), 0, false},
		{"v6 syn odd offset", tcpPacket(true, syn, []byte{1, 2, 4, 0x05, 0xa0, 1, 1, 1}, nil, nil), 1380, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := bytes.Clone(tc.pkt)
			if got := clampMSS(p, clamp); got != tc.changed {
				t.Errorf("clampMSS = %v, want %v", got, tc.changed)
			}
			if got := mssOf(p); got != tc.wantMSS {
				t.Errorf("MSS after clamping = %d, want %d", got, tc.wantMSS)
			}
			if !tc.changed && !bytes.Equal(p, tc.pkt) {
				t.Errorf("packet modified although clampMSS reported no change")
			}
			if p[9] == ipProtoTCP || p[0]>>4 == 6 {
				if s := tcpSum(p); s != 0xFFFF {
					t.Errorf("TCP checksum invalid after clamping (sum %#04x)", s)
				}
			}
		})
	}
}

// TestClampMSSLeavesOddPacketsAlone covers the header checks: only whole,
// unfragmented TCP packets with a plain IPv6 header are touched.
func TestClampMSSLeavesOddPacketsAlone(t *testing.T) {
	clamp := mssClamp{v4: 1000, v6: 980}
	mutate := map[string]func(p []byte) []byte{
		"v4 fragment":      func(p []byte) []byte { p[7] = 1; return p },
		"v4 length longer": func(p []byte) []byte { return append(p, 0) },
		"v4 truncated":     func(p []byte) []byte { return p[:30] },
		"v4 bad ihl":       func(p []byte) []byte { p[0] = 0x43; return p },
		"v4 ihl past end":  func(p []byte) []byte { p[0] = 0x4f; return p[:60] },
		"v6 extension":     func(p []byte) []byte { p[6] = 0; return p },
		"v6 length":        func(p []byte) []byte { return p[:len(p)-4] },
		"version 5":        func(p []byte) []byte { p[0] = 0x55; return p },
		"tcp doff past end": func(p []byte) []byte {
			off := int(p[0]&0x0F) * 4
			if p[0]>>4 == 6 {
				off = 40
			}
			p[off+12] = 0xF0
			return p
		},
	}
	for name, f := range mutate {
		t.Run(name, func(t *testing.T) {
			v6 := name[:2] == "v6"
			p := f(tcpPacket(v6, 0x02, synOpts(1460), nil, nil))
			orig := bytes.Clone(p)
			if clampMSS(p, clamp) || !bytes.Equal(p, orig) {
				t.Errorf("packet changed")
			}
		})
	}
	if clampMSS(tcpPacket(false, 0x02, synOpts(1460), nil, nil), mssClamp{}) {
		t.Error("a zero clamp changed a packet")
	}
}

func TestComputeMSSClamp(t *testing.T) {
	gcmV2 := datachannel.FrameOverhead{Header: 24}
	cbcSHA1V1 := datachannel.FrameOverhead{Header: 37, Payload: 4, Block: 16}
	// OpenVPN's static-key vectors (test_crypto.c test_mssfix_mtu_calculation):
	// long packet ids (8 bytes), no opcode; AES-128-CBC with auth none.
	staticCBC := datachannel.FrameOverhead{Header: 16, Payload: 8, Block: 16}
	staticNone := datachannel.FrameOverhead{Header: 8}
	udp4 := transportInfo{}
	for _, tc := range []struct {
		name   string
		m      mssFixConfig
		f      datachannel.FrameOverhead
		t      transportInfo
		v4, v6 uint16
	}{
		{"default gcm udp4", mssFixConfig{N: 1492, Encap: true}, gcmV2, udp4, 1400, 1380},
		{"default gcm udp6", mssFixConfig{N: 1492, Encap: true}, gcmV2, transportInfo{remoteV6: true}, 1380, 1360},
		{"default gcm tcp4", mssFixConfig{N: 1492, Encap: true}, gcmV2, transportInfo{stream: true}, 1386, 1366},
		{"default gcm tcp6", mssFixConfig{N: 1492, Encap: true}, gcmV2, transportInfo{stream: true, remoteV6: true}, 1366, 1346},
		{"explicit gcm", mssFixConfig{N: 1450}, gcmV2, udp4, 1386, 1366},
		{"explicit gcm tcp", mssFixConfig{N: 1450}, gcmV2, transportInfo{stream: true}, 1384, 1364},
		{"default cbc", mssFixConfig{N: 1492, Encap: true}, cbcSHA1V1, udp4, 1379, 1359},
		{"fixed", mssFixConfig{N: 1400, Fixed: true}, cbcSHA1V1, udp4, 1360, 1340},
		{"openvpn none/none 1000", mssFixConfig{N: 1000}, staticNone, udp4, 952, 932},
		{"openvpn cbc 991", mssFixConfig{N: 991}, staticCBC, udp4, 911, 891},
		{"openvpn cbc 992", mssFixConfig{N: 992}, staticCBC, udp4, 927, 907},
		{"openvpn cbc 1007", mssFixConfig{N: 1007}, staticCBC, udp4, 927, 907},
		{"openvpn cbc 1008", mssFixConfig{N: 1008}, staticCBC, udp4, 943, 923},
		{"openvpn cbc lzo 1000", mssFixConfig{N: 1000}, datachannel.FrameOverhead{Header: 16, Payload: 9, Block: 16}, udp4, 926, 906},
		{"openvpn gcm 1100", mssFixConfig{N: 1100}, gcmV2, udp4, 1100 - 4 - 4 - 16 - 40, 1100 - 4 - 4 - 16 - 40 - 20},
		{"off", mssFixConfig{}, gcmV2, udp4, 0, 0},
		{"tiny", mssFixConfig{N: 60, Encap: true}, gcmV2, udp4, minMSS + 20, minMSS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := computeMSSClamp(tc.m, tc.f, tc.t)
			if got != (mssClamp{v4: tc.v4, v6: tc.v6}) {
				t.Errorf("clamp = %+v, want {v4:%d v6:%d}", got, tc.v4, tc.v6)
			}
		})
	}
}

// mssProfile is the smallest profile config accepts: a server fingerprint
// and a password prompt stand in for key material.
const mssProfile = "client\nremote 192.0.2.1\ndev tun\nauth-user-pass\npeer-fingerprint ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab:ab\n"

func TestMSSFixFromConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		conf string
		want mssFixConfig
	}{
		{"default", "", mssFixConfig{N: 1492, Encap: true}},
		{"bare", "mssfix\n", mssFixConfig{N: 1492, Encap: true}},
		{"default small tun", "tun-mtu 1400\n", mssFixConfig{N: 1400, Fixed: true}},
		{"explicit", "mssfix 1450\n", mssFixConfig{N: 1450}},
		{"explicit 1492 is not the default", "mssfix 1492\n", mssFixConfig{N: 1492}},
		{"bare with small tun", "tun-mtu 1400\nmssfix\n", mssFixConfig{N: 1400, Fixed: true}},
		{"mtu flag", "mssfix 1400 mtu\n", mssFixConfig{N: 1400, Encap: true}},
		{"fixed flag", "mssfix 1300 fixed\n", mssFixConfig{N: 1300, Fixed: true}},
		{"off", "mssfix 0\n", mssFixConfig{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := config.ParseInline("test.ovpn", []byte(mssProfile+tc.conf))
			if err != nil {
				t.Fatal(err)
			}
			if got := mssFixFromConfig(c); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestClampMSSRealKeys checks the clamp computed from real keys on the data
// path, in both directions: a SYN from the tun leaves clamped, and a SYN-ACK
// from the server reaches the tun clamped.
func TestClampMSSRealKeys(t *testing.T) {
	ck, sk := realKeyPair(t, "AES-256-GCM", "")
	syn := tcpPacket(false, 0x02, synOpts(1460), nil, nil)
	tn := &fakeTun{in: [][]byte{syn}, consume: true, record: true}
	fc := &fakeConn{record: true}
	d := newDataPath(tn, &counters{}, dataPathConfig{Headroom: datachannel.Headroom, Tailroom: datachannel.Tailroom, MTU: 1500}, func(string, ...any) {})
	ref := &connRef{conn: fc, ctrl: make(chan *ctrlPacket, 1), errc: make(chan error, 1)}
	d.conn.Store(ref)
	d.setMSSFix(mssFixConfig{N: 1492, Encap: true})
	d.setKeys(&keySet{primary: ck})
	if got := d.keys.Load().mss; got != (mssClamp{1400, 1380}) {
		t.Fatalf("clamp %+v, want {1400 1380}", got)
	}
	n, err := tn.Read(d.tx.bufs, d.tx.sizes, d.txOff)
	if err != nil {
		t.Fatal(err)
	}
	d.sealAndSend(n)
	if len(fc.sent) != 1 {
		t.Fatalf("sent %d packets", len(fc.sent))
	}
	out, err := sk.Open(fc.sent[0])
	if err != nil {
		t.Fatal(err)
	}
	if mssOf(out) != 1400 || tcpSum(out) != 0xFFFF {
		t.Errorf("sent SYN has MSS %d, checksum sum %#x", mssOf(out), tcpSum(out))
	}

	// A pushed mssfix overrides the profile's for this connection.
	v := 1300
	d.setPushedMSSFix(&v)
	if got := d.keys.Load().mss; got != (mssClamp{1300 - 24 - 40, 1300 - 24 - 60}) {
		t.Fatalf("clamp after push %+v", got)
	}

	synAck := tcpPacket(true, 0x12, synOpts(1440), nil, nil)
	buf := make([]byte, datachannel.Headroom+len(synAck)+datachannel.Tailroom)
	copy(buf[datachannel.Headroom:], synAck)
	sealed, err := sk.Seal(buf, datachannel.Headroom, len(synAck))
	if err != nil {
		t.Fatal(err)
	}
	fc.in = [][]byte{sealed}
	d.RoutineSocketToTun(ref)
	if len(tn.written) != 1 {
		t.Fatalf("wrote %d packets to tun", len(tn.written))
	}
	if got := mssOf(tn.written[0]); got != 1300-24-60 || tcpSum(tn.written[0]) != 0xFFFF {
		t.Errorf("received SYN-ACK has MSS %d, checksum sum %#x", got, tcpSum(tn.written[0]))
	}
}

func FuzzClampMSS(f *testing.F) {
	f.Add(tcpPacket(false, 0x02, synOpts(1460), nil, nil), uint16(1400))
	f.Add(tcpPacket(true, 0x12, synOpts(1440), nil, nil), uint16(1380))
	f.Add(tcpPacket(false, 0x02, []byte{1, 2, 4, 0xff, 0xd7, 1, 1, 1}, []byte{1, 1, 1, 0}, nil), uint16(536))
	f.Add(tcpPacket(false, 0x02, []byte{8, 0, 2, 4}, nil, nil), uint16(100))
	f.Add([]byte{0x45}, uint16(1))
	f.Fuzz(func(t *testing.T, p []byte, mss uint16) {
		valid := len(p) >= 40 && (p[0]>>4 == 4 && p[9] == ipProtoTCP || p[0]>>4 == 6 && p[6] == ipProtoTCP) && tcpSum(p) == 0xFFFF
		orig := bytes.Clone(p)
		changed := clampMSS(p, mssClamp{v4: mss, v6: mss})
		if !changed && !bytes.Equal(p, orig) {
			t.Fatal("packet modified without a reported change")
		}
		if changed && len(p) != len(orig) {
			t.Fatal("length changed")
		}
		if changed && valid && tcpSum(p) != 0xFFFF {
			t.Fatal("a valid checksum became invalid")
		}
	})
}
