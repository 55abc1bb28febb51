package session

/* SOCKS5 UDP ASSOCIATE (RFC 1928 section 7, RFC 1929), written here because
 * golang.org/x/net/proxy only does CONNECT. A TCP control connection to the
 * proxy negotiates the association and must stay open for its lifetime; every
 * datagram to the relay then starts with a 10-byte header naming the server
 * (IPv4, as OpenVPN does: RSV RSV FRAG ATYP=1 ADDR PORT), and every datagram
 * from it names its source the same way. Datagrams with a fragment number,
 * from another source or too short are dropped, as OpenVPN drops them.
 */

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"

	"github.com/ovpnd/ovpnd/config"
)

// SOCKS5 constants (RFC 1928, RFC 1929).
const (
	socksVersion       = 5
	socksAuthNone      = 0
	socksAuthUserPass  = 2
	socksAuthNoAccept  = 0xff
	socksCmdUDP        = 3
	socksATYPIPv4      = 1
	socksATYPDomain    = 3
	socksATYPIPv6      = 4
	socksUserPassVer   = 1
	socksUDPHeaderIPv4 = 10
)

// dialSOCKSUDP sets up a UDP association through the proxy at addr and returns
// a transport that carries the tunnel's datagrams through its relay.
func (r *runner) dialSOCKSUDP(ctx context.Context, conn *config.Connection, px *config.Proxy, addr netip.AddrPort, o udpDialOptions) (packetConn, error) {
	// The server's address goes into every datagram: resolve it here, IPv4
	// only (OpenVPN forces IPv4 with socks-proxy over UDP).
	sc := *conn
	sc.Family = config.FamilyIPv4
	ips, err := r.resolve(ctx, &sc)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", conn.Remote, err)
	}
	var server netip.AddrPort
	for _, a := range ips {
		if a.Unmap().Is4() {
			server = netip.AddrPortFrom(a.Unmap(), conn.Port)
			break
		}
	}
	if !server.IsValid() {
		return nil, fmt.Errorf("socks-proxy over UDP needs an IPv4 address for %s (as in OpenVPN), found %v", conn.Remote, ips)
	}
	var creds *proxyCreds
	if px.Creds != nil || px.Ask {
		if creds, err = r.proxyCredentials(ctx, px); err != nil {
			return nil, err
		}
	}
	ctl, err := dialProxyTCP(ctx, addr, udpDialOptions{SndBuf: o.SndBuf, RcvBuf: o.RcvBuf, Mark: o.Mark})
	if err != nil {
		return nil, err
	}
	lift := withDeadline(ctx, ctl)
	relay, err := socksUDPAssociate(ctl, creds)
	lift()
	if err != nil {
		ctl.Close()
		if errors.Is(err, errSOCKSAuthRefused) {
			r.credsRefused(creds)
		}
		return nil, fmt.Errorf("SOCKS proxy at %v: %w", addr, err)
	}
	if !relay.Addr().IsValid() || relay.Addr().IsUnspecified() {
		// "Use the address you reached me at."
		relay = netip.AddrPortFrom(addr.Addr(), relay.Port())
	}
	relay = netip.AddrPortFrom(relay.Addr().Unmap(), relay.Port())
	o.Network = "udp4"
	if relay.Addr().Is6() {
		o.Network = "udp6"
	}
	d := &net.Dialer{Control: tcpDialer(o).Control}
	if o.Local.IsValid() || o.Local.Port() != 0 {
		d.LocalAddr = net.UDPAddrFromAddrPort(o.Local)
	}
	c, err := d.DialContext(ctx, o.Network, relay.String())
	if err != nil {
		ctl.Close()
		return nil, fmt.Errorf("connecting to the SOCKS relay at %v: %w", relay, err)
	}
	r.s.logf(1, "SOCKS proxy at %v relays UDP to %v through %v", addr, server, relay)
	return newSOCKSUDPConn(ctl, c.(*net.UDPConn), server, relay), nil
}

var errSOCKSAuthRefused = errors.New("the proxy refused the username and password")

