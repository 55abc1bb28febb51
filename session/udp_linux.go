package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// maxGSOSegments is the kernel's limit on segments in one UDP_SEGMENT send.
	maxGSOSegments = 64
	// maxGSOBytes keeps a coalesced send under the 64 KiB IP datagram limit for IPv4
	// (65535 - 20 IP - 8 UDP); IPv6 could go slightly further but one limit is simpler.
	maxGSOBytes = 65535 - 20 - 8
	// socketBufferSize is what the kernel is asked for with SO_{SND,RCV}BUFFORCE:
	// large buffers absorb bursts from batched sends and keep the receive queue from
	// overflowing while the reader decrypts a batch.
	socketBufferSize = 7 << 20
	// groMessages is how many coalesced datagrams one receive call may return
	// with UDP GRO on; each lands in its own groBufSize buffer, of which only
	// the bytes received are ever touched (and so resident).
	groMessages = 16
	// groBufSize holds the largest coalesced datagram the kernel delivers.
	groBufSize = 65535
	// groProbe is how many datagrams are received with UDP GRO on before it is
	// turned off again if the kernel never coalesced any: without a device
	// that does GRO (a veth without NAPI, for instance) it only costs a copy
	// per packet.
	groProbe = 4096
)

// udpConn is a connected UDP socket with batched I/O through recvmmsg/sendmmsg (or, with
// --float, an unconnected one: udpfloat_linux.go).
// A connected socket means the kernel filters datagrams from other peers for us,
// reports ICMP errors, and needs no per-message address, which keeps both paths
// free of allocations (x/net's ReadBatch allocates an address per message).
//
// ReadBatch is called by one goroutine (the socket reader) and WriteBatch by one
// other goroutine (the tun reader); WritePacket may be called from any goroutine.
// The socket is out of the runtime's network poller (sockfd_linux.go).
type udpConn struct {
	sock   *sockFD
	rc     syscall.RawConn // sock
	local  netip.AddrPort  // the socket's address, as bound when it was opened
	remote netip.AddrPort

	rd struct {
		hdrs  []unix.Mmsghdr
		iovs  []unix.Iovec
		n     int
		errno syscall.Errno
		fn    func(fd uintptr) bool

		// UDP GRO: datagrams land in land[i] with their segment size in
		// oob, and are split into the caller's buffers, possibly over
		// several ReadBatch calls (msg, off: the next segment to hand out).
		gro      bool
		groSeen  bool // the kernel has coalesced at least once
		groCount int  // datagrams received while probing
		land     [][]byte
		oob      []byte
		lens     []int
		segs     []int
		count    int
		msg, off int
	}

	wr struct {
		hdrs  []unix.Mmsghdr
		iovs  []unix.Iovec
		oob   []byte // one UDP_SEGMENT control message per header
		nhdrs int
		sent  int
		errno syscall.Errno
		fn    func(fd uintptr) bool
		gso   bool
		// lim is where the current sendmmsg stops (nhdrs, or one message at
		// a time while pacing); pace spaces the messages of a batch.
		lim  int
		pace pacer
		// spread is how long the current batch of total bytes is spread over
		// (0: send it at once).
		spread time.Duration
		total  int
		gap    time.Duration // the pause due before the next message
		// gsoMax is the largest segment coalesced with UDP GSO, lowered when
		// the kernel refuses segments above the path MTU.
		gsoMax int
	}

	// ctrlMu serialises the rare control-path writes among themselves.
	ctrlMu sync.Mutex

	// onICMP is told about the first ICMP error (refused, unreachable) of this socket, so
	// that an unreachable server is reported at the first attempt rather than only when
	// the handshake times out. icmpSeen belongs to the socket reader.
	onICMP   func(error)
	icmpSeen bool
	// onUnreachable is called (from any goroutine; it must not block) when a send fails
	// because the local address or the route towards the server is gone: the session then
	// moves the transport instead of dropping packets until ping-restart.
	onUnreachable func()

	// float: an unconnected socket that takes datagrams from any address (udpfloat_linux.go).
	float floatState
}

