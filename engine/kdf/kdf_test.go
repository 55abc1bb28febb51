package kdf

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

func TestPRF(t *testing.T) {
	tests := []struct {
		name          string
		secret, label string
		seed          []byte
		want          string
	}{
		{
			// OpenVPN tests/unit_tests/openvpn/test_crypto.c, crypto_test_tls_prf
			// (OpenVPN passes label and seed as one buffer).
			name:   "openvpn test_crypto vector",
			secret: "Lorem ipsum dolor sit amet, consectetur adipisici elit, sed eiusmod tempor incidunt ut labore et dolore magna aliqua.",
			label:  "Quis aute iure reprehenderit in voluptate velit esse cillum dolore",
			want:   "d98c8518c85e946927916acfc2d592fbb1567e4b4b1459e6a904ac2ddab72d67",
		},
		{
			// Same vector with the buffer split into label and seed: the PRF
			// only sees their concatenation.
			name:   "label and seed split",
			secret: "Lorem ipsum dolor sit amet, consectetur adipisici elit, sed eiusmod tempor incidunt ut labore et dolore magna aliqua.",
			label:  "Quis aute iure ",
			seed:   []byte("reprehenderit in voluptate velit esse cillum dolore"),
			want:   "d98c8518c85e946927916acfc2d592fbb1567e4b4b1459e6a904ac2ddab72d67",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := mustHex(t, tt.want)
			out := make([]byte, len(want))
			PRF(out, []byte(tt.secret), []byte(tt.label), tt.seed)
			if !bytes.Equal(out, want) {
				t.Errorf("PRF = %x, want %x", out, want)
			}
		})
	}
}

func TestPRFOverwritesOutput(t *testing.T) {
	a := make([]byte, 40)
	b := bytes.Repeat([]byte{0xAA}, 40)
	PRF(a, []byte("secret"), []byte("label"), []byte("seed"))
	PRF(b, []byte("secret"), []byte("label"), []byte("seed"))
	if !bytes.Equal(a, b) {
		t.Fatalf("PRF output depends on prior buffer contents: %x vs %x", a, b)
	}
}

func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// The expected block was computed independently with OpenSSL 3.0.19:
//
//	openssl kdf -keylen 48 -kdfopt digest:MD5-SHA1 -kdfopt hexsecret:<preMaster> \
//	  -kdfopt hexseed:<"OpenVPN master secret"‖cr1‖sr1> TLS1-PRF
//	openssl kdf -keylen 256 -kdfopt digest:MD5-SHA1 -kdfopt hexsecret:<master> \
//	  -kdfopt hexseed:<"OpenVPN key expansion"‖cr2‖sr2‖csid‖ssid> TLS1-PRF
func TestExpandPRF(t *testing.T) {
	want := mustHex(t, "12c31d3b9961256b4f81ab8f11c7da51f8e155505b7a4f47d7ee807e662789d219fa3dcdce1e223901f13e3dc92f6006aeb29cac4662b11daa9ee15447ba6f618fcdbbe6ee430634bdfa53af4a61d03508fa944b1155e38d0995a556c785861ef1fcd9853e0b190babc9188f97a5b3a2480eb1aecba0831f2f718b6f5f253ffea1e26a10ebb8b6c177e0e9716dc15532fdec2114518baa143c752884b934b872ca23f1d78f0e7f94be7494ae00d2f46a0b4b115d069668ee4b2b9319456e974b2b98d4330c885ea05b721238c22beaa76d155fd171ab3c34d90b73800e40c77946521b8a659e82d40a6f82ccc9428bb7eb7e2c7b40493cd6b1f6f6e49267ab8e")
	csid := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	ssid := [8]byte{0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8}
	kb := ExpandPRF(seq(0, 48), seq(0x40, 32), seq(0x80, 32), seq(0xA0, 32), seq(0xC0, 32), csid, ssid)
	if !bytes.Equal(kb[:], want) {
		t.Fatalf("ExpandPRF =\n%x\nwant\n%x", kb[:], want)
	}

	// Swapping the session ids must change the block: they are part of the seed.
	swapped := ExpandPRF(seq(0, 48), seq(0x40, 32), seq(0x80, 32), seq(0xA0, 32), seq(0xC0, 32), ssid, csid)
	if swapped == kb {
		t.Fatal("session ids do not influence the key block")
	}
}

func TestKeyBlockSlots(t *testing.T) {
	var kb KeyBlock
	for i := range kb {
		kb[i] = byte(i)
	}
	tests := []struct {
		name  string
		got   []byte
		first byte
	}{
		{"cipher 0", kb.Cipher(0), 0},
		{"hmac 0", kb.HMAC(0), 64},
		{"cipher 1", kb.Cipher(1), 128},
		{"hmac 1", kb.HMAC(1), 192},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.got) != 64 || cap(tt.got) != 64 {
				t.Fatalf("len/cap = %d/%d, want 64/64", len(tt.got), cap(tt.got))
			}
			if !bytes.Equal(tt.got, seq(tt.first, 64)) {
				t.Errorf("slot = %x, want bytes starting at %d", tt.got, tt.first)
			}
		})
	}
	if kb.Cipher(2) != nil || kb.HMAC(-1) != nil {
		t.Error("out-of-range direction should yield nil")
	}
}
