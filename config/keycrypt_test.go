package config

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEncryptedKeys decrypts the key formats OpenSSL writes, with the passphrase from askpass
// or from the caller, and checks what --print sends the daemon: the plain key, no askpass.
func TestEncryptedKeys(t *testing.T) {
	plain, _, err := parseKey([]byte(readKey(t, "client.key")))
	if err != nil {
		t.Fatal(err)
	}
	certKey := strings.Replace(base, "auth-user-pass\n", "", 1) + "cert client.crt\n"
	for _, tc := range []struct {
		name, extra string
		ask         string // the caller's passphrase ("" = no caller)
		err         string
	}{
		{"PKCS#8 PBKDF2 AES-256 with askpass", "key client-pkcs8-enc.key\naskpass askpass.txt\n", "", ""},
		{"askpass before the key", "askpass askpass.txt\nkey client-pkcs8-enc.key\n", "", ""},
		{"PKCS#8 scrypt asked", "key client-scrypt-enc.key\n", "secret", ""},
		{"legacy PEM asked", "key client-legacy-enc.key\naskpass\n", "secret", ""},
		{"inline legacy PEM", "<key>\n" + readKey(t, "client-legacy-enc.key") + "</key>\naskpass askpass.txt\n", "", ""},
		{"wrong passphrase", "key client-pkcs8-enc.key\n", "nope", "private key client-pkcs8-enc.key: wrong passphrase"},
		{"wrong legacy passphrase", "key client-legacy-enc.key\n", "nope", "private key client-legacy-enc.key: wrong passphrase"},
		{"no passphrase", "key client-pkcs8-enc.key\n", "", "private key client-pkcs8-enc.key is encrypted and there is no passphrase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pass Passphrase
			asked := ""
			if tc.ask != "" {
				pass = func(what string) ([]byte, error) { asked = what; return []byte(tc.ask), nil }
			}
			c, _, err := parse("test.conf", []byte(certKey+tc.extra), FSOpener(material(t)), "", pass)
			if tc.err != "" {
				if err == nil || !strings.Contains(errText(err), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(errText(err))
			}
			if !plain.(interface{ Equal(crypto.PrivateKey) bool }).Equal(c.Cert.PrivateKey) {
				t.Error("decrypted key differs from the plain one")
			}
			if tc.ask != "" && !strings.HasPrefix(asked, "private key ") {
				t.Errorf("prompt named %q", asked)
			}
			out := c.Format()
			if strings.Contains(string(out), "ENCRYPTED") || strings.Contains(string(out), "askpass") {
				t.Errorf("printed profile carries the encrypted key or askpass:\n%s", out)
			}
			checkFixpoint(t, c)
		})
	}
}