// udpDialOptions are the socket settings from bind/lport/local/nobind/sndbuf/rcvbuf/mark.
type udpDialOptions struct {
	Local   netip.AddrPort // zero Addr and port 0 = nobind
	SndBuf  int            // 0 = socketBufferSize
	RcvBuf  int
	Mark    int
	Batch   int
	NoGSO   bool
	Network string // "udp4", "udp6" or "udp"
	// OnICMP receives the socket's first ICMP error (see udpConn.onICMP).
	OnICMP func(error)
	// OnUnreachable: see udpConn.onUnreachable.
	OnUnreachable func()
	// Float opens an unconnected socket that also takes datagrams from other addresses
	// than remote's (--float, udpfloat_linux.go).
	Float bool
}

// control is the net.Dialer Control of UDP and TCP sockets alike: it applies sndbuf, rcvbuf and
// mark before the socket binds or connects.
func (o udpDialOptions) control(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) { serr = setSocketOptions(int(fd), o.SndBuf, o.RcvBuf, o.Mark) })
	if err != nil {
		return err
	}
	return serr
}

// dialUDP connects a UDP socket to remote.
func dialUDP(ctx context.Context, remote netip.AddrPort, o udpDialOptions) (*udpConn, error) {
	network := o.Network
	if network == "" {
		network = "udp"
	}
	if remote.Addr().Is4() || remote.Addr().Is4In6() {
		network = "udp4"
		remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	} else if network == "udp" {
		network = "udp6"
	}
	if o.Float {
		u, err := dialUDPFloat(ctx, network, remote, o)
		if err != nil {
			return nil, err
		}
		u.onUnreachable = o.OnUnreachable
		return u, nil
	}
	d := net.Dialer{
		Control: o.control,
	}
	if o.Local.IsValid() || o.Local.Port() != 0 {
		local := o.Local
		if !local.Addr().IsValid() {
			if network == "udp4" {
				local = netip.AddrPortFrom(netip.IPv4Unspecified(), local.Port())
			} else {
				local = netip.AddrPortFrom(netip.IPv6Unspecified(), local.Port())
			}
		}
		d.LocalAddr = net.UDPAddrFromAddrPort(local)
	}
	c, err := d.DialContext(ctx, network, net.JoinHostPort(remote.Addr().String(), strconv.Itoa(int(remote.Port()))))
	if err != nil {
		return nil, fmt.Errorf("connecting UDP socket to %v: %w", remote, err)
	}
	uc := c.(*net.UDPConn)
	u, err := newUDPConn(uc, remote, o.Batch, !o.NoGSO)
	if err != nil {
		uc.Close()
		return nil, err
	}
	u.onICMP = o.OnICMP
	u.onUnreachable = o.OnUnreachable
	return u, nil
}

func setSocketOptions(fd, snd, rcv, mark int) error {
	if snd <= 0 {
		snd = socketBufferSize
	}
	if rcv <= 0 {
		rcv = socketBufferSize
	}
	// FORCE variants ignore rmem_max/wmem_max but need CAP_NET_ADMIN; fall back quietly.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, snd) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, snd)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcv) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcv)
	}
	if mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, mark); err != nil {
			return fmt.Errorf("setting SO_MARK: %w", err)
		}
	}
	return nil
}

func newUDPConn(c *net.UDPConn, remote netip.AddrPort, batch int, tryGSO bool) (*udpConn, error) {
	if batch <= 0 {
		batch = maxBatch
	}
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	sock, err := detachFD(c)
	if err != nil {
		return nil, err
	}
	u := &udpConn{sock: sock, rc: sock, local: local, remote: remote}
	u.rd.hdrs = make([]unix.Mmsghdr, batch)
	u.rd.iovs = make([]unix.Iovec, batch)
	u.rd.fn = u.recvmmsg
	u.wr.hdrs = make([]unix.Mmsghdr, batch)
	u.wr.iovs = make([]unix.Iovec, batch)
	u.wr.oob = make([]byte, batch*unix.CmsgSpace(2))
	u.wr.fn = u.sendmmsg
	u.wr.gsoMax = maxGSOBytes
	if tryGSO {
		_ = u.rc.Control(func(fd uintptr) {
			_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
			u.wr.gso = err == nil
			u.rd.gro = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
		})
	}
	if u.rd.gro {
		u.rd.land = make([][]byte, groMessages)
		for i := range u.rd.land {
			u.rd.land[i] = make([]byte, groBufSize)
		}
		u.rd.oob = make([]byte, groMessages*unix.CmsgSpace(4))
		u.rd.lens = make([]int, groMessages)
		u.rd.segs = make([]int, groMessages)
	}
	return u, nil
}

