// Command xfer moves a deterministic pseudo-random byte stream over TCP and checks it byte for
// byte. The lab runs `xfer serve ADDR` in the server namespace and
// `xfer send [-download] [-compressible] ADDR BYTES [SEED]` in the client namespace, so a tunnel
// that drops, duplicates or corrupts a single byte in either direction fails the check.
//
// Wire format (integers big-endian): the client writes "OVLX", a flags byte (1 = the server
// sends the stream, 2 = compressible stream), an 8-byte seed and an 8-byte length. Then the
// sending side writes the stream, and the receiving side answers one status byte (0 = stream
// matched), the SHA-256 of what it received and the offset of the first mismatching byte (or
// the length). The compressible stream repeats 64 random bytes over each 1 KiB block, so a
// server with comp-lzo really compresses it and the client has to decompress.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	magic    = "OVLX"
	hdrLen   = 21
	maxBytes = 1 << 40
	chunk    = 64 << 10

	flagDownload     = 1
	flagCompressible = 2
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "xfer:", err)
		os.Exit(1)
	}
}

const usage = "usage: xfer serve ADDR | xfer send [-download] [-compressible] ADDR BYTES [SEED]"

func run(args []string) error {
	switch {
	case len(args) == 2 && args[0] == "serve":
		return serve(args[1])
	case len(args) >= 3 && args[0] == "send":
		var flags byte
		rest := args[1:]
		for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
			switch rest[0] {
			case "-download":
				flags |= flagDownload
			case "-compressible":
				flags |= flagCompressible
			default:
				return fmt.Errorf("unknown flag %q", rest[0])
			}
			rest = rest[1:]
		}
		if len(rest) != 2 && len(rest) != 3 {
			return errors.New(usage)
		}
		n, err := strconv.ParseUint(rest[1], 10, 64)
		if err != nil || n > maxBytes {
			return fmt.Errorf("parsing byte count %q: want 0..%d", rest[1], uint64(maxBytes))
		}
		seed := uint64(time.Now().UnixNano())
		if len(rest) == 3 {
			if seed, err = strconv.ParseUint(rest[2], 10, 64); err != nil {
				return fmt.Errorf("parsing seed: %w", err)
			}
		}
		return client(rest[0], flags, n, seed)
	default:
		return errors.New(usage)
	}
}

// stream is the deterministic byte source both ends derive from the seed and flags.
func stream(seed uint64, flags byte) io.Reader {
	var key [32]byte
	binary.BigEndian.PutUint64(key[:], seed)
	copy(key[8:], "ovpnd-lab-xfer-stream-v1")
	r := rand.NewChaCha8(key)
	if flags&flagCompressible != 0 {
		return &compressible{src: r}
	}
	return r
}

// compressible turns a random source into 1 KiB blocks that each repeat 64 random bytes.
type compressible struct {
	src   io.Reader
	block [1024]byte
	pos   int
}

func (c *compressible) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if c.pos == 0 {
			io.ReadFull(c.src, c.block[:64])
			for i := 64; i < len(c.block); i += 64 {
				copy(c.block[i:], c.block[:64])
			}
		}
		m := copy(p[n:], c.block[c.pos:])
		n += m
		c.pos = (c.pos + m) % len(c.block)
	}
	return n, nil
}

func serve(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return fmt.Errorf("accepting: %w", err)
		}
		go func() {
			defer c.Close()
			if err := handle(c); err != nil {
				fmt.Printf("error from %s: %v\n", c.RemoteAddr(), err)
			}
		}()
	}
}

func handle(c net.Conn) error {
	var hdr [hdrLen]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("reading header: %w", err)
	}
	flags, seed, n, err := parseHeader(hdr[:])
	if err != nil {
		return err
	}
	if flags&flagDownload != 0 {
		if err := sendStream(c, flags, seed, n); err != nil {
			return err
		}
		fmt.Printf("ok sent %d bytes to %s\n", n, c.RemoteAddr())
		return nil
	}
	if err := receiveStream(c, flags, seed, n); err != nil {
		return err
	}
	fmt.Printf("ok received %d bytes from %s\n", n, c.RemoteAddr())
	return nil
}

