package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/ovpnd/ovpnd/internal/israce"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Unwrapped packets from OpenVPN's tests/unit_tests/openvpn/test_pkt.c.
var (
	// client_reset_v2_none
	vecResetV2None = []byte{0x38, 0x68, 0x91, 0x92, 0x3f, 0xa3, 0x10, 0x34, 0x37, 0x00, 0x00, 0x00, 0x00, 0x00}
	// client_control_with_ack (truncated TLS payload)
	vecControlWithAck = []byte{0x20, 0x78, 0x19, 0xbf, 0x2e, 0xbc, 0xd1, 0x9a,
		0x45, 0x01, 0x00, 0x00, 0x00, 0x00, 0xea, 0xfe,
		0xbf, 0xa4, 0x41, 0x8a, 0xe3, 0x1b, 0x00, 0x00,
		0x00, 0x01, 0x16, 0x03, 0x01}
	// client_ack_none_random_id
	vecAckNone = []byte{0x28, 0xae, 0xb9, 0xaf, 0xe1, 0xf0, 0x1d, 0x79,
		0xc8, 0x01, 0x00, 0x00, 0x00, 0x00, 0xdd, 0x85,
		0xdb, 0x53, 0x56, 0x23, 0xb0, 0x2e}
	// client_ack_123_none_random_id: P_ACK_V1 acking 0, 1 and 2
	vecAck123None = []byte{0x28,
		0xae, 0xb9, 0xaf, 0xe1, 0xf0, 0x1d, 0x79, 0xc8,
		0x03,
		0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x01,
		0x00, 0x00, 0x00, 0x02,
		0xdd, 0x85, 0xdb, 0x53, 0x56, 0x23, 0xb0, 0x2e}
	// client_control_none_random_id: announces one ack but stops before the
	// remote session id, so it is malformed.
	vecControlTruncated = []byte{0x20,
		0xae, 0xb9, 0xaf, 0xe1, 0xf0, 0x1d, 0x79, 0xc8,
		0x01,
		0x00, 0x00, 0x00, 0x00,
		0x02}
)

func TestParseControlPlainGolden(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want ControlPacket
	}{
		{"client_reset_v2_none", vecResetV2None, ControlPacket{
			Opcode:    OpHardResetClientV2,
			SessionID: SessionID{0x68, 0x91, 0x92, 0x3f, 0xa3, 0x10, 0x34, 0x37},
		}},
		{"client_control_with_ack", vecControlWithAck, ControlPacket{
			Opcode:          OpControlV1,
			SessionID:       SessionID{0x78, 0x19, 0xbf, 0x2e, 0xbc, 0xd1, 0x9a, 0x45},
			Acks:            []uint32{0},
			RemoteSessionID: SessionID{0xea, 0xfe, 0xbf, 0xa4, 0x41, 0x8a, 0xe3, 0x1b},
			MessageID:       1,
			Payload:         []byte{0x16, 0x03, 0x01},
		}},
		{"client_ack_none_random_id", vecAckNone, ControlPacket{
			Opcode:          OpAckV1,
			SessionID:       SessionID{0xae, 0xb9, 0xaf, 0xe1, 0xf0, 0x1d, 0x79, 0xc8},
			Acks:            []uint32{0},
			RemoteSessionID: SessionID{0xdd, 0x85, 0xdb, 0x53, 0x56, 0x23, 0xb0, 0x2e},
		}},
		{"client_ack_123_none_random_id", vecAck123None, ControlPacket{
			Opcode:          OpAckV1,
			SessionID:       SessionID{0xae, 0xb9, 0xaf, 0xe1, 0xf0, 0x1d, 0x79, 0xc8},
			Acks:            []uint32{0, 1, 2},
			RemoteSessionID: SessionID{0xdd, 0x85, 0xdb, 0x53, 0x56, 0x23, 0xb0, 0x2e},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseControlPlain(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
			if enc := got.AppendPlain(nil); !bytes.Equal(enc, tc.in) {
				t.Errorf("re-encoded\n got %x\nwant %x", enc, tc.in)
			}
			if n := got.BodyLen(); n != len(tc.in)-9 {
				t.Errorf("BodyLen %d, want %d", n, len(tc.in)-9)
			}
		})
	}
}