func (u *udpConn) recvmmsg(fd uintptr) bool {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&u.rd.hdrs[0])), uintptr(u.rd.n), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
		return false
	}
	if e == unix.EINTR {
		return false
	}
	u.rd.errno = e
	if e == 0 {
		u.rd.n = int(n)
	}
	return true
}

// ReadBatch reads up to len(bufs) datagrams, each into bufs[i], and stores their
// lengths in sizes. It blocks until at least one arrives.
func (u *udpConn) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	if u.rd.gro {
		return u.readGRO(bufs, sizes)
	}
	n := min(len(bufs), len(u.rd.hdrs))
	for i := 0; i < n; i++ {
		u.rd.iovs[i].Base = unsafe.SliceData(bufs[i])
		u.rd.iovs[i].SetLen(len(bufs[i]))
		h := &u.rd.hdrs[i]
		h.Hdr = unix.Msghdr{Iov: &u.rd.iovs[i]}
		h.Hdr.SetIovlen(1)
		h.Len = 0
	}
	if u.float.on {
		u.nameRx(n)
	}
	for {
		u.rd.n = n
		u.rd.errno = 0
		if err := u.rc.Read(u.rd.fn); err != nil {
			return 0, err
		}
		switch u.rd.errno {
		case 0:
		case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH:
			// An ICMP error for an earlier send: the peer may be coming back,
			// so it is up to the keepalive timers, not the reader, to give up.
			u.noteICMP(u.rd.errno)
			continue
		default:
			return 0, os.NewSyscallError("recvmmsg", u.rd.errno)
		}
		for i := 0; i < u.rd.n; i++ {
			sizes[i] = int(u.rd.hdrs[i].Len)
			if u.rd.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
				sizes[i] = 0 // larger than any packet we accept: drop it
			}
		}
		if u.float.on {
			u.sourcesRx(u.rd.n)
			u.float.foreign = false
			for i := 0; i < u.rd.n; i++ {
				u.float.from[i] = u.float.msgFrom[i]
				u.float.foreign = u.float.foreign || u.float.msgFrom[i].IsValid()
			}
		}
		return u.rd.n, nil
	}
}

// readGRO is ReadBatch with UDP GRO on: the kernel may hand over several
// datagrams of the flow as one, with the segment size in a UDP_GRO control
// message; every segment but the last has exactly that size. The segments are
// copied out in order, and those that do not fit in bufs wait for the next call.
func (u *udpConn) readGRO(bufs [][]byte, sizes []int) (int, error) {
	if u.rd.msg >= u.rd.count {
		if err := u.receiveGRO(); err != nil {
			return 0, err
		}
	}
	n := 0
	u.float.foreign = false
	for n < len(bufs) && u.rd.msg < u.rd.count {
		m := u.rd.msg
		if u.float.on {
			u.float.from[n] = u.float.msgFrom[m]
			u.float.foreign = u.float.foreign || u.float.msgFrom[m].IsValid()
		}
		data := u.rd.land[m][:u.rd.lens[m]]
		seg := u.rd.segs[m]
		if seg <= 0 || seg > len(data) {
			seg = len(data)
		}
		end := min(u.rd.off+seg, len(data))
		sizes[n] = 0 // a segment larger than the buffer is dropped
		if p := data[u.rd.off:end]; len(p) <= len(bufs[n]) {
			sizes[n] = copy(bufs[n], p)
		}
		n++
		u.rd.off = end
		if u.rd.off >= len(data) {
			u.rd.msg++
			u.rd.off = 0
		}
	}
	if u.rd.msg >= u.rd.count && !u.rd.groSeen && u.rd.groCount >= groProbe {
		// Nothing was ever coalesced: go back to receiving in place, and let
		// the landing buffers go.
		_ = u.rc.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 0) == nil {
				u.rd.gro = false
				u.rd.land = nil
			}
		})
	}
	return n, nil
}

