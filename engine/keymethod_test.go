package engine

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/ovpnd/ovpnd/engine/datachannel"
)

func TestBuildClientRecord(t *testing.T) {
	var src clientKeySource
	for i := range src.preMaster {
		src.preMaster[i] = 1
	}
	for i := range src.random1 {
		src.random1[i], src.random2[i] = 2, 3
	}
	for _, tc := range []struct {
		name       string
		auth       bool
		user, pass string
		tail       []byte // after the options string
	}{
		{"no auth", false, "", "", []byte{0, 0, 0, 0, 0, 3, 'I', '\n', 0}},
		{"auth", true, "al", "pw", []byte{0, 3, 'a', 'l', 0, 0, 3, 'p', 'w', 0, 0, 3, 'I', '\n', 0}},
		{"auth empty password", true, "al", "", []byte{0, 3, 'a', 'l', 0, 0, 1, 0, 0, 3, 'I', '\n', 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := buildClientRecord(&src, "V4", tc.auth, tc.user, tc.pass, "I\n")
			want := []byte{0, 0, 0, 0, 2}
			want = append(want, bytes.Repeat([]byte{1}, 48)...)
			want = append(want, bytes.Repeat([]byte{2}, 32)...)
			want = append(want, bytes.Repeat([]byte{3}, 32)...)
			want = append(want, 0, 3, 'V', '4', 0)
			want = append(want, tc.tail...)
			if !bytes.Equal(got, want) {
				t.Errorf("record\n got %x\nwant %x", got, want)
			}
		})
	}
}

func TestParseServerRecord(t *testing.T) {
	base := func(method byte) []byte {
		b := []byte{0, 0, 0, 0, method}
		for i := 0; i < 64; i++ {
			b = append(b, byte(i))
		}
		return b
	}
	full := appendString(base(2), "V4,cipher AES-128-GCM")
	full = append(full, 0, 0, 0, 0)
	full = appendString(full, "IV_X=1\n")
	long := appendString(base(2), string(bytes.Repeat([]byte{'a'}, maxOptionsLen)))
	for _, tc := range []struct {
		name     string
		in       []byte
		options  string
		peerInfo string
		ok       bool
	}{
		{"full", full, "V4,cipher AES-128-GCM", "IV_X=1\n", true},
		{"options only", appendString(base(2), "V4"), "V4", "", true},
		{"key method flags", appendString(base(0x12), "V4"), "V4", "", true},
		{"empty options", append(base(2), 0, 0), "", "", true},
		{"key method 1", appendString(base(1), "V4"), "", "", false},
		{"nonzero prefix", append([]byte{1}, appendString(base(2), "V4")[1:]...), "", "", false},
		{"truncated randoms", base(2)[:40], "", "", false},
		{"no options", base(2), "", "", false},
		{"options overrun", append(base(2), 0, 9, 'V'), "", "", false},
		{"options too long", long, "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseServerRecord(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if r.options != tc.options || r.peerInfo != tc.peerInfo {
				t.Errorf("got options %q peer-info %q", r.options, r.peerInfo)
			}
			if r.random1[1] != 1 || r.random2[0] != 32 {
				t.Errorf("randoms misread: %x %x", r.random1[:2], r.random2[:2])
			}
		})
	}
}

func TestOptionsString(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"udp gcm", Config{DataCiphers: []string{"AES-256-GCM"}, Auth: "SHA1", TunMTU: 1500},
			"V4,dev-type tun,link-mtu 1521,tun-mtu 1500,proto UDPv4,cipher AES-256-GCM,auth [null-digest],keysize 256,key-method 2,tls-client"},
		{"tcp6 cbc tls-auth lzo", Config{DataCiphers: []string{"AES-256-GCM"}, DataCiphersFallback: "AES-128-CBC", Auth: "SHA256",
			TunMTU: 1400, Proto: ProtoTCP, IPv6: true, Wrap: WrapTLSAuth, KeyDirection: 1, Compression: datachannel.CompLZO},
			"V4,dev-type tun,link-mtu 1472,tun-mtu 1400,proto TCPv6_CLIENT,comp-lzo,keydir 1,cipher AES-128-CBC,auth SHA256,keysize 128,tls-auth,key-method 2,tls-client"},
		{"cipher none", Config{DataCiphers: []string{"none"}, Auth: "SHA1", TunMTU: 1500},
			"V4,dev-type tun,link-mtu 1525,tun-mtu 1500,proto UDPv4,cipher [null-cipher],auth SHA1,key-method 2,tls-client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.optionsString(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestNextKeyID(t *testing.T) {
	id := uint8(0)
	var got []uint8
	for i := 0; i < 9; i++ {
		id = nextKeyID(id)
		got = append(got, id)
	}
	if !bytes.Equal(got, []byte{1, 2, 3, 4, 5, 6, 7, 1, 2}) {
		t.Errorf("key ids %v", got)
	}
}

func TestReadStringStripsNUL(t *testing.T) {
	b := binary.BigEndian.AppendUint16(nil, 4)
	b = append(b, 'a', 0, 'b', 0, 'z')
	s, rest, err := readString(b, 10)
	if err != nil || s != "a" || !bytes.Equal(rest, []byte{'z'}) {
		t.Errorf("readString = %q, %q, %v", s, rest, err)
	}
}
