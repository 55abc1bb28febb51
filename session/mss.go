package session

/* mssfix: TCP connections through the tunnel are told, in their SYN and
 * SYN-ACK, to use segments small enough that the encrypted UDP (or TCP)
 * datagram fits the path. OpenVPN rewrites the MSS option of every TCP SYN it
 * forwards, in both directions, lowering it to the clamp and never raising
 * it; a SYN without an MSS option is left alone. The clamp follows OpenVPN
 * 2.6's frame_calculate_mssfix, so ovpnd and the OpenVPN client announce the
 * same MSS for the same profile:
 *
 *   fixed:  mss = N - 40
 *   else:   overhead = protocol header (opcode/peer-id, packet id, tag or
 *                      IV+HMAC), +2 over TCP, +10 through a SOCKS UDP
 *                      relay, + the outer IP and UDP/TCP
 *                      headers with the "mtu" flag (and by default)
 *           target   = N - overhead, for CBC rounded down to a block, minus 1
 *           mss      = target - payload overhead (v1 compression byte, CBC
 *                      packet id, fragment header) - 40 (inner IPv4 + TCP
 *                      headers)
 *   IPv6 packets get mss - 20 (their header is 20 bytes longer).
 */

import (
	"encoding/binary"
	"net/netip"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine/datachannel"
)

const (
	// defaultTunMTU is the tun-mtu at which OpenVPN applies defaultMSSFix; with
	// any other tun-mtu the default clamp follows the tun MTU instead.
	defaultTunMTU = 1500
	// minMSS bounds the clamp from below: a tiny mssfix must not produce a zero
	// or negative MSS, which TCP stacks treat as nonsense.
	minMSS = 64
	// ipv4TCPHeaders is what OpenVPN subtracts from a packet size to get an MSS
	// (RFC 879: IP and TCP headers without options).
	ipv4TCPHeaders = 20 + 20
)

// mssFixConfig is the mssfix setting of a profile or of a push.
type mssFixConfig struct {
	N     int  // target packet size; 0 = mssfix off
	Encap bool // N includes the outer IP and UDP/TCP headers ("mtu" flag)
	Fixed bool // N is the inner packet size itself ("fixed" flag)
}

// mssFixFromConfig applies OpenVPN's defaults to the profile's mssfix fields.
// Without an mssfix value (no mssfix line, or a bare "mssfix") OpenVPN uses
// "mssfix FRAGMENT mtu" with fragment, else "mssfix 1492 mtu" when tun-mtu is
// 1500 and "mssfix TUN-MTU fixed" otherwise.
func mssFixFromConfig(c *config.Config) mssFixConfig {
	m := mssFixConfig{N: c.MSSFix, Encap: c.MSSFixMTU, Fixed: c.MSSFixFixed}
	if c.MSSFixDefault && c.Fragment > 0 {
		return mssFixConfig{N: c.Fragment, Encap: true}
	}
	if c.MSSFixDefault {
		mtu := c.TunMTU
		if mtu <= 0 {
			mtu = defaultTunMTU
		}
		if mtu == defaultTunMTU {
			m.Encap = true
		} else {
			m = mssFixConfig{N: mtu, Fixed: true}
		}
	}
	return m
}

// mssClamp is the largest MSS a forwarded SYN may carry, per inner IP version;
// zero values turn clamping off.
type mssClamp struct {
	v4, v6 uint16
}

// transportInfo is what the clamp needs to know about the connection.
type transportInfo struct {
	stream   bool // TCP: every packet has a 2-byte length prefix
	remoteV6 bool // the outer IP header is IPv6
	// extra is what a relay adds to every datagram: the SOCKS5 UDP header,
	// which OpenVPN counts as 10 bytes.
	extra int
}

// computeMSSClamp returns the clamp for one mssfix setting and one key's wire
// overhead, as OpenVPN 2.6 computes frame.mss_fix.
func computeMSSClamp(m mssFixConfig, f datachannel.FrameOverhead, t transportInfo) mssClamp {
	if m.N <= 0 {
		return mssClamp{}
	}
	var mss int
	if m.Fixed {
		mss = m.N - ipv4TCPHeaders
	} else {
		overhead := f.Header + t.extra
		if t.stream {
			overhead += 2
		}
		if m.Encap {
			overhead += outerHeaders(t)
		}
		target := m.N - overhead
		if f.Block > 0 {
			// CBC needs one byte of padding at least, and the padded
			// ciphertext, a whole number of blocks, must fit the target.
			target = target/f.Block*f.Block - 1
		}
		mss = target - f.Payload - ipv4TCPHeaders
	}
	mss = min(max(mss, minMSS+20), 0xFFFF)
	return mssClamp{v4: uint16(mss), v6: uint16(mss - 20)}
}