// receiveGRO fills the landing buffers with one recvmmsg.
func (u *udpConn) receiveGRO() error {
	cs := unix.CmsgSpace(4)
	n := len(u.rd.land)
	for i := 0; i < n; i++ {
		u.rd.iovs[i].Base = unsafe.SliceData(u.rd.land[i])
		u.rd.iovs[i].SetLen(len(u.rd.land[i]))
		h := &u.rd.hdrs[i]
		h.Hdr = unix.Msghdr{Iov: &u.rd.iovs[i], Control: &u.rd.oob[i*cs]}
		h.Hdr.SetIovlen(1)
		h.Hdr.SetControllen(cs)
		h.Len = 0
	}
	if u.float.on {
		u.nameRx(n)
	}
	for {
		u.rd.n = n
		u.rd.errno = 0
		if err := u.rc.Read(u.rd.fn); err != nil {
			return err
		}
		switch u.rd.errno {
		case 0:
		case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH:
			u.noteICMP(u.rd.errno)
			continue
		default:
			return os.NewSyscallError("recvmmsg", u.rd.errno)
		}
		break
	}
	for i := 0; i < u.rd.n; i++ {
		h := &u.rd.hdrs[i]
		u.rd.lens[i] = int(h.Len)
		u.rd.segs[i] = groSegmentSize(u.rd.oob[i*cs:(i+1)*cs], int(h.Hdr.Controllen))
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			u.rd.lens[i] = 0 // larger than any packet we accept: drop it
		}
		if u.rd.segs[i] > 0 && u.rd.segs[i] < u.rd.lens[i] {
			u.rd.groSeen = true
		}
	}
	if u.float.on {
		u.sourcesRx(u.rd.n)
	}
	u.rd.groCount += u.rd.n
	u.rd.count, u.rd.msg, u.rd.off = u.rd.n, 0, 0
	return nil
}

// groSegmentSize finds the UDP_GRO control message in oob[:n] and returns its
// segment size, or 0.
func groSegmentSize(oob []byte, n int) int {
	oob = oob[:min(max(n, 0), len(oob))]
	for len(oob) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.CmsgLen(0) || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(4) {
			return int(*(*int32)(unsafe.Pointer(&oob[unix.CmsgLen(0)])))
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next > len(oob) {
			return 0
		}
		oob = oob[next:]
	}
	return 0
}

func (u *udpConn) sendmmsg(fd uintptr) bool {
	n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&u.wr.hdrs[u.wr.sent])), uintptr(u.wr.lim-u.wr.sent), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EWOULDBLOCK || e == unix.EINTR {
		return false
	}
	u.wr.errno = e
	if e == 0 {
		u.wr.sent += int(n)
	}
	return true
}

// WriteBatch sends each packet as one datagram. With UDP GSO, runs of equally sized
// packets go to the kernel as one message whose iovecs point at the packets in place,
// segmented by the kernel (or the NIC), which saves most of the per-datagram cost.
func (u *udpConn) WriteBatch(pkts [][]byte) error {
	total := 0
	for _, p := range pkts {
		total += len(p)
	}
	// A batch that fits one GSO message goes out at once (pack decides).
	u.wr.spread, u.wr.total, u.wr.gap = u.wr.pace.spread(time.Now(), total), total, 0
	for len(pkts) > 0 {
		n := min(len(pkts), len(u.wr.hdrs))
		err := u.writeBatch(pkts[:n])
		if err != nil {
			return err
		}
		pkts = pkts[n:]
	}
	return nil
}

