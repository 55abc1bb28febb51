package session

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// tcpReadBuffer is the stream buffer, sized so that a batch of full frames is
// usually already buffered after one read.
const tcpReadBuffer = 256 << 10

// errFrameTooLarge reports a TCP frame that does not fit the receive buffers: the
// length prefix allows 65535 but nothing legitimate comes near our buffer size, so
// it is a broken or hostile stream and ends the connection.
var errFrameTooLarge = errors.New("TCP frame larger than the receive buffer")

// tcpConn carries OpenVPN packets over a TCP stream, each prefixed with its
// 16-bit big-endian length.
type tcpConn struct {
	conn   *net.TCPConn
	r      *bufio.Reader
	remote netip.AddrPort

	// mu serialises writers: the tun reader and the control loop both send, and
	// their frames must not interleave.
	mu  sync.Mutex
	out []byte
}

// dialTCP connects to remote, binding to local when it is set.
func dialTCP(ctx context.Context, remote netip.AddrPort, o udpDialOptions) (*tcpConn, error) {
	network := "tcp6"
	if remote.Addr().Is4() || remote.Addr().Is4In6() {
		network = "tcp4"
		remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	}
	c, err := tcpDialer(o).DialContext(ctx, network, net.JoinHostPort(remote.Addr().String(), strconv.Itoa(int(remote.Port()))))
	if err != nil {
		return nil, fmt.Errorf("connecting TCP to %v: %w", remote, err)
	}
	tc := c.(*net.TCPConn)
	_ = tc.SetNoDelay(true)
	return newTCPConn(tc, remote), nil
}

func newTCPConn(c *net.TCPConn, remote netip.AddrPort) *tcpConn {
	return &tcpConn{
		conn:   c,
		r:      bufio.NewReaderSize(c, tcpReadBuffer),
		remote: remote,
		out:    make([]byte, 0, 64<<10),
	}
}

// ReadBatch blocks for one complete frame, then returns it together with any
// further frames already buffered, up to len(bufs).
func (t *tcpConn) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	n := 0
	for n < len(bufs) {
		if n > 0 && !t.frameBuffered() {
			break
		}
		var hdr [2]byte
		if _, err := io.ReadFull(t.r, hdr[:]); err != nil {
			return n, fmt.Errorf("reading TCP frame length: %w", err)
		}
		l := int(binary.BigEndian.Uint16(hdr[:]))
		if l > len(bufs[n]) {
			return n, fmt.Errorf("reading %d-byte TCP frame: %w", l, errFrameTooLarge)
		}
		if _, err := io.ReadFull(t.r, bufs[n][:l]); err != nil {
			return n, fmt.Errorf("reading TCP frame: %w", err)
		}
		sizes[n] = l
		n++
	}
	return n, nil
}

func (t *tcpConn) frameBuffered() bool {
	b := t.r.Buffered()
	if b < 2 {
		return false
	}
	hdr, err := t.r.Peek(2)
	if err != nil {
		return false
	}
	return b >= 2+int(binary.BigEndian.Uint16(hdr))
}

// WriteBatch frames pkts into one buffer and writes it with one call.
func (t *tcpConn) WriteBatch(pkts [][]byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.out[:0]
	for _, p := range pkts {
		if len(p) > 0xffff {
			continue
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(p)))
		out = append(out, p...)
	}
	t.out = out[:0]
	if _, err := t.conn.Write(out); err != nil {
		return fmt.Errorf("writing to TCP: %w", err)
	}
	return nil
}

// controlWriteTimeout bounds a control-loop write on a stalled TCP connection (a
// variable for the test).
var controlWriteTimeout = 10 * time.Second

// WritePacket frames and writes one packet. It is the control loop's write, so it
// must not block forever on a peer that stopped reading: the write deadline is
// set before taking the lock, which also ends a data-path WriteBatch stuck on the
// same stalled stream (that write fails and the connection is restarted).
func (t *tcpConn) WritePacket(pkt []byte) error {
	if len(pkt) > 0xffff {
		return fmt.Errorf("writing %d-byte packet: too large for a TCP frame", len(pkt))
	}
	_ = t.conn.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
	t.mu.Lock()
	defer t.mu.Unlock()
	out := binary.BigEndian.AppendUint16(t.out[:0], uint16(len(pkt)))
	out = append(out, pkt...)
	t.out = out[:0]
	_, err := t.conn.Write(out)
	_ = t.conn.SetWriteDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("writing to TCP: %w", err)
	}
	return nil
}

// Close closes the connection, which ends a blocked ReadBatch.
func (t *tcpConn) Close() error { return t.conn.Close() }

// LocalAddr is the connection's local address.
func (t *tcpConn) LocalAddr() netip.AddrPort {
	return t.conn.LocalAddr().(*net.TCPAddr).AddrPort()
}

// RemoteAddr is the server's address.
func (t *tcpConn) RemoteAddr() netip.AddrPort { return t.remote }

// Stream reports true: a lost connection cannot be recovered by the peer.
func (t *tcpConn) Stream() bool { return true }
