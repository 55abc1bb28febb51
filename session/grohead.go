package session

import (
	"bytes"
	"encoding/binary"
)

/* Large buffers for the packets that start a coalesced tun write.
 *
 * The tun package coalesces the TCP segments of a batch (GRO) by appending each segment's
 * payload to the buffer of the flow's first segment, as far as that buffer's capacity goes,
 * and writes every coalesced packet with one system call. The socket reader's buffers
 * (rxBufSizeFor: a page at the usual MTU) hold two segments; a write of 64 KiB takes a
 * twentieth of the write calls and of the kernel's per-packet TCP work, and the receiver's TCP
 * then sends far fewer ACKs, each of which the tun reader must read, seal and send. Giving
 * all 128 buffers 64 KiB would cost 8 MiB of memory once every buffer has been a head;
 * instead, while a batch is prepared, the segment that will start a flow's coalesced packet
 * is copied (one segment per up to 64 KiB) into one of a few large head buffers.
 *
 * The choice of heads follows the tun package's rules (same flow, next sequence number, no
 * segment after a PSH or after a shorter one, room left); a wrong guess costs nothing but
 * the copy: the tun package decides for itself what it appends where.
 */

const (
	// rxHeads is the number of head buffers: a batch of 128 full-size segments of one
	// flow needs three, and more flows than the rest share the socket buffers' room.
	rxHeads = 4
	// rxHeadSize lets a head grow to the largest IP packet: the tun package keeps its
	// offset free in front and, in its capacity check, once more at the end.
	rxHeadSize = 2*tunWriteOffset + 0xFFFF
)

// rxFlow is a TCP flow whose coalesced packet starts in a head buffer in this batch.
type rxFlow struct {
	hdr  []byte // the head segment's IP packet, for its addresses and ports
	next uint32 // the sequence number that continues it
	size int    // its IP length once the tun package has appended what was counted
	seg  int    // the head's payload length: no later segment may be longer
	done bool   // PSH or a shorter segment ended it
}

// rxHeadState is the socket reader's head buffers and the flows started in them in the
// current batch.
type rxHeadState struct {
	bufs  [][]byte
	flows [rxHeads]rxFlow
	used  int
}

// newRxHeadState takes its head buffers from alloc.
func newRxHeadState(alloc func(n int) []byte) rxHeadState {
	h := rxHeadState{bufs: make([][]byte, rxHeads)}
	for i := range h.bufs {
		h.bufs[i] = alloc(rxHeadSize)
	}
	return h
}

// reset starts a new batch.
func (h *rxHeadState) reset() { h.used = 0 }

// place returns where packet p (a tun write slice: tunWriteOffset bytes of room, then the IP
// packet) should go: p itself, or a copy in a head buffer when p starts a coalesced packet.
func (h *rxHeadState) place(p []byte) []byte {
	ip := p[tunWriteOffset:]
	iphLen, addrs, ok := tcpFlowHeader(ip)
	if !ok {
		return p
	}
	tcp := ip[iphLen:]
	tcphLen := int(tcp[12]>>4) * 4
	flags := tcp[13]
	payload := len(ip) - iphLen - tcphLen
	if tcphLen < 20 || payload <= 0 || (flags != tcpFlagACK && flags != tcpFlagACK|tcpFlagPSH) {
		return p // the tun package coalesces only data segments with ACK and maybe PSH
	}
	seq := binary.BigEndian.Uint32(tcp[4:])
	psh := flags&tcpFlagPSH != 0
	for i := h.used - 1; i >= 0; i-- {
		f := &h.flows[i]
		if !sameTCPFlow(f.hdr, ip, iphLen, addrs) {
			continue
		}
		if !f.done && seq == f.next && payload <= f.seg && f.size+payload <= rxHeadSize-2*tunWriteOffset {
			f.next += uint32(payload)
			f.size += payload
			f.done = psh || payload < f.seg
			return p
		}
		break // this segment starts the flow's next coalesced packet
	}
	if h.used == len(h.bufs) {
		return p
	}
	b := h.bufs[h.used]
	n := copy(b[tunWriteOffset:], ip)
	h.flows[h.used] = rxFlow{hdr: b[tunWriteOffset : tunWriteOffset+n], next: seq + uint32(payload), size: n, seg: payload, done: psh}
	h.used++
	return b[:tunWriteOffset+n]
}

const (
	tcpFlagACK = 0x10
	tcpFlagPSH = 0x08
)

// tcpFlowHeader reports whether ip is a TCP segment the tun package may coalesce (IPv4
// without options, IPv6 without extension headers), with its IP header length and where
// its addresses start.
func tcpFlowHeader(ip []byte) (iphLen, addrs int, ok bool) {
	switch {
	case len(ip) >= 40 && ip[0] == 0x45 && ip[9] == 6:
		if ip[6]&0x3F != 0 || ip[7] != 0 {
			return 0, 0, false // a fragment (more fragments, or an offset)
		}
		iphLen, addrs = 20, 12
	case len(ip) >= 60 && ip[0]>>4 == 6 && ip[6] == 6:
		iphLen, addrs = 40, 8
	default:
		return 0, 0, false
	}
	return iphLen, addrs, len(ip) >= iphLen+20
}

// sameTCPFlow compares the addresses and ports of two segments of the same IP version.
func sameTCPFlow(a, b []byte, iphLen, addrs int) bool {
	if len(a) < iphLen+4 || a[0]>>4 != b[0]>>4 {
		return false
	}
	return bytes.Equal(a[addrs:iphLen], b[addrs:iphLen]) && bytes.Equal(a[iphLen:iphLen+4], b[iphLen:iphLen+4])
}