func (u *udpConn) writeBatch(pkts [][]byte) error {
	gso := u.wr.gso
retry:
	u.pack(pkts, gso)
	if u.float.on {
		u.nameTx(u.wr.nhdrs)
	}
	u.wr.sent = 0
	for u.wr.sent < u.wr.nhdrs {
		u.wr.lim = u.wr.nhdrs
		if u.wr.spread > 0 && gso && u.wr.nhdrs > 1 {
			// Paced: a pause for the previous message's share of the
			// spread, then one message per call.
			if u.wr.gap > 0 {
				paceSleep(u.wr.gap)
			}
			u.wr.gap = paceGap(u.wr.spread, msgLen(&u.wr.hdrs[u.wr.sent]), u.wr.total)
			u.wr.lim = u.wr.sent + 1
		}
		u.wr.errno = 0
		if err := u.rc.Write(u.wr.fn); err != nil {
			return err
		}
		switch u.wr.errno {
		case 0:
		case unix.EMSGSIZE, unix.EINVAL:
			h := &u.wr.hdrs[u.wr.sent]
			if gso && h.Hdr.Iovlen > 1 {
				// The segments are larger than the route's MTU (a large
				// tun-mtu, IP fragments): send the rest of the batch
				// again, coalescing only smaller segments from now on.
				u.wr.gsoMax = int(h.Hdr.Iov.Len) - 1
				pkts = pkts[u.packetsBefore(u.wr.sent):]
				goto retry
			}
			return os.NewSyscallError("sendmmsg", u.wr.errno)
		case unix.EIO:
			if gso {
				// EIO from a GSO send means the route's device cannot do the
				// checksums; send datagrams one by one from now on.
				u.wr.gso, gso = false, false
				goto retry
			}
			return os.NewSyscallError("sendmmsg", u.wr.errno)
		case unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EADDRNOTAVAIL:
			// Our address or route went away: drop the message and have the session
			// look for a new path (roam.go).
			u.wr.sent++
			u.unreachable()
		case unix.ECONNREFUSED, unix.ENOBUFS, unix.EPERM:
			// Transient, or a firewall: drop this message as the network would.
			u.wr.sent++
		default:
			return os.NewSyscallError("sendmmsg", u.wr.errno)
		}
	}
	return nil
}

// packetsBefore counts the packets packed into the messages before m.
func (u *udpConn) packetsBefore(m int) int {
	n := 0
	for i := 0; i < m; i++ {
		n += int(u.wr.hdrs[i].Hdr.Iovlen)
	}
	return n
}

// msgLen is the number of bytes a packed message carries.
func msgLen(h *unix.Mmsghdr) int {
	iovs := unsafe.Slice(h.Hdr.Iov, h.Hdr.Iovlen)
	n := 0
	for i := range iovs {
		n += int(iovs[i].Len)
	}
	return n
}

// pack lays out pkts as mmsghdrs, coalescing runs for GSO when enabled.
func (u *udpConn) pack(pkts [][]byte, gso bool) {
	nh := 0
	cs := unix.CmsgSpace(2)
	for i := 0; i < len(pkts); {
		h := &u.wr.hdrs[nh]
		h.Hdr = unix.Msghdr{Iov: &u.wr.iovs[i]}
		h.Len = 0
		seg := len(pkts[i])
		j := i
		total := 0
		for j < len(pkts) {
			l := len(pkts[j])
			if j > i && (!gso || l > seg || seg > u.wr.gsoMax || total+l > maxGSOBytes || j-i >= maxGSOSegments) {
				break
			}
			u.wr.iovs[j].Base = unsafe.SliceData(pkts[j])
			u.wr.iovs[j].SetLen(l)
			total += l
			j++
			if l < seg {
				break // a shorter segment must be the last one
			}
		}
		h.Hdr.SetIovlen(j - i)
		if j-i > 1 {
			oob := u.wr.oob[nh*cs : (nh+1)*cs]
			cm := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
			cm.Level = unix.SOL_UDP
			cm.Type = unix.UDP_SEGMENT
			cm.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(seg)
			h.Hdr.Control = &oob[0]
			h.Hdr.SetControllen(cs)
		}
		nh++
		i = j
	}
	u.wr.nhdrs = nh
}