func TestParseControlErrors(t *testing.T) {
	nineAcks := append([]byte{0x20, 1, 2, 3, 4, 5, 6, 7, 8, 9}, make([]byte, 9*4+8+4)...)
	ackWithTrailer := append(bytes.Clone(vecAckNone), 0xff)
	tests := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"empty", nil, "truncated"},
		{"opcode-0", []byte{0x00}, "unknown opcode 0"},
		{"opcode-1-key-method-1", []byte{0x08}, "unknown opcode 1"},
		{"opcode-2", []byte{0x10}, "unknown opcode 2"},
		{"opcode-12", []byte{0x60}, "unknown opcode 12"},
		{"opcode-31", []byte{0xf8}, "unknown opcode 31"},
		{"data-v1", append([]byte{0x30}, make([]byte, 20)...), "not a control opcode"},
		{"data-v2", append([]byte{0x48}, make([]byte, 20)...), "not a control opcode"},
		{"short-sid", vecResetV2None[:8], "session id"},
		{"no-ack-count", vecResetV2None[:9], "ack count"},
		{"no-msgid", vecResetV2None[:12], "message id"},
		{"nine-acks", nineAcks, "9 acks"},
		{"acks-truncated", vecAck123None[:15], "acks"},
		{"test_pkt-truncated-rsid", vecControlTruncated, "remote session id"},
		{"ack-without-acks", []byte{0x28, 1, 2, 3, 4, 5, 6, 7, 8, 0}, "no acks"},
		{"ack-trailing", ackWithTrailer, "trailing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseControlPlain(tc.in)
			if err == nil {
				t.Fatal("parse succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestControlRoundTrip(t *testing.T) {
	sid := SessionID{1, 2, 3, 4, 5, 6, 7, 8}
	rsid := SessionID{9, 10, 11, 12, 13, 14, 15, 16}
	tests := []struct {
		name string
		p    ControlPacket
	}{
		{"reset", ControlPacket{Opcode: OpHardResetClientV2, SessionID: sid}},
		{"reset-v3-key7", ControlPacket{Opcode: OpHardResetClientV3, KeyID: 7, SessionID: sid, MessageID: 0}},
		{"server-reset-tlv", ControlPacket{Opcode: OpHardResetServerV2, SessionID: sid, Acks: []uint32{0}, RemoteSessionID: rsid, Payload: []byte{0, 1, 0, 2, 0, 1}}},
		{"control", ControlPacket{Opcode: OpControlV1, KeyID: 1, SessionID: sid, Acks: []uint32{1, 2, 3, 4}, RemoteSessionID: rsid, MessageID: 0xdeadbeef, Payload: bytes.Repeat([]byte{0x17}, 1250)}},
		{"ack-8", ControlPacket{Opcode: OpAckV1, SessionID: sid, Acks: []uint32{0, 1, 2, 3, 4, 5, 6, 0xffffffff}, RemoteSessionID: rsid}},
		{"soft-reset", ControlPacket{Opcode: OpSoftResetV1, KeyID: 2, SessionID: sid, MessageID: 7}},
		{"wkc", ControlPacket{Opcode: OpControlWKCV1, SessionID: sid, Acks: []uint32{0}, RemoteSessionID: rsid, MessageID: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc := tc.p.AppendPlain([]byte("prefix"))
			if !bytes.HasPrefix(enc, []byte("prefix")) {
				t.Fatal("AppendPlain clobbered dst")
			}
			enc = enc[len("prefix"):]
			if len(enc) != 9+tc.p.BodyLen() {
				t.Errorf("encoded %d bytes, BodyLen says %d", len(enc), 9+tc.p.BodyLen())
			}
			got, err := ParseControlPlain(enc)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.p, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
			body := tc.p.AppendBody(nil)
			if !bytes.Equal(body, enc[9:]) {
				t.Error("AppendBody differs from the tail of AppendPlain")
			}
			got2, err := ParseControlBody(tc.p.Opcode, tc.p.KeyID, tc.p.SessionID, body)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.p, got2, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("ParseControlBody (-want +got)\n%s", d)
			}
		})
	}
}

func TestDecodeNoAlloc(t *testing.T) {
	if israce.Enabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	var p ControlPacket
	p.Acks = make([]uint32, 0, MaxAcks)
	allocs := testing.AllocsPerRun(100, func() {
		if err := p.Decode(vecAck123None); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Decode allocated %.1f times per run", allocs)
	}
}

func TestOpcode(t *testing.T) {
	tests := []struct {
		op      Opcode
		name    string
		control bool
		data    bool
	}{
		{2, "P_UNKNOWN(2)", false, false},
		{OpSoftResetV1, "P_CONTROL_SOFT_RESET_V1", true, false},
		{OpControlV1, "P_CONTROL_V1", true, false},
		{OpAckV1, "P_ACK_V1", true, false},
		{OpDataV1, "P_DATA_V1", false, true},
		{OpHardResetClientV2, "P_CONTROL_HARD_RESET_CLIENT_V2", true, false},
		{OpHardResetServerV2, "P_CONTROL_HARD_RESET_SERVER_V2", true, false},
		{OpDataV2, "P_DATA_V2", false, true},
		{OpHardResetClientV3, "P_CONTROL_HARD_RESET_CLIENT_V3", true, false},
		{OpControlWKCV1, "P_CONTROL_WKC_V1", true, false},
		{12, "P_UNKNOWN(12)", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.op.String() != tc.name || tc.op.IsControl() != tc.control || tc.op.IsData() != tc.data {
				t.Errorf("%d: got %s control=%v data=%v", uint8(tc.op), tc.op, tc.op.IsControl(), tc.op.IsData())
			}
			for key := uint8(0); key <= MaxKeyID; key++ {
				op, k, err := ParseHeader([]byte{Header(tc.op, key)})
				if (err == nil) != tc.op.Valid() {
					t.Fatalf("ParseHeader valid=%v, err=%v", tc.op.Valid(), err)
				}
				if err == nil && (op != tc.op || k != key) {
					t.Errorf("ParseHeader got %v/%d, want %v/%d", op, k, tc.op, key)
				}
			}
		})
	}
	if b := Header(OpHardResetClientV2, 0); b != 0x38 {
		t.Errorf("first client byte %#x, want 0x38", b)
	}
	if b := Header(OpHardResetClientV3, 0); b != 0x50 {
		t.Errorf("first V3 client byte %#x, want 0x50", b)
	}
}

func TestDataV2Header(t *testing.T) {
	tests := []struct {
		name   string
		keyID  uint8
		peerID uint32
		want   [4]byte
	}{
		{"none", 0, NoPeerID, [4]byte{0x48, 0xff, 0xff, 0xff}},
		{"zero", 0, 0, [4]byte{0x48, 0, 0, 0}},
		{"key7", 7, 0x123456, [4]byte{0x4f, 0x12, 0x34, 0x56}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := DataV2Header(tc.keyID, tc.peerID)
			if h != tc.want {
				t.Fatalf("got %x, want %x", h, tc.want)
			}
			k, p, err := ParseDataV2Header(h[:])
			if err != nil || k != tc.keyID || p != tc.peerID {
				t.Errorf("parse: %d %#x %v", k, p, err)
			}
		})
	}
	for _, bad := range [][]byte{nil, {0x48, 0, 0}, {0x30, 0, 0, 0}, {0x08, 0, 0, 0}} {
		if _, _, err := ParseDataV2Header(bad); err == nil {
			t.Errorf("ParseDataV2Header(%x) succeeded", bad)
		}
	}
}

