package session

/* block-ipv6, as an OpenVPN 2.6 client does it (forward.c process_ip_header,
 * ipv6_send_icmp_unreachable): the IPv6 routes of redirect-gateway ipv6 send
 * IPv6 into the tun device even when the tunnel carries no IPv6, and the tun
 * reader answers every IPv6 packet it reads with an ICMPv6 Destination
 * Unreachable, "no route to destination", written straight back to the tun
 * device. Applications fail fast instead of waiting on, or leaking through, a
 * network the tunnel does not cover; nothing of it reaches the server.
 *
 * The state is an atomic pointer the tun reader loads once per batch, so with
 * block-ipv6 off the cost is that load and one branch. The replies are built in
 * buffers the tun reader owns, grown once to the largest number of IPv6
 * packets seen in one batch and reused after that.
 */

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"

	"github.com/ovpnd/ovpnd/config"
)

const (
	// icmp6MaxLen bounds the reply: an ICMPv6 error must fit the IPv6
	// minimum MTU (RFC 4443 section 2.4 (c)), so it crosses any link.
	icmp6MaxLen    = 1280
	ip6HeaderLen   = 40
	icmp6HeaderLen = 8
	protoICMPv6    = 58
	// icmp6ReplyHopLimit is the reply's hop limit. OpenVPN copies the
	// invoking packet's, which a traceroute probe sets to 1 and which would
	// then not survive forwarding to a LAN host behind this client.
	icmp6ReplyHopLimit = 64
)

// block6Source is the source OpenVPN gives the replies when the tunnel has no
// IPv6 peer address (ifconfig-ipv6-remote): a link-local address on the tun.
var block6Source = netip.MustParseAddr("fe80::7")

// blockIPv6 is the block-ipv6 setting as the data path sees it.
type blockIPv6 struct {
	src [16]byte // source address of the replies
}

// block6State is the tun reader's block-ipv6 state: cfg is written by the
// control side (nil: off), bufs and out only by the tun reader.
type block6State struct {
	cfg  atomic.Pointer[blockIPv6]
	bufs [][]byte // reply buffers, tunWriteOffset + icmp6MaxLen each
	out  [][]byte
}

// setBlockIPv6 turns block-ipv6 on or off. peer is the tunnel's IPv6 peer
// address (ifconfig-ipv6 remote), the replies' source when valid, as in
// OpenVPN; fe80::7 otherwise.
func (d *dataPath) setBlockIPv6(on bool, peer netip.Addr) {
	if !on {
		d.block6.cfg.Store(nil)
		return
	}
	src := block6Source
	if peer.Is6() && !peer.Is4In6() {
		src = peer
	}
	d.block6.cfg.Store(&blockIPv6{src: src.As16()})
}

// answerIPv6 removes the IPv6 packets from the first n of the tun reader's
// batch, answers those that call for it with ICMPv6 Destination Unreachable
// on the tun device, and returns how many packets are left to send (moved to
// the front of the batch, in order).
func (d *dataPath) answerIPv6(b *blockIPv6, n int) int {
	bufs, sizes := d.tx.bufs, d.tx.sizes
	s := &d.block6
	out := s.out[:0]
	kept := 0
	for i := 0; i < n; i++ {
		pkt := bufs[i][d.txOff : d.txOff+sizes[i]]
		if len(pkt) == 0 || pkt[0]>>4 != 6 {
			bufs[kept], bufs[i] = bufs[i], bufs[kept]
			sizes[kept] = sizes[i]
			kept++
			continue
		}
		if len(out) == len(s.bufs) {
			// Once per new high-water mark of IPv6 packets in a batch.
			s.bufs = append(s.bufs, make([]byte, tunWriteOffset+icmp6MaxLen))
		}
		rb := s.bufs[len(out)]
		if m := icmp6Unreachable(rb[tunWriteOffset:], pkt, &b.src); m > 0 {
			out = append(out, rb[:tunWriteOffset+m])
		}
	}
	s.out = out[:0]
	if len(out) > 0 {
		if _, err := d.tun.Write(out, tunWriteOffset); err != nil {
			// The replies are a courtesy: the packets are dropped either
			// way, and a failed device shows on the next read.
			d.logf("data path: writing ICMPv6 unreachable to the tun device: %v", err)
		}
	}
	return kept
}

