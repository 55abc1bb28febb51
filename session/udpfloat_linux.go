package session

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// --float on a UDP socket. Without float the socket is connected to the server's address and
// the kernel drops datagrams from any other. With float the socket is bound but unconnected:
// every datagram's source address comes with it (one sockaddr per message of the recvmmsg,
// no allocation), and every send names the current peer (one sockaddr per batch, shared by
// its messages). A datagram from another address is only marked as such here; the data path
// decides whether it may move the peer (floatConn): a data packet that decrypts does, a
// control packet that passes tls-auth or tls-crypt does, anything else is dropped or
// handled as from a stranger.

// sockaddrSize holds a sockaddr_in6, which is larger than a sockaddr_in.
const sockaddrSize = unix.SizeofSockaddrInet6

// udpPeer is where a float socket sends: the server's address and its sockaddr, built once
// per move and never changed afterwards (the send path reads it without a lock).
type udpPeer struct {
	ap    netip.AddrPort
	cmp   netip.AddrPort // ap without an IPv6 zone: what received sources are compared with
	sa    [sockaddrSize]byte
	salen uint32
}

func newUDPPeer(ap netip.AddrPort, scope uint32) *udpPeer {
	p := &udpPeer{ap: ap, cmp: netip.AddrPortFrom(ap.Addr().WithZone(""), ap.Port())}
	port := ap.Port()
	if ap.Addr().Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&p.sa[0]))
		sa.Family = unix.AF_INET
		sa.Addr = ap.Addr().As4()
		p.salen = unix.SizeofSockaddrInet4
	} else {
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&p.sa[0]))
		sa.Family = unix.AF_INET6
		sa.Addr = ap.Addr().As16()
		sa.Scope_id = scope
		p.salen = unix.SizeofSockaddrInet6
	}
	// The port is in network byte order in both layouts, right after the family.
	p.sa[2], p.sa[3] = byte(port>>8), byte(port)
	return p
}

// scopeID is the interface index an IPv6 zone names (0: none or unknown).
func scopeID(a netip.Addr) uint32 {
	z := a.Zone()
	if z == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(z); err == nil {
		return uint32(ifi.Index)
	}
	var n uint32
	if _, err := fmt.Sscanf(z, "%d", &n); err == nil {
		return n
	}
	return 0
}

// sockaddrAddrPort decodes a sockaddr_in or sockaddr_in6 without allocating; the zero
// AddrPort for anything else.
func sockaddrAddrPort(b []byte) netip.AddrPort {
	if len(b) < unix.SizeofSockaddrInet4 {
		return netip.AddrPort{}
	}
	port := uint16(b[2])<<8 | uint16(b[3])
	switch *(*uint16)(unsafe.Pointer(&b[0])) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case unix.AF_INET6:
		if len(b) < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), port)
	}
	return netip.AddrPort{}
}

// floatState is a float socket's part of udpConn.
type floatState struct {
	on   bool
	peer atomic.Pointer[udpPeer]
	// src is the local address the kernel picks towards the server, looked up when the
	// socket was opened: the socket itself is bound to the wildcard address, and roaming
	// compares this one.
	src netip.Addr

	// Receive side, owned by the socket reader: one sockaddr per recvmmsg message, the
	// sources of the messages (zero when from the peer) and of the packets handed out by
	// the last ReadBatch, and whether any of those came from elsewhere.
	names   []byte
	msgFrom []netip.AddrPort
	from    []netip.AddrPort
	foreign bool
}

// dialUDPFloat opens an unconnected UDP socket for remote (--float), bound to o.Local or to
// the wildcard address of remote's family.
func dialUDPFloat(ctx context.Context, network string, remote netip.AddrPort, o udpDialOptions) (*udpConn, error) {
	src, err := routeSource(ctx, network, remote, o.Mark)
	if err != nil {
		return nil, err
	}
	local := o.Local
	if !local.Addr().IsValid() {
		if network == "udp4" {
			local = netip.AddrPortFrom(netip.IPv4Unspecified(), local.Port())
		} else {
			local = netip.AddrPortFrom(netip.IPv6Unspecified(), local.Port())
		}
	}
	lc := net.ListenConfig{Control: o.control}
	c, err := lc.ListenPacket(ctx, network, local.String())
	if err != nil {
		return nil, fmt.Errorf("opening UDP socket for %v (float): %w", remote, err)
	}
	uc := c.(*net.UDPConn)
	u, err := newUDPConn(uc, remote, o.Batch, !o.NoGSO)
	if err != nil {
		uc.Close()
		return nil, err
	}
	u.enableFloat(src)
	return u, nil
}