func TestEncryptedPKCS12(t *testing.T) {
	text := strings.Replace(base, "auth-user-pass\n", "", 1) + "pkcs12 client-pw.p12\n"
	c, _, err := parse("test.conf", []byte(text), FSOpener(material(t)), "", func(string) ([]byte, error) { return []byte("secret"), nil })
	if err != nil {
		t.Fatal(errText(err))
	}
	if c.Cert == nil {
		t.Fatal("no certificate from the bundle")
	}
	checkFixpoint(t, c)
	_, _, err = parse("test.conf", []byte(text), FSOpener(material(t)), "", func(string) ([]byte, error) { return []byte("wrong"), nil })
	if err == nil || !strings.Contains(errText(err), "PKCS#12 bundle client-pw.p12: wrong passphrase") {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestLoadWithPassphrase(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"ca.crt", "client.crt", "client-pkcs8-enc.key"} {
		data, err := os.ReadFile(filepath.Join(keyDir, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "c.conf")
	if err := os.WriteFile(p, []byte(strings.Replace(base, "auth-user-pass\n", "", 1)+"cert client.crt\nkey client-pkcs8-enc.key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(p); err == nil {
		t.Fatal("Load decrypted without a passphrase")
	}
	c, _, err := LoadWith(p, LoadOptions{Passphrase: func(string) ([]byte, error) { return []byte("secret"), nil }})
	if err != nil {
		t.Fatal(errText(err))
	}
	// What ovpnctl up sends parses in the daemon without any passphrase.
	if _, _, err := ParseInline("daemon", c.Format()); err != nil {
		t.Fatal(errText(err))
	}
}

// TestKeyDerivationBounds checks that a file cannot demand unbounded key-derivation work.
func TestKeyDerivationBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		kdf  any
		oid  asn1.ObjectIdentifier
		want string
	}{
		{"pbkdf2 iterations", pbkdf2Params{Salt: []byte("saltsalt"), Iter: maxPBKDF2Iterations + 1}, oidPBKDF2, "iteration count"},
		{"scrypt memory", scryptParams{Salt: []byte("s"), N: 1 << 20, R: 8, P: 1}, oidScrypt, "exceed the bounds"},
		{"scrypt work", scryptParams{Salt: []byte("s"), N: 1 << 14, R: 8, P: 1 << 10}, oidScrypt, "exceed the bounds"},
		{"scrypt N not a power of two", scryptParams{Salt: []byte("s"), N: 1000, R: 8, P: 1}, oidScrypt, "exceed the bounds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der := encryptedPKCS8(t, tc.oid, tc.kdf)
			_, err := decryptPKCS8(der, []byte("x"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// encryptedPKCS8 builds an EncryptedPrivateKeyInfo with the given key derivation and
// AES-256-CBC over junk.
func encryptedPKCS8(t testing.TB, kdfOID asn1.ObjectIdentifier, kdf any) []byte {
	kdfParams, err := asn1.Marshal(kdf)
	if err != nil {
		t.Fatal(err)
	}
	iv, _ := asn1.Marshal(make([]byte, 16))
	params, err := asn1.Marshal(struct {
		KDF, Enc struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.RawValue
		}
	}{
		KDF: struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.RawValue
		}{kdfOID, asn1.RawValue{FullBytes: kdfParams}},
		Enc: struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.RawValue
		}{oidAES256CBC, asn1.RawValue{FullBytes: iv}},
	})
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(struct {
		Algo struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.RawValue
		}
		Data []byte
	}{struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue
	}{oidPBES2, asn1.RawValue{FullBytes: params}}, make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// FuzzDecryptKey feeds arbitrary PEM key blocks to parseKeyWith with a passphrase: no panic, a
// bounded amount of work, and anything that decrypts is a usable key.
func FuzzDecryptKey(f *testing.F) {
	for _, n := range []string{"client-pkcs8-enc.key", "client-scrypt-enc.key", "client-legacy-enc.key", "client.key"} {
		f.Add([]byte(readKey(f, n)))
	}
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: encryptedPKCS8(f, oidPBKDF2, pbkdf2Params{Salt: []byte("s"), Iter: 1})}))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, norm, err := parseKeyWith(data, []byte("secret"))
		if err != nil {
			if errors.Is(err, errKeyEncrypted) {
				t.Fatal("asked for a passphrase that was given")
			}
			return
		}
		b, _ := pem.Decode(norm)
		if b == nil {
			t.Fatal("normalized key is not PEM")
		}
		k2, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil || !k.(interface{ Equal(crypto.PrivateKey) bool }).Equal(k2) {
			t.Fatalf("normalized key does not round-trip: %v", err)
		}
	})
}

// BenchmarkWorstCaseKeyDerivation measures the most key-derivation work an encrypted key file
// can make ovpnd do before the passphrase is even checked: PBKDF2-HMAC-SHA1 at the iteration
// bound, and scrypt at the memory and work bounds.
func BenchmarkWorstCaseKeyDerivation(b *testing.B) {
	for _, bc := range []struct {
		name string
		oid  asn1.ObjectIdentifier
		kdf  any
	}{
		{"pbkdf2-sha1-2M", oidPBKDF2, pbkdf2Params{Salt: []byte("saltsalt"), Iter: maxPBKDF2Iterations}},
		{"scrypt-64MiB", oidScrypt, scryptParams{Salt: []byte("s"), N: 1 << 16, R: 8, P: 1}},
		{"scrypt-max-work", oidScrypt, scryptParams{Salt: []byte("s"), N: 1 << 14, R: 8, P: 32}},
	} {
		der := encryptedPKCS8(b, bc.oid, bc.kdf)
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := decryptPKCS8(der, []byte("x")); !errors.Is(err, errWrongPassphrase) {
					b.Fatalf("err = %v, want a wrong passphrase after the full derivation", err)
				}
			}
		})
	}
}
