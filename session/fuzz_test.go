package session

import (
	"bufio"
	"bytes"
	"net/netip"
	"testing"

	"github.com/ovpnd/ovpnd/engine/datachannel"
)

// FuzzTCPFrames feeds arbitrary streams to the TCP frame reader: it must return
// frames or an error, never panic or return more than it was given.
func FuzzTCPFrames(f *testing.F) {
	f.Add([]byte{0, 3, 'a', 'b', 'c', 0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, stream []byte) {
		tc := &tcpConn{r: bufio.NewReaderSize(bytes.NewReader(stream), 64)}
		bufs := [][]byte{make([]byte, 300), make([]byte, 300), make([]byte, 300)}
		sizes := make([]int, 3)
		total := 0
		for range 100 {
			n, err := tc.ReadBatch(bufs, sizes)
			for i := range n {
				total += sizes[i] + 2
			}
			if err != nil {
				break
			}
		}
		if total > len(stream) {
			t.Fatalf("read %d bytes of frames from a %d-byte stream", total, len(stream))
		}
	})
}

// FuzzSocketToTun feeds arbitrary datagrams to the receive path with real keys.
func FuzzSocketToTun(f *testing.F) {
	ck, sk := realKeyPair(f, "AES-256-GCM", "")
	buf := make([]byte, 512)
	p, _ := sk.Seal(buf, datachannel.Headroom, 40)
	f.Add(append([]byte(nil), p...))
	f.Add([]byte{4 << 3, 1, 2, 3})
	f.Add([]byte{9<<3 | 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, dgram []byte) {
		tn := &fakeTun{}
		c := &fakeConn{in: [][]byte{dgram}}
		d, ref, _ := newTestPath(t, tn, c)
		d.setKeys(&keySet{primary: ck})
		d.RoutineSocketToTun(ref)
	})
}

// FuzzSockaddr: the source addresses recvmmsg hands a float socket are decoded without a panic
// whatever the bytes, and a peer's sockaddr decodes back to the peer.
func FuzzSockaddr(f *testing.F) {
	for _, a := range []string{"198.18.0.1:1194", "[fd18::1]:443", "[::ffff:192.0.2.1]:1"} {
		p := newUDPPeer(netip.MustParseAddrPort(a), 0)
		f.Add(p.sa[:p.salen])
	}
	f.Add([]byte{})
	f.Add([]byte{2, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ap := sockaddrAddrPort(b)
		if !ap.IsValid() {
			return
		}
		p := newUDPPeer(ap, 0)
		if got := sockaddrAddrPort(p.sa[:p.salen]); got != ap {
			t.Fatalf("%v encodes and decodes to %v", ap, got)
		}
	})
}