// routeSource is the source address the kernel picks for a datagram to remote: a UDP
// socket's connect looks the route up and sends nothing.
func routeSource(ctx context.Context, network string, remote netip.AddrPort, mark int) (netip.Addr, error) {
	d := net.Dialer{}
	if mark != 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, mark) }); err != nil {
				return err
			}
			return serr
		}
	}
	c, err := d.DialContext(ctx, network, remote.String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding the route to %v: %w", remote, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr(), nil
}

// enableFloat turns u, an unconnected socket, into a float socket sending to u.remote.
func (u *udpConn) enableFloat(src netip.Addr) {
	f := &u.float
	f.on, f.src = true, src
	f.peer.Store(newUDPPeer(u.remote, scopeID(u.remote.Addr())))
	n := len(u.rd.hdrs)
	f.names = make([]byte, n*sockaddrSize)
	f.msgFrom = make([]netip.AddrPort, n)
	f.from = make([]netip.AddrPort, n)
}

// nameRx points the first n receive headers at their sockaddr slots; after
// recvmmsg each holds its datagram's source.
func (u *udpConn) nameRx(n int) {
	for i := 0; i < n; i++ {
		h := &u.rd.hdrs[i].Hdr
		h.Name = &u.float.names[i*sockaddrSize]
		h.Namelen = sockaddrSize
	}
}

// sourcesRx records which of the n received messages came from another address than the
// peer's.
func (u *udpConn) sourcesRx(n int) {
	f := &u.float
	peer := f.peer.Load().cmp
	for i := 0; i < n; i++ {
		src := sockaddrAddrPort(f.names[i*sockaddrSize : i*sockaddrSize+int(u.rd.hdrs[i].Hdr.Namelen)])
		if src == peer {
			src = netip.AddrPort{}
		}
		f.msgFrom[i] = src
	}
}

// nameTx addresses the first n send headers to the current peer.
func (u *udpConn) nameTx(n int) {
	p := u.float.peer.Load()
	for i := 0; i < n; i++ {
		h := &u.wr.hdrs[i].Hdr
		h.Name = &p.sa[0]
		h.Namelen = p.salen
	}
}

// anyForeign reports whether a packet of the last ReadBatch came from another address than
// the peer's.
func (u *udpConn) anyForeign() bool { return u.float.foreign }

// foreign reports where packet i of the last ReadBatch came from, if not from the peer.
func (u *udpConn) foreign(i int) (netip.AddrPort, bool) {
	a := u.float.from[i]
	return a, a.IsValid()
}

// setPeer sends to p from now on; it reports whether the peer changed. The data path calls
// it for a packet that authenticated, the control loop for an authenticated control packet.
func (u *udpConn) setPeer(p netip.AddrPort) bool {
	cur := u.float.peer.Load()
	if cur.cmp == p {
		return false
	}
	var scope uint32
	if p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() {
		// The source of a received datagram carries no zone: keep the old one.
		scope = (*unix.RawSockaddrInet6)(unsafe.Pointer(&cur.sa[0])).Scope_id
		if z := cur.ap.Addr().Zone(); z != "" {
			p = netip.AddrPortFrom(p.Addr().WithZone(z), p.Port())
		}
	}
	return u.float.peer.CompareAndSwap(cur, newUDPPeer(p, scope))
}

// peerAddr is where the socket sends.
func (u *udpConn) peerAddr() netip.AddrPort {
	if u.float.on {
		return u.float.peer.Load().ap
	}
	return u.remote
}

// floatConn is a transport that takes packets from other addresses than its peer's
// (--float): the data path lets such a packet move the peer once it has authenticated.
type floatConn interface {
	anyForeign() bool
	foreign(i int) (netip.AddrPort, bool)
	setPeer(p netip.AddrPort) bool
	peerAddr() netip.AddrPort
}

// asFloat is pc's float side, nil unless pc is a float socket.
func asFloat(pc packetConn) floatConn {
	if u, ok := pc.(*udpConn); ok && u.float.on {
		return u
	}
	return nil
}
