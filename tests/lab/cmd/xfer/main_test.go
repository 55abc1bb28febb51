package main

import (
	"io"
	"net"
	"strings"
	"testing"
)

// corruptor flips one byte at a fixed stream offset of everything written through it.
type corruptor struct {
	net.Conn
	at, off int64
}

func (c *corruptor) Write(p []byte) (int, error) {
	if c.at >= c.off && c.at < c.off+int64(len(p)) {
		q := append([]byte(nil), p...)
		q[c.at-c.off] ^= 0x40
		p = q
	}
	c.off += int64(len(p))
	return c.Conn.Write(p)
}

func TestExchange(t *testing.T) {
	tests := []struct {
		name    string
		flags   byte
		n       uint64
		corrupt int64 // stream offset (after the 21-byte header) to flip in the data direction; -1 none
		wantErr string
	}{
		{"upload", 0, 300000, -1, ""},
		{"download", flagDownload, 300000, -1, ""},
		{"download compressible", flagDownload | flagCompressible, 100000, -1, ""},
		{"empty", 0, 0, -1, ""},
		{"upload corrupted", 0, 300000, 123457, "offset 123457"},
		{"download corrupted", flagDownload, 300000, 5, "offset 5"},
		{"compressible corrupted", flagCompressible, 70000, 69999, "offset 69999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli, srv := net.Pipe()
			var cliConn, srvConn net.Conn = cli, srv
			if tt.corrupt >= 0 {
				if tt.flags&flagDownload != 0 {
					srvConn = &corruptor{Conn: srv, at: tt.corrupt}
				} else {
					cliConn = &corruptor{Conn: cli, at: tt.corrupt + hdrLen}
				}
			}
			done := make(chan error, 1)
			go func() {
				done <- handle(srvConn)
				srv.Close()
			}()
			err := exchange(cliConn, tt.flags, tt.n, 7)
			cli.Close()
			srvErr := <-done
			if tt.wantErr == "" {
				if err != nil || srvErr != nil {
					t.Fatalf("client %v, server %v", err, srvErr)
				}
				return
			}
			if err == nil {
				t.Fatalf("corruption not detected (server: %v)", srvErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestCompressibleStreamIsDeterministicAndRepetitive(t *testing.T) {
	a, b := make([]byte, 5000), make([]byte, 5000)
	io.ReadFull(stream(9, flagCompressible), a)
	// Odd read sizes must not change the stream.
	r := stream(9, flagCompressible)
	for off := 0; off < len(b); off += 7 {
		io.ReadFull(r, b[off:min(off+7, len(b))])
	}
	if string(a) != string(b) {
		t.Fatal("stream depends on read sizes")
	}
	if string(a[64:128]) != string(a[:64]) || string(a[1024:1088]) == string(a[:64]) {
		t.Fatal("blocks do not repeat 64 bytes within a block and differ across blocks")
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte("OVLX\x01\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x10\x00"))
	f.Add([]byte("OVLX\xff\x00\x00\x00\x00\x00\x00\x00\x07\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		flags, _, n, err := parseHeader(b)
		if err == nil && (n > maxBytes || flags > 3) {
			t.Fatalf("accepted flags %d length %d", flags, n)
		}
	})
}