// noteICMP reports the socket's first ICMP error; later ones repeat it and stay quiet.
func (u *udpConn) noteICMP(errno syscall.Errno) {
	if u.icmpSeen || u.onICMP == nil {
		return
	}
	u.icmpSeen = true
	u.onICMP(errno)
}

// WritePacket sends one packet from the control path.
func (u *udpConn) WritePacket(pkt []byte) error {
	u.ctrlMu.Lock()
	defer u.ctrlMu.Unlock()
	// A float socket names the current peer; a connected one needs no address.
	var name unsafe.Pointer
	var namelen uint32
	if u.float.on {
		p := u.float.peer.Load()
		name, namelen = unsafe.Pointer(&p.sa[0]), p.salen
	}
	var errno syscall.Errno
	err := u.rc.Write(func(fd uintptr) bool {
		_, _, errno = unix.Syscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(unsafe.SliceData(pkt))), uintptr(len(pkt)),
			unix.MSG_DONTWAIT, uintptr(name), uintptr(namelen))
		return errno != unix.EAGAIN && errno != unix.EINTR
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("sendto", errno)
	}
	if err != nil && isUnreachableError(err) {
		u.unreachable()
		return nil
	}
	if err != nil && isTransientSendError(err) {
		return nil
	}
	return err
}

func (u *udpConn) unreachable() {
	if u.onUnreachable != nil {
		u.onUnreachable()
	}
}

// isUnreachableError: the local address or the route towards the server is gone.
func isUnreachableError(err error) bool {
	return errors.Is(err, unix.EHOSTUNREACH) || errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EADDRNOTAVAIL)
}

func isTransientSendError(err error) bool {
	return errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EPERM)
}

// rxPause sleeps for d (at most rxModerationMax) in the calling thread with nanosleep: the
// runtime's timers round sleeps below a millisecond up to one. The socket reader runs on a
// thread of its own whose timer slack (50 µs by default, added to every sleep)
// setRxTimerSlack lowered once.
//
// The sleep is a raw system call, so the reader keeps its P meanwhile: through the
// runtime's syscall path, the system monitor would take the P away from every pause longer
// than its 20 µs tick while the other P is busy and hand it to another thread, and the
// reader would have to win one back after each pause; those hand-offs kept the monitor at
// its fastest tick and cost more than the pauses saved. Holding the P this briefly delays
// at most a stop-the-world by the pause.
func rxPause(d time.Duration) {
	ts := unix.NsecToTimespec(int64(min(d, rxModerationMax)))
	_, _, _ = unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// rxTimerSlack is the timer slack for rxPause, in nanoseconds.
const rxTimerSlack = 5000

// setRxTimerSlack sets the calling thread's timer slack for rxPause. Timer slack belongs to
// the OS thread, so the caller must have locked its goroutine to the thread and must never
// unlock it: the thread then exits with the goroutine and no other goroutine runs with the
// changed slack.
func setRxTimerSlack() { _ = unix.Prctl(unix.PR_SET_TIMERSLACK, rxTimerSlack, 0, 0, 0) }

// Close closes the socket, which ends a blocked ReadBatch.
func (u *udpConn) Close() error { return u.sock.Close() }

// LocalAddr is the socket's local address; for a float socket bound to the wildcard address,
// the address the kernel sends to the server from.
func (u *udpConn) LocalAddr() netip.AddrPort {
	la := u.local
	if u.float.on && la.Addr().IsUnspecified() {
		return netip.AddrPortFrom(u.float.src, la.Port())
	}
	return la
}

// RemoteAddr is the peer: the connected server, or where a float socket sends now.
func (u *udpConn) RemoteAddr() netip.AddrPort { return u.peerAddr() }

// Stream reports false: datagrams carry one packet each.
func (u *udpConn) Stream() bool { return false }
