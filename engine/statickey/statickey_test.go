package statickey

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseStaticKeyGolden(t *testing.T) {
	k, err := ParseStaticKey([]byte(testPktStaticKey))
	if err != nil {
		t.Fatal(err)
	}
	// Slot starts, read off the hex lines of test_pkt.c's key (16 bytes a line).
	checks := []struct {
		name string
		got  []byte
		want string
	}{
		{"cipher0", k.Cipher[0][:16], "37268ea8f95d7f71f9fb8fc03770c460"},
		{"hmac0", k.HMAC[0][:16], "de63ebc64ec59d57ce5d04d5b62e68b5"},
		{"cipher1", k.Cipher[1][:16], "a0c1c489a036cf3a8964d8d289c1583b"},
		{"hmac1", k.HMAC[1][:16], "bb0f9ad13e9bbb4665974e6bc24b513c"},
		{"hmac1-end", k.HMAC[1][48:], "2b4126b999005ade802797b0eeb8b9e6"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if got := hex.EncodeToString(c.got); got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestParseStaticKeyVariants(t *testing.T) {
	want, err := ParseStaticKey([]byte(testPktStaticKey))
	if err != nil {
		t.Fatal(err)
	}
	body := testPktStaticKey[strings.Index(testPktStaticKey, "-----BEGIN"):strings.Index(testPktStaticKey, "</tls-auth>")]
	tests := []struct {
		name string
		in   string
	}{
		{"bare", body},
		{"crlf", strings.ReplaceAll(body, "\n", "\r\n")},
		{"capital-K", strings.ReplaceAll(body, "Static key", "Static Key")},
		{"genkey-comments", "#\n# 2048 bit OpenVPN static key\n#\n" + body},
		{"trailing-junk", body + "# trailing comment\nanything\n"},
		{"uppercase-hex", strings.Replace(body, "37268ea8f95d7f71f9fb8fc03770c460", "37268EA8F95D7F71F9FB8FC03770C460", 1)},
		{"spaces-and-tabs", strings.Replace(body, "37268ea8f95d7f71f9fb8fc03770c460", " 37 26 8e a8\tf95d7f71f9fb8fc03770c460 ", 1)},
		{"indented-markers", strings.Replace(body, "-----BEGIN", "  -----BEGIN", 1)},
		{"no-final-newline", strings.TrimSuffix(body, "\n")},
		{"one-long-line", strings.Replace(strings.Replace(body, "\n", "", 16), "V1-----", "V1-----\n", 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStaticKey([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if *got != *want {
				t.Error("key differs from golden parse")
			}
		})
	}
}

func TestParseStaticKeyErrors(t *testing.T) {
	body := testPktStaticKey[strings.Index(testPktStaticKey, "-----BEGIN"):strings.Index(testPktStaticKey, "</tls-auth>")]
	lines := strings.Split(body, "\n")
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"empty", "", "header"},
		{"no-header", strings.Join(lines[1:], "\n"), "header"},
		{"no-footer", strings.Join(lines[:17], "\n"), "footer"},
		{"bad-footer", strings.Join(lines[:17], "\n") + "\n-----END OpenVPN Static key V2-----\n", "line 18"},
		{"short", strings.Join(lines[:9], "\n") + "\n" + lines[17], "found 128 bytes"},
		{"long", strings.Join(lines[:17], "\n") + "\n00\n" + lines[17], "more than 256"},
		{"odd", strings.Join(lines[:16], "\n") + "\n2b4126b999005ade802797b0eeb8b9e\n" + lines[17], "odd number"},
		{"non-hex", strings.Replace(body, "37268ea8", "3726xea8", 1), "non-hex character 'x'"},
		{"comment-inside", strings.Replace(body, "37268ea8", "#37268ea8", 1), "line 2: non-hex"},
		{"unprintable", strings.Replace(body, "37268ea8", "3726\x00ea8", 1), "unprintable character 0x00"},
		{"oversize", strings.Repeat("#", maxKeyFile+1), "limit"},
		{"pem-base64", "-----BEGIN OpenVPN Static key V1-----\nAAB+\n-----END OpenVPN Static key V1-----\n", "non-hex character '+'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseStaticKey([]byte(tc.in))
			if err == nil {
				t.Fatal("parse succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "parsing static key: ") {
				t.Errorf("error %q lacks context", err)
			}
		})
	}
}

func TestStaticKeyRoundTrip(t *testing.T) {
	k, err := Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemText := k.EncodePEM()
	if !bytes.HasPrefix(pemText, []byte("#\n# 2048 bit OpenVPN static key\n#\n-----BEGIN OpenVPN Static key V1-----\n")) {
		t.Errorf("unexpected PEM start:\n%s", pemText)
	}
	if n := bytes.Count(pemText, []byte("\n")); n != 3+1+16+1 {
		t.Errorf("PEM has %d lines, want 21", n)
	}
	k2, err := ParseStaticKey(pemText)
	if err != nil {
		t.Fatal(err)
	}
	if *k2 != *k {
		t.Error("PEM round trip changed the key")
	}
	b := k.Bytes()
	k3, err := FromBytes(b[:])
	if err != nil {
		t.Fatal(err)
	}
	if *k3 != *k {
		t.Error("Bytes/FromBytes round trip changed the key")
	}
	if b[0] != k.Cipher[0][0] || b[64] != k.HMAC[0][0] || b[128] != k.Cipher[1][0] || b[192] != k.HMAC[1][0] {
		t.Error("Bytes does not follow OpenVPN's cipher0|hmac0|cipher1|hmac1 order")
	}
	for _, n := range []int{0, 128, 255, 257} {
		if _, err := FromBytes(make([]byte, n)); err == nil {
			t.Errorf("FromBytes accepted %d bytes", n)
		}
	}
}

func TestKeyXOR(t *testing.T) {
	a, _ := Generate(rand.Reader)
	b, _ := Generate(rand.Reader)
	x := a.XOR(b)
	back := x.XOR(b)
	if back != *a {
		t.Error("XOR is not an involution")
	}
	var zero Key
	if a.XOR(&zero) != *a {
		t.Error("XOR with zero changed the key")
	}
}

func TestTLSCryptV2Golden(t *testing.T) {
	sk, err := ParseTLSCryptV2Server([]byte(testV2ServerKey))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 64; i++ {
		if sk.Cipher[i] != byte(i) || sk.HMAC[i] != byte(64+i) {
			t.Fatalf("server key byte %d wrong", i)
		}
	}
	tests := []struct {
		name     string
		pem      string
		wantMeta func(t *testing.T, md []byte)
	}{
		{"timestamp", testV2ClientKey, func(t *testing.T, md []byte) {
			// OpenVPN's default metadata type; the unit test generated the
			// key with its clock at 0.
			if want := mustHex(t, "01 0000000000000000"); !bytes.Equal(md, want) {
				t.Errorf("metadata %x, want %x", md, want)
			}
		}},
		{"user", testV2ClientKeyMetadata, func(t *testing.T, md []byte) {
			// 0x00 (user) then base64-decoded "AABBCCDD".
			if want := mustHex(t, "00 000041 0820c3"); !bytes.Equal(md, want) {
				t.Errorf("metadata %x, want %x", md, want)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ck, err := ParseTLSCryptV2Client([]byte(tc.pem))
			if err != nil {
				t.Fatal(err)
			}
			b := ck.Key.Bytes()
			for i := range b {
				if b[i] != byte(i) {
					t.Fatalf("Kc byte %d = %#x, want %#x", i, b[i], byte(i))
				}
			}
			kc, md, err := sk.UnwrapClientKey(ck.WKc)
			if err != nil {
				t.Fatal(err)
			}
			if kc != ck.Key {
				t.Error("unwrapped Kc differs from the file's Kc")
			}
			tc.wantMeta(t, md)
			// Wrapping is deterministic, so re-wrapping reproduces OpenVPN's bytes.
			wkc, err := sk.WrapClientKey(kc, md, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(wkc, ck.WKc) {
				t.Errorf("re-wrapped WKc differs from OpenVPN's\n got %x\nwant %x", wkc, ck.WKc)
			}
			// And the PEM writer reproduces the file.
			if got := string(ck.EncodePEM()); got != tc.pem {
				t.Errorf("EncodePEM:\n%s\nwant:\n%s", got, tc.pem)
			}
		})
	}
	if got := string(sk.EncodePEM()); got != testV2ServerKey {
		t.Errorf("server EncodePEM:\n%s\nwant:\n%s", got, testV2ServerKey)
	}
}

func TestUnwrapClientKeyTamper(t *testing.T) {
	sk, _ := ParseTLSCryptV2Server([]byte(testV2ServerKey))
	ck, err := ParseTLSCryptV2Client([]byte(testV2ClientKeyMetadata))
	if err != nil {
		t.Fatal(err)
	}
	for i := range ck.WKc {
		w := bytes.Clone(ck.WKc)
		w[i] ^= 0x01
		if _, _, err := sk.UnwrapClientKey(w); err == nil {
			t.Fatalf("flipping byte %d was not detected", i)
		}
	}
	other, _ := GenerateTLSCryptV2Server(rand.Reader)
	if _, _, err := other.UnwrapClientKey(ck.WKc); !errors.Is(err, ErrWKcAuth) {
		t.Errorf("wrong server key: got %v, want ErrWKcAuth", err)
	}
}

func TestTLSCryptV2RoundTrip(t *testing.T) {
	sk, err := GenerateTLSCryptV2Server(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk2, err := ParseTLSCryptV2Server(sk.EncodePEM())
	if err != nil || *sk2 != *sk {
		t.Fatalf("server PEM round trip: %v", err)
	}
	maxUser := bytes.Repeat([]byte{0xab}, MaxMetadataLen-1)
	userMax, err := UserMetadata(maxUser)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		md   []byte
	}{
		{"empty", nil},
		{"timestamp", TimestampMetadata(time.Unix(1700000000, 0))},
		{"user-max", userMax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ck, err := sk.NewTLSCryptV2Client(tc.md, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if len(ck.WKc) != MinWKcLen+len(tc.md) {
				t.Errorf("WKc is %d bytes, want %d", len(ck.WKc), MinWKcLen+len(tc.md))
			}
			parsed, err := ParseTLSCryptV2Client(ck.EncodePEM())
			if err != nil {
				t.Fatal(err)
			}
			if parsed.Key != ck.Key || !bytes.Equal(parsed.WKc, ck.WKc) {
				t.Error("client PEM round trip changed the key")
			}
			kc, md, err := sk.UnwrapClientKey(parsed.WKc)
			if err != nil {
				t.Fatal(err)
			}
			if kc != ck.Key || !bytes.Equal(md, tc.md) {
				t.Error("unwrap did not return the wrapped key and metadata")
			}
		})
	}
	if _, err := UserMetadata(append(maxUser, 0)); err == nil {
		t.Error("UserMetadata accepted too much data")
	}
	if _, err := sk.WrapClientKey(Key{}, make([]byte, MaxMetadataLen+1), nil); err == nil {
		t.Error("WrapClientKey accepted too much metadata")
	}
}

func TestParseTLSCryptV2Errors(t *testing.T) {
	good, _ := ParseTLSCryptV2Client([]byte(testV2ClientKey))
	withWKc := func(f func(w []byte) []byte) string {
		c := *good
		c.WKc = f(bytes.Clone(good.WKc))
		return string(c.EncodePEM())
	}
	tests := []struct {
		name    string
		client  bool
		in      string
		wantErr string
	}{
		{"client-empty", true, "", "no PEM block"},
		{"client-wrong-type", true, testV2ServerKey, `this is a PEM "OpenVPN tls-crypt-v2 server key", not "OpenVPN tls-crypt-v2 client key"`},
		{"client-static-key", true, testPktStaticKey, `this is an "OpenVPN Static key V1" (a tls-auth or tls-crypt key), not an "OpenVPN tls-crypt-v2 client key"`},
		{"client-bad-length-field", true, withWKc(func(w []byte) []byte { w[len(w)-1]++; return w }), "length field"},
		{"client-truncated", true, withWKc(func(w []byte) []byte { return w[:MinWKcLen-1] }), "at least"},
		{"client-too-long", true, withWKc(func(w []byte) []byte {
			w = append(w[:len(w)-2], make([]byte, MaxWKcLen)...)
			return binary.BigEndian.AppendUint16(w, uint16(len(w)+2))
		}), "maximum 1024"},
		{"server-empty", false, "", "no PEM block"},
		{"server-wrong-type", false, testV2ClientKey, `this is a PEM "OpenVPN tls-crypt-v2 client key", not "OpenVPN tls-crypt-v2 server key"`},
		{"server-short", false, string(pemBlock(TLSCryptV2ServerPEMType, make([]byte, 127))), "127 bytes"},
		{"server-long", false, string(pemBlock(TLSCryptV2ServerPEMType, make([]byte, 129))), "129 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.client {
				_, err = ParseTLSCryptV2Client([]byte(tc.in))
			} else {
				_, err = ParseTLSCryptV2Server([]byte(tc.in))
			}
			if err == nil {
				t.Fatal("parse succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestTLSCryptV2PEMVariants(t *testing.T) {
	want, _ := ParseTLSCryptV2Client([]byte(testV2ClientKey))
	tests := []struct {
		name string
		in   string
	}{
		{"crlf", strings.ReplaceAll(testV2ClientKey, "\n", "\r\n")},
		{"inline-tags", "<tls-crypt-v2>\n" + testV2ClientKey + "</tls-crypt-v2>\n"},
		{"after-other-block", testV2ServerKey + testV2ClientKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTLSCryptV2Client([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got.Key != want.Key || !bytes.Equal(got.WKc, want.WKc) {
				t.Error("parsed key differs")
			}
		})
	}
}

func FuzzParseStaticKey(f *testing.F) {
	f.Add([]byte(testPktStaticKey))
	f.Add([]byte("-----BEGIN OpenVPN Static key V1-----\n00\n-----END OpenVPN Static key V1-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseStaticKey(data)
		if err != nil {
			return
		}
		k2, err := ParseStaticKey(k.EncodePEM())
		if err != nil || *k2 != *k {
			t.Fatalf("re-encoded key does not parse back: %v", err)
		}
	})
}

func FuzzParseTLSCryptV2Client(f *testing.F) {
	f.Add([]byte(testV2ClientKey))
	f.Add([]byte(testV2ClientKeyMetadata))
	f.Add([]byte(testV2ServerKey))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseTLSCryptV2Client(data)
		if err != nil {
			return
		}
		if len(k.WKc) < MinWKcLen || len(k.WKc) > MaxWKcLen {
			t.Fatalf("accepted WKc of %d bytes", len(k.WKc))
		}
		k2, err := ParseTLSCryptV2Client(k.EncodePEM())
		if err != nil || k2.Key != k.Key || !bytes.Equal(k2.WKc, k.WKc) {
			t.Fatalf("re-encoded key does not parse back: %v", err)
		}
	})
}

func FuzzParseTLSCryptV2Server(f *testing.F) {
	f.Add([]byte(testV2ServerKey))
	f.Add([]byte(testV2ClientKey))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseTLSCryptV2Server(data)
		if err != nil {
			return
		}
		k2, err := ParseTLSCryptV2Server(k.EncodePEM())
		if err != nil || *k2 != *k {
			t.Fatalf("re-encoded key does not parse back: %v", err)
		}
	})
}

func FuzzUnwrapClientKey(f *testing.F) {
	sk, err := ParseTLSCryptV2Server([]byte(testV2ServerKey))
	if err != nil {
		f.Fatal(err)
	}
	ck, _ := ParseTLSCryptV2Client([]byte(testV2ClientKey))
	f.Add(ck.WKc)
	f.Add([]byte{0x01, 0x22})
	f.Fuzz(func(t *testing.T, wkc []byte) {
		kc, md, err := sk.UnwrapClientKey(wkc)
		if err != nil {
			return
		}
		again, err := sk.WrapClientKey(kc, md, nil)
		if err != nil || !bytes.Equal(again, wkc) {
			t.Fatalf("authentic WKc does not re-wrap to itself: %v", err)
		}
	})
}

func pemBlock(typ string, b []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})
}