// socksUDPAssociate runs the SOCKS5 handshake on the control connection rw
// and asks for a UDP association; it returns the relay's address.
func socksUDPAssociate(rw io.ReadWriter, creds *proxyCreds) (netip.AddrPort, error) {
	greet := []byte{socksVersion, 1, socksAuthNone}
	if creds != nil {
		greet = []byte{socksVersion, 2, socksAuthNone, socksAuthUserPass}
	}
	if _, err := rw.Write(greet); err != nil {
		return netip.AddrPort{}, fmt.Errorf("sending the greeting: %w", err)
	}
	var sel [2]byte
	if _, err := io.ReadFull(rw, sel[:]); err != nil {
		return netip.AddrPort{}, fmt.Errorf("reading the method selection: %w", err)
	}
	if sel[0] != socksVersion {
		return netip.AddrPort{}, fmt.Errorf("not a SOCKS5 proxy (version %d)", sel[0])
	}
	switch sel[1] {
	case socksAuthNone:
	case socksAuthUserPass:
		if creds == nil {
			return netip.AddrPort{}, errors.New("the proxy chose username/password authentication, which was not offered")
		}
		req := []byte{socksUserPassVer, byte(len(creds.user))}
		req = append(req, creds.user...)
		req = append(req, byte(len(creds.pass)))
		req = append(req, creds.pass...)
		if _, err := rw.Write(req); err != nil {
			return netip.AddrPort{}, fmt.Errorf("sending the credentials: %w", err)
		}
		var st [2]byte
		if _, err := io.ReadFull(rw, st[:]); err != nil {
			return netip.AddrPort{}, fmt.Errorf("reading the authentication status: %w", err)
		}
		if st[1] != 0 {
			return netip.AddrPort{}, errSOCKSAuthRefused
		}
	case socksAuthNoAccept:
		if creds == nil {
			return netip.AddrPort{}, errors.New("the proxy accepts none of the offered authentication methods (it may need a username and password)")
		}
		return netip.AddrPort{}, errors.New("the proxy accepts none of the offered authentication methods")
	default:
		return netip.AddrPort{}, fmt.Errorf("the proxy chose authentication method %d, which was not offered", sel[1])
	}
	// UDP ASSOCIATE from 0.0.0.0:0: the client's address and port are not
	// known before the first datagram (OpenVPN sends the same).
	if _, err := rw.Write([]byte{socksVersion, socksCmdUDP, 0, socksATYPIPv4, 0, 0, 0, 0, 0, 0}); err != nil {
		return netip.AddrPort{}, fmt.Errorf("sending UDP ASSOCIATE: %w", err)
	}
	return readSOCKSReply(rw)
}

// socksReplies are RFC 1928's reply codes.
var socksReplies = map[byte]string{
	1: "general SOCKS server failure", 2: "connection not allowed by ruleset", 3: "network unreachable",
	4: "host unreachable", 5: "connection refused", 6: "TTL expired", 7: "command not supported",
	8: "address type not supported",
}

// readSOCKSReply reads the proxy's reply to a request and returns BND.ADDR:BND.PORT.
func readSOCKSReply(r io.Reader) (netip.AddrPort, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return netip.AddrPort{}, fmt.Errorf("reading the reply: %w", err)
	}
	if hdr[0] != socksVersion {
		return netip.AddrPort{}, fmt.Errorf("reply has version %d", hdr[0])
	}
	if hdr[1] != 0 {
		msg, ok := socksReplies[hdr[1]]
		if !ok {
			msg = fmt.Sprintf("reply code %d", hdr[1])
		}
		return netip.AddrPort{}, fmt.Errorf("UDP ASSOCIATE refused: %s", msg)
	}
	var addr netip.Addr
	switch hdr[3] {
	case socksATYPIPv4:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return netip.AddrPort{}, fmt.Errorf("reading the relay address: %w", err)
		}
		addr = netip.AddrFrom4(b)
	case socksATYPIPv6:
		var b [16]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return netip.AddrPort{}, fmt.Errorf("reading the relay address: %w", err)
		}
		addr = netip.AddrFrom16(b)
	case socksATYPDomain:
		// A relay named by host name: read and skip it; the proxy's own
		// address is used instead (below, as for 0.0.0.0).
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return netip.AddrPort{}, fmt.Errorf("reading the relay address: %w", err)
		}
		if _, err := io.CopyN(io.Discard, r, int64(n[0])); err != nil {
			return netip.AddrPort{}, fmt.Errorf("reading the relay address: %w", err)
		}
	default:
		return netip.AddrPort{}, fmt.Errorf("reply has address type %d", hdr[3])
	}
	var p [2]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return netip.AddrPort{}, fmt.Errorf("reading the relay port: %w", err)
	}
	port := binary.BigEndian.Uint16(p[:])
	if port == 0 {
		return netip.AddrPort{}, errors.New("the proxy gave relay port 0")
	}
	return netip.AddrPortFrom(addr, port), nil
}

// putSOCKSUDPHeader writes the header of a datagram to server into b[:10].
func putSOCKSUDPHeader(b []byte, server netip.AddrPort) {
	b[0], b[1], b[2], b[3] = 0, 0, 0, socksATYPIPv4
	a := server.Addr().As4()
	copy(b[4:8], a[:])
	binary.BigEndian.PutUint16(b[8:], server.Port())
}