func TestTCPFraming(t *testing.T) {
	var stream []byte
	pkts := [][]byte{{1}, bytes.Repeat([]byte{2}, 1500), bytes.Repeat([]byte{3}, MaxTCPFrame)}
	for _, p := range pkts {
		stream = AppendTCPFrame(stream, p)
	}
	if got := AppendTCPFrame(stream, nil); len(got) != len(stream) {
		t.Error("AppendTCPFrame framed an empty packet")
	}
	if _, err := TryAppendTCPFrame(nil, make([]byte, MaxTCPFrame+1)); err == nil {
		t.Error("TryAppendTCPFrame accepted an oversize packet")
	}
	if !bytes.Equal(stream[:3], []byte{0, 1, 1}) {
		t.Errorf("first frame %x", stream[:3])
	}

	t.Run("split", func(t *testing.T) {
		rest := stream
		for i, want := range pkts {
			// Every proper prefix of a frame must ask for more data.
			for cut := 0; cut < 2+len(want); cut += 1 + cut/3 {
				if _, _, ok, err := SplitTCPFrame(rest[:cut]); ok || err != nil {
					t.Fatalf("frame %d cut at %d: ok=%v err=%v", i, cut, ok, err)
				}
			}
			pkt, r, ok, err := SplitTCPFrame(rest)
			if !ok || err != nil || !bytes.Equal(pkt, want) {
				t.Fatalf("frame %d: ok=%v err=%v len=%d", i, ok, err, len(pkt))
			}
			rest = r
		}
		if len(rest) != 0 {
			t.Errorf("%d bytes left", len(rest))
		}
		if _, _, _, err := SplitTCPFrame([]byte{0, 0, 1}); err == nil {
			t.Error("zero-length frame accepted")
		}
	})

	t.Run("reader", func(t *testing.T) {
		r := NewTCPReader(bytes.NewReader(stream))
		for i, want := range pkts {
			got, err := r.ReadPacket()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("packet %d: %v", i, err)
			}
		}
		if _, err := r.ReadPacket(); err != io.EOF {
			t.Errorf("at end: %v, want io.EOF", err)
		}
		r = NewTCPReader(bytes.NewReader(stream[:100]))
		r.ReadPacket()
		if _, err := r.ReadPacket(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("mid-frame: %v, want io.ErrUnexpectedEOF", err)
		}
		r = NewTCPReader(bytes.NewReader([]byte{0, 0}))
		if _, err := r.ReadPacket(); err == nil {
			t.Error("zero-length frame accepted")
		}
		r = NewTCPReader(bytes.NewReader(stream))
		if a := testing.AllocsPerRun(1, func() { r.ReadPacket() }); a != 0 && !israce.Enabled {
			t.Errorf("ReadPacket allocated %.0f times", a)
		}
	})
}

