package config

import (
	"bytes"
	"crypto"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary profiles to ParseInline. Nothing may panic, and whatever parses
// must print to a fixpoint.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/valid/*")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(base))
	f.Add([]byte("client\ndev tun\n<connection>\nremote a 1 tcp\n</connection>\npeer-fingerprint " +
		"AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\nauth-user-pass\n"))
	f.Add([]byte("\xef\xbb\xbfclient\r\ndev tun\r\nremote 'a b' \"c\\\"\"\r\n<ca>\r\nx\r\n</ca>\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _, err := ParseInline("fuzz", data)
		if err != nil {
			for _, e := range Errors(err) {
				if _, ok := e.(*Error); !ok {
					t.Fatalf("error %v is %T", e, e)
				}
			}
			return
		}
		out := c.Format()
		c2, _, err := ParseInline("printed", out)
		if err != nil {
			t.Fatalf("printed profile does not parse: %v\n%s", err, out)
		}
		if out2 := c2.Format(); !bytes.Equal(out, out2) {
			t.Fatalf("not a fixpoint:\n%s\n---\n%s", out, out2)
		}
	})
}

// FuzzParseMaterial feeds arbitrary bytes to the readers of the files and inline blocks a
// profile names (certificates, keys, fingerprints, auth-user-pass). The daemon parses profiles
// sent over D-Bus, so none of them may panic, and what they accept must be self-consistent.
func FuzzParseMaterial(f *testing.F) {
	for _, n := range []string{"ca.crt", "client.crt", "client.key", "rsa-client.key", "user.txt"} {
		if data, err := os.ReadFile(filepath.Join(keyDir, n)); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("# c\n" + strings.Repeat("ab:", 31) + "AB\n; d\n"))
	f.Add([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte("user\r\n\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if certs, err := parseCerts(data); err == nil {
			if len(certs) == 0 {
				t.Fatal("no certificates without an error")
			}
			if again, err := parseCerts(encodeCerts(certs)); err != nil || len(again) != len(certs) {
				t.Fatalf("re-encoded certificates: %d, %v", len(again), err)
			}
		}
		if k, norm, err := parseKey(data); err == nil {
			k2, norm2, err := parseKey(norm)
			if err != nil {
				t.Fatalf("normalized key does not parse: %v", err)
			}
			if !bytes.Equal(norm, norm2) {
				t.Fatal("normalized key is not a fixpoint")
			}
			if pub, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(k2.Public()) {
				t.Fatal("normalized key is a different key")
			}
		}
		if fps, err := parseFingerprintBlock(data); err == nil {
			if len(fps) == 0 {
				t.Fatal("no fingerprints without an error")
			}
			for _, fp := range fps {
				if back, err := parseFingerprint(formatFingerprint(fp)); err != nil || back != fp {
					t.Fatalf("fingerprint round trip: %x %v", back, err)
				}
			}
		}
		if a, err := parseUserPass(data); err == nil {
			if a.Username == "" || strings.ContainsAny(a.Username+a.Password, "\n") {
				t.Fatalf("accepted %q as %q/%q", data, a.Username, a.Password)
			}
			if a.PasswordMissing != (a.Password == "") {
				t.Fatalf("PasswordMissing %v with password %q", a.PasswordMissing, a.Password)
			}
		}
	})
}

// FuzzParsePKCS12 feeds arbitrary bundles (raw and as inline base64) to the PKCS#12 reader,
// which must refuse rather than hang on bundles demanding unbounded key-derivation work.
func FuzzParsePKCS12(f *testing.F) {
	for _, n := range []string{"client.p12", "client-pw.p12"} {
		if data, err := os.ReadFile(filepath.Join(keyDir, n)); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte{0x30, 0x80, 0x04, 0x00, 0x02, 0x04, 0x7f, 0xff, 0xff, 0xff, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		if der, err := decodeInlinePKCS12(data); err == nil {
			_ = checkPKCS12Work(der)
		}
		k, cert, _, err := parsePKCS12(data)
		if err != nil {
			return
		}
		if k == nil || cert == nil || !keyMatches(cert, k) {
			t.Fatal("accepted a bundle whose key does not match its certificate")
		}
	})
}
