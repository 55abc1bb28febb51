package wire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// MaxTCPFrame is the largest packet a TCP length prefix can describe.
const MaxTCPFrame = 0xFFFF

// TryAppendTCPFrame appends pkt with its u16 big-endian length prefix, or
// returns an error if pkt is empty or longer than MaxTCPFrame.
func TryAppendTCPFrame(dst, pkt []byte) ([]byte, error) {
	if len(pkt) == 0 || len(pkt) > MaxTCPFrame {
		return dst, fmt.Errorf("framing packet: length %d outside 1..%d", len(pkt), MaxTCPFrame)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(pkt)))
	return append(dst, pkt...), nil
}

// AppendTCPFrame appends pkt with its u16 big-endian length prefix. A packet
// that cannot be framed (empty or over MaxTCPFrame bytes, which the engine
// never produces) is not appended and dst is returned unchanged; use
// TryAppendTCPFrame to get an error instead.
func AppendTCPFrame(dst, pkt []byte) []byte {
	out, _ := TryAppendTCPFrame(dst, pkt)
	return out
}

// SplitTCPFrame takes the first length-prefixed packet off a TCP stream
// buffer. ok is false when buf does not yet hold a whole frame (read more and
// call again). A zero length is an error: OpenVPN never sends one, and
// accepting it would let a peer spin the reader.
func SplitTCPFrame(buf []byte) (pkt, rest []byte, ok bool, err error) {
	if len(buf) < 2 {
		return nil, buf, false, nil
	}
	n := int(binary.BigEndian.Uint16(buf))
	if n == 0 {
		return nil, buf, false, fmt.Errorf("splitting TCP stream: zero-length frame")
	}
	if len(buf) < 2+n {
		return nil, buf, false, nil
	}
	return buf[2 : 2+n], buf[2+n:], true, nil
}

// TCPReader reads length-prefixed packets from a stream using one fixed
// buffer, so reading does not allocate.
type TCPReader struct {
	r   io.Reader
	buf [2 + MaxTCPFrame]byte
}

// NewTCPReader returns a reader of OpenVPN TCP frames from r.
func NewTCPReader(r io.Reader) *TCPReader { return &TCPReader{r: r} }

// ReadPacket returns the next packet. The result aliases the reader's buffer
// and is valid until the next call. A stream that ends between frames
// returns io.EOF; one that ends inside a frame returns io.ErrUnexpectedEOF.
func (t *TCPReader) ReadPacket() ([]byte, error) {
	if _, err := io.ReadFull(t.r, t.buf[:2]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(t.buf[:2]))
	if n == 0 {
		return nil, fmt.Errorf("reading TCP stream: zero-length frame")
	}
	if _, err := io.ReadFull(t.r, t.buf[2:2+n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading TCP frame of %d bytes: %w", n, err)
	}
	return t.buf[2 : 2+n], nil
}