func FuzzParseControlPlain(f *testing.F) {
	for _, v := range [][]byte{vecResetV2None, vecControlWithAck, vecAckNone, vecAck123None, vecControlTruncated} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseControlPlain(b)
		if err != nil {
			return
		}
		if len(p.Acks) > MaxAcks {
			t.Fatalf("accepted %d acks", len(p.Acks))
		}
		// Encoding is canonical: a packet that parses re-encodes to the
		// same bytes, except that an empty payload and a nil one coincide.
		if enc := p.AppendPlain(nil); !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded\n got %x\nwant %x", enc, b)
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{0x38})
	f.Add([]byte{0x48, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		op, key, err := ParseHeader(b)
		if err != nil {
			return
		}
		if !op.Valid() || key > MaxKeyID || Header(op, key) != b[0] {
			t.Fatalf("inconsistent header %v/%d from %#x", op, key, b[0])
		}
		if k, p, err := ParseDataV2Header(b); err == nil {
			if h := DataV2Header(k, p); !bytes.Equal(h[:], b[:4]) {
				t.Fatalf("data header round trip %x != %x", h, b[:4])
			}
		}
	})
}

func FuzzSplitTCPFrame(f *testing.F) {
	f.Add(AppendTCPFrame(nil, vecResetV2None))
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		pkt, rest, ok, err := SplitTCPFrame(b)
		if err != nil || !ok {
			if ok {
				t.Fatal("ok with error")
			}
			return
		}
		if len(pkt) == 0 || 2+len(pkt)+len(rest) != len(b) || int(binary.BigEndian.Uint16(b)) != len(pkt) {
			t.Fatalf("bad split: pkt %d rest %d of %d", len(pkt), len(rest), len(b))
		}
	})
}

// FuzzTCPReader reads an arbitrary TCP stream frame by frame; each packet must be the one
// SplitTCPFrame takes off the same bytes, and the reader must stop at the first bad frame.
func FuzzTCPReader(f *testing.F) {
	f.Add(AppendTCPFrame(AppendTCPFrame(nil, vecResetV2None), []byte{1}))
	f.Add([]byte{0, 0, 0, 1, 9})
	f.Add([]byte{0, 5, 1, 2})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewTCPReader(bytes.NewReader(b))
		rest := b
		for range len(b) + 1 {
			pkt, err := r.ReadPacket()
			want, next, ok, splitErr := SplitTCPFrame(rest)
			if err != nil {
				switch {
				case len(rest) == 0:
					if err != io.EOF {
						t.Fatalf("end of stream: %v, want io.EOF", err)
					}
				case splitErr == nil && ok:
					t.Fatalf("reader failed (%v) where SplitTCPFrame took %d bytes", err, len(want))
				case splitErr == nil && len(rest) > 1 && !errors.Is(err, io.ErrUnexpectedEOF):
					t.Fatalf("frame cut short: %v, want io.ErrUnexpectedEOF", err)
				}
				return
			}
			if !ok || !bytes.Equal(pkt, want) {
				t.Fatalf("reader gave %x, SplitTCPFrame %x (ok %v, %v)", pkt, want, ok, splitErr)
			}
			rest = next
		}
		t.Fatal("reader returned more packets than the stream has bytes")
	})
}