// outerHeaders is OpenVPN's datagram_overhead: the encapsulating IP header
// plus UDP or TCP header.
func outerHeaders(t transportInfo) int {
	n := 8
	if t.stream {
		n = 20
	}
	if t.remoteV6 {
		return n + 40
	}
	return n + 20
}

// transportOf describes a connection for the clamp; transports that cannot
// say are taken as UDP over IPv4, the common case.
func transportOf(c packetConn) transportInfo {
	var t transportInfo
	if s, ok := c.(interface{ Stream() bool }); ok {
		t.stream = s.Stream()
	}
	if r, ok := c.(interface{ RemoteAddr() netip.AddrPort }); ok {
		a := r.RemoteAddr().Addr()
		t.remoteV6 = a.Is6() && !a.Is4In6()
	}
	if x, ok := c.(interface{ DatagramOverhead() int }); ok {
		t.extra = x.DatagramOverhead()
	}
	return t
}

// TCP header fields and options (RFC 9293).
const (
	ipProtoTCP   = 6
	tcpHeaderLen = 20
	tcpFlagSYN   = 0x02
	tcpOptEOL    = 0
	tcpOptNOP    = 1
	tcpOptMSS    = 2
	tcpOptMSSLen = 4
)

// clampMSS lowers the MSS option of a TCP SYN or SYN-ACK in the IP packet p to
// the clamp, fixing the TCP checksum incrementally (RFC 1624), and reports
// whether it changed p. Anything else, including malformed packets, IPv4
// fragments other than the first and IPv6 packets with extension headers, is
// left untouched, as OpenVPN does.
func clampMSS(p []byte, c mssClamp) bool {
	if len(p) < 20 {
		return false
	}
	switch p[0] >> 4 {
	case 4:
		ihl := int(p[0]&0x0F) * 4
		if ihl < 20 || p[9] != ipProtoTCP || int(binary.BigEndian.Uint16(p[2:])) != len(p) ||
			binary.BigEndian.Uint16(p[6:])&0x1FFF != 0 || len(p)-ihl < tcpHeaderLen {
			return false
		}
		return clampTCP(p[ihl:], c.v4)
	case 6:
		if len(p) < 40+tcpHeaderLen || p[6] != ipProtoTCP || int(binary.BigEndian.Uint16(p[4:]))+40 != len(p) {
			return false
		}
		return clampTCP(p[40:], c.v6)
	}
	return false
}

// clampTCP walks the options of a SYN segment like OpenVPN's mss_fixup_dowork.
// The TCP header starts at an even offset of the checksummed data (IP headers
// are multiples of 4 bytes), so an option value's parity within tcp decides
// how its bytes fall into the checksum's 16-bit words.
func clampTCP(tcp []byte, maxMSS uint16) bool {
	if maxMSS == 0 || tcp[13]&tcpFlagSYN == 0 {
		return false
	}
	hlen := int(tcp[12]>>4) * 4
	if hlen <= tcpHeaderLen || hlen > len(tcp) {
		return false
	}
	changed := false
	for i := tcpHeaderLen; hlen-i > 1; {
		switch tcp[i] {
		case tcpOptEOL:
			return changed
		case tcpOptNOP:
			i++
			continue
		}
		optLen := int(tcp[i+1])
		if optLen < 2 || optLen > hlen-i {
			return changed
		}
		if tcp[i] == tcpOptMSS && optLen == tcpOptMSSLen {
			old := binary.BigEndian.Uint16(tcp[i+2:])
			if old > maxMSS {
				binary.BigEndian.PutUint16(tcp[i+2:], maxMSS)
				oldW, newW := old, maxMSS
				if (i+2)%2 == 1 {
					oldW, newW = oldW<<8|oldW>>8, newW<<8|newW>>8
				}
				cs := binary.BigEndian.Uint16(tcp[16:])
				binary.BigEndian.PutUint16(tcp[16:], checksumUpdate(cs, oldW, newW))
				changed = true
			}
		}
		i += optLen
	}
	return changed
}

// checksumUpdate is RFC 1624 equation 3: HC' = ~(~HC + ~m + m').
func checksumUpdate(hc, old, new uint16) uint16 {
	sum := uint32(^hc) + uint32(^old) + uint32(new)
	sum = sum&0xFFFF + sum>>16
	sum = sum&0xFFFF + sum>>16
	return ^uint16(sum)
}
