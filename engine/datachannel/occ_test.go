package datachannel

import (
	"bytes"
	"testing"
)

func TestIsPing(t *testing.T) {
	tests := []struct {
		name string
		p    []byte
		want bool
	}{
		{"ping", PingPayload[:], true},
		{"ping plus byte", append(PingPayload[:], 0), false},
		{"short", PingPayload[:15], false},
		{"flipped", append([]byte{0x2b}, PingPayload[1:]...), false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsPing(tt.p); got != tt.want {
				t.Errorf("IsPing = %v", got)
			}
		})
	}
}

func TestParseOCC(t *testing.T) {
	tests := []struct {
		name   string
		p      []byte
		op     uint8
		body   []byte
		wantOK bool
	}{
		{"exit", AppendOCCExit(nil), OCCExit, []byte{}, true},
		{"reply", append(append(OCCMagic[:], OCCReply), "V4,dev-type tun\x00"...), OCCReply, []byte("V4,dev-type tun\x00"), true},
		{"mtu reply", append(OCCMagic[:], OCCMTUReply, 5, 0xdc, 5, 0xdc), OCCMTUReply, []byte{5, 0xdc, 5, 0xdc}, true},
		{"magic only", OCCMagic[:], 0, nil, false},
		{"ping", PingPayload[:], 0, nil, false},
		{"bad magic", append(append([]byte{0}, OCCMagic[1:]...), OCCExit), 0, nil, false},
		{"empty", nil, 0, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, body, ok := ParseOCC(tt.p)
			if ok != tt.wantOK || op != tt.op || !bytes.Equal(body, tt.body) {
				t.Errorf("ParseOCC = %d %x %v, want %d %x %v", op, body, ok, tt.op, tt.body, tt.wantOK)
			}
		})
	}
}

func TestAppendOCCExit(t *testing.T) {
	prefix := []byte{1, 2}
	got := AppendOCCExit(prefix)
	want := []byte{1, 2, 0x28, 0x7f, 0x34, 0x6b, 0xd4, 0xef, 0x7a, 0x81, 0x2d, 0x56, 0xb8, 0xd3, 0xaf, 0xc5, 0x45, 0x9c, 6}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendOCCExit = %x", got)
	}
}