// parseSOCKSUDPHeader checks the header of a datagram from the relay and
// returns where the payload starts; ok is false for datagrams to drop: too
// short, fragmented (FRAG != 0), or not from server.
func parseSOCKSUDPHeader(p []byte, server netip.AddrPort) (int, bool) {
	if len(p) < 4 || p[0] != 0 || p[1] != 0 || p[2] != 0 {
		return 0, false
	}
	switch p[3] {
	case socksATYPIPv4:
		if len(p) < socksUDPHeaderIPv4 {
			return 0, false
		}
		a := server.Addr().As4()
		if [4]byte(p[4:8]) != a || binary.BigEndian.Uint16(p[8:]) != server.Port() {
			return 0, false
		}
		return socksUDPHeaderIPv4, true
	case socksATYPIPv6:
		// The server is IPv4; an IPv4-mapped form of it is still it.
		if len(p) < 22 {
			return 0, false
		}
		a := netip.AddrFrom16([16]byte(p[4:20])).Unmap()
		if a != server.Addr() || binary.BigEndian.Uint16(p[20:]) != server.Port() {
			return 0, false
		}
		return 22, true
	}
	return 0, false
}

// socksUDPConn carries the tunnel's datagrams through a SOCKS5 UDP relay. It
// owns the control connection; a goroutine watches it, since the association
// ends when it closes, and Close waits for that goroutine.
type socksUDPConn struct {
	ctl    *net.TCPConn
	uc     *net.UDPConn
	server netip.AddrPort
	relay  netip.AddrPort
	done   chan struct{}

	// wmu serialises writers (the tun reader and the control loop) over wbuf.
	wmu  sync.Mutex
	wbuf []byte
}

func newSOCKSUDPConn(ctl *net.TCPConn, uc *net.UDPConn, server, relay netip.AddrPort) *socksUDPConn {
	c := &socksUDPConn{ctl: ctl, uc: uc, server: server, relay: relay, done: make(chan struct{}),
		wbuf: make([]byte, socksUDPHeaderIPv4+65535)}
	putSOCKSUDPHeader(c.wbuf, server)
	go func() {
		defer close(c.done)
		var b [64]byte
		for {
			if _, err := c.ctl.Read(b[:]); err != nil {
				// The proxy ended the association: end the transport too, so
				// the blocked reader reports it and the session reconnects.
				c.uc.Close()
				return
			}
		}
	}()
	return c
}

// ReadBatch returns one datagram from the server, without its SOCKS header.
func (c *socksUDPConn) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	for {
		n, err := c.uc.Read(bufs[0])
		if err != nil {
			return 0, fmt.Errorf("reading from the SOCKS relay: %w", err)
		}
		off, ok := parseSOCKSUDPHeader(bufs[0][:n], c.server)
		if !ok {
			continue
		}
		sizes[0] = copy(bufs[0], bufs[0][off:n])
		return 1, nil
	}
}

// WriteBatch sends each packet behind the SOCKS header.
func (c *socksUDPConn) WriteBatch(pkts [][]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, p := range pkts {
		if err := c.writeLocked(p); err != nil {
			return err
		}
	}
	return nil
}

// WritePacket sends one packet behind the SOCKS header.
func (c *socksUDPConn) WritePacket(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(p)
}

func (c *socksUDPConn) writeLocked(p []byte) error {
	if len(p) > len(c.wbuf)-socksUDPHeaderIPv4 {
		return fmt.Errorf("writing %d-byte packet: too large for a datagram", len(p))
	}
	n := copy(c.wbuf[socksUDPHeaderIPv4:], p)
	if _, err := c.uc.Write(c.wbuf[:socksUDPHeaderIPv4+n]); err != nil {
		return fmt.Errorf("writing to the SOCKS relay: %w", err)
	}
	return nil
}

// Close ends the association and waits for the control watcher.
func (c *socksUDPConn) Close() error {
	err := errors.Join(c.uc.Close(), c.ctl.Close())
	<-c.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// LocalAddr is the UDP socket's local address.
func (c *socksUDPConn) LocalAddr() netip.AddrPort { return c.uc.LocalAddr().(*net.UDPAddr).AddrPort() }

// RemoteAddr is the relay's address: the outer header of every datagram.
func (c *socksUDPConn) RemoteAddr() netip.AddrPort { return c.relay }

// Stream reports false: datagrams.
func (c *socksUDPConn) Stream() bool { return false }

// DatagramOverhead is the SOCKS header in front of every datagram, which
// OpenVPN counts in its mssfix and fragment sizes.
func (c *socksUDPConn) DatagramOverhead() int { return socksUDPHeaderIPv4 }