func parseHeader(hdr []byte) (flags byte, seed, n uint64, err error) {
	if len(hdr) != hdrLen || string(hdr[:4]) != magic {
		return 0, 0, 0, errors.New("bad header")
	}
	flags = hdr[4]
	seed = binary.BigEndian.Uint64(hdr[5:])
	n = binary.BigEndian.Uint64(hdr[13:])
	if flags&^(flagDownload|flagCompressible) != 0 {
		return 0, 0, 0, fmt.Errorf("unknown flags %#x", flags)
	}
	if n > maxBytes {
		return 0, 0, 0, fmt.Errorf("length %d too large", n)
	}
	return flags, seed, n, nil
}

// receiveStream reads and checks n bytes, then answers with the verdict.
func receiveStream(c net.Conn, flags byte, seed, n uint64) error {
	want := stream(seed, flags)
	h := sha256.New()
	got := make([]byte, chunk)
	exp := make([]byte, chunk)
	mismatch := n
	for off := uint64(0); off < n; {
		m := int(min(uint64(chunk), n-off))
		if _, err := io.ReadFull(c, got[:m]); err != nil {
			return fmt.Errorf("reading at offset %d of %d: %w", off, n, err)
		}
		io.ReadFull(want, exp[:m])
		h.Write(got[:m])
		if mismatch == n && !bytes.Equal(got[:m], exp[:m]) {
			for i := range m {
				if got[i] != exp[i] {
					mismatch = off + uint64(i)
					break
				}
			}
		}
		off += uint64(m)
	}
	var reply [41]byte
	if mismatch != n {
		reply[0] = 1
	}
	copy(reply[1:33], h.Sum(nil))
	binary.BigEndian.PutUint64(reply[33:], mismatch)
	if _, err := c.Write(reply[:]); err != nil {
		return fmt.Errorf("writing verdict: %w", err)
	}
	if mismatch != n {
		return fmt.Errorf("stream of %d bytes (seed %d, flags %d) differs from offset %d", n, seed, flags, mismatch)
	}
	return nil
}

// sendStream writes n bytes and checks the receiver's verdict against the local SHA-256.
func sendStream(c net.Conn, flags byte, seed, n uint64) error {
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(stream(seed, flags), int64(n)), h)
	if _, err := io.CopyBuffer(c, src, make([]byte, chunk)); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	var reply [41]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		return fmt.Errorf("reading verdict: %w", err)
	}
	if reply[0] != 0 {
		return fmt.Errorf("receiver saw a different stream from offset %d (seed %d, flags %d, %d bytes)",
			binary.BigEndian.Uint64(reply[33:]), seed, flags, n)
	}
	if !bytes.Equal(reply[1:33], h.Sum(nil)) {
		return fmt.Errorf("SHA-256 mismatch: sent %x, receiver got %x", h.Sum(nil), reply[1:33])
	}
	return nil
}

func client(addr string, flags byte, n, seed uint64) error {
	// The tunnel may still be settling; retry the connect briefly rather than failing at once.
	var c net.Conn
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err = net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer c.Close()
	start := time.Now()
	if err := exchange(c, flags, n, seed); err != nil {
		return err
	}
	d := time.Since(start)
	dir := "upload"
	if flags&flagDownload != 0 {
		dir = "download"
	}
	fmt.Printf("ok %s %d bytes seed %d flags %d in %v (%.1f Mbit/s)\n", dir, n, seed, flags,
		d.Round(time.Millisecond), float64(n)*8/d.Seconds()/1e6)
	return nil
}

// exchange runs the client side of one transfer on an open connection.
func exchange(c net.Conn, flags byte, n, seed uint64) error {
	var hdr [hdrLen]byte
	copy(hdr[:], magic)
	hdr[4] = flags
	binary.BigEndian.PutUint64(hdr[5:], seed)
	binary.BigEndian.PutUint64(hdr[13:], n)
	if _, err := c.Write(hdr[:]); err != nil {
		return fmt.Errorf("writing header: %w", err)
	}
	if flags&flagDownload != 0 {
		if err := receiveStream(c, flags, seed, n); err != nil {
			return fmt.Errorf("download: %w", err)
		}
		return nil
	}
	if err := sendStream(c, flags, seed, n); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	return nil
}