// icmp6Unreachable writes to out (at least icmp6MaxLen bytes) the ICMPv6
// Destination Unreachable, code 0 (no route to destination), from src that
// answers the IPv6 packet pkt, and returns its length. It returns 0 when pkt
// must not be answered (RFC 4443 section 2.4 (e)): not a whole IPv6 header,
// an ICMPv6 error message, a multicast destination, an unspecified or
// multicast source, or headers it cannot follow to tell.
func icmp6Unreachable(out, pkt []byte, src *[16]byte) int {
	if len(pkt) < ip6HeaderLen || pkt[0]>>4 != 6 || len(out) < icmp6MaxLen {
		return 0
	}
	pktSrc, pktDst := pkt[8:24], pkt[24:40]
	if pktDst[0] == 0xff || pktSrc[0] == 0xff || isZero16(pktSrc) {
		return 0
	}
	if !answerable(pkt) {
		return 0
	}
	body := min(len(pkt), icmp6MaxLen-ip6HeaderLen-icmp6HeaderLen)
	icmpLen := icmp6HeaderLen + body

	// IPv6 header: the invoking packet's traffic class and flow label, as
	// OpenVPN; addressed back to its source.
	copy(out[0:4], pkt[0:4])
	binary.BigEndian.PutUint16(out[4:6], uint16(icmpLen))
	out[6] = protoICMPv6
	out[7] = icmp6ReplyHopLimit
	copy(out[8:24], src[:])
	copy(out[24:40], pktSrc)

	m := out[ip6HeaderLen : ip6HeaderLen+icmpLen]
	m[0], m[1] = 1, 0 // Destination Unreachable, no route to destination
	m[2], m[3] = 0, 0 // checksum, below
	m[4], m[5], m[6], m[7] = 0, 0, 0, 0
	copy(m[icmp6HeaderLen:], pkt[:body])
	binary.BigEndian.PutUint16(m[2:4], icmp6Checksum(out[8:24], out[24:40], m))
	return ip6HeaderLen + icmpLen
}

// answerable follows pkt's extension headers to its upper-layer protocol and
// reports whether an ICMPv6 error may answer it: not when it is an ICMPv6
// error message itself (types below 128), nor when that cannot be told (a
// truncated header chain, or a later fragment of an ICMPv6 message).
func answerable(pkt []byte) bool {
	next, off := pkt[6], ip6HeaderLen
	// Bounded: a chain longer than this is no real traffic.
	for range 8 {
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if off+2 > len(pkt) {
				return false
			}
			next, off = pkt[off], off+(int(pkt[off+1])+1)*8
		case 44: // fragment
			if off+8 > len(pkt) {
				return false
			}
			if binary.BigEndian.Uint16(pkt[off+2:off+4])&^7 != 0 {
				// A later fragment: its upper-layer header is in the first.
				return pkt[off] != protoICMPv6
			}
			next, off = pkt[off], off+8
		case protoICMPv6:
			return off < len(pkt) && pkt[off] >= 128
		default:
			return true
		}
	}
	return false
}

func isZero16(b []byte) bool {
	return binary.BigEndian.Uint64(b[0:8])|binary.BigEndian.Uint64(b[8:16]) == 0
}

// icmp6Checksum is the ICMPv6 checksum of m (its checksum field zero) with
// the IPv6 pseudo-header of src, dst (RFC 4443 section 2.3, RFC 8200 8.1).
func icmp6Checksum(src, dst, m []byte) uint16 {
	var sum uint64
	sum += sum16(src) + sum16(dst)
	sum += uint64(len(m)) + protoICMPv6
	sum += sum16(m)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// sum16 adds b as big-endian 16-bit words, an odd last byte padded with zero.
func sum16(b []byte) uint64 {
	var sum uint64
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

// syncBlockIPv6 gives the data path the block-ipv6 setting of the profile and
// the current push.
func (r *runner) syncBlockIPv6() {
	if r.dp == nil {
		return
	}
	pn := r.pushedNet
	if pn == nil {
		pn = &config.NetSettings{}
	}
	n := mergeNet(&r.cfg.Net, pn)
	var peer netip.Addr
	if ic := n.IfconfigIPv6; ic != nil {
		peer = ic.Remote
	}
	r.dp.setBlockIPv6(n.BlockIPv6, peer)
}
