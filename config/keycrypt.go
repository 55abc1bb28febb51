package config

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/scrypt"
)

// Passphrase returns the passphrase of an encrypted private key or PKCS#12 bundle; what names
// the key for a prompt ("private key client.key").
type Passphrase func(what string) ([]byte, error)

// errWrongPassphrase is what decryption reports when the passphrase does not fit.
var errWrongPassphrase = errors.New("wrong passphrase (or a damaged key)")

// Bounds on the key-derivation work an encrypted key may ask for: the file states its own
// cost, and a hostile or corrupt one must not make us spin. OpenSSL writes PBKDF2 with 2048
// iterations; cautious tools use about 600000.
const (
	maxPBKDF2Iterations = 2_000_000
	// maxScryptMemory bounds scrypt's 128·N·r bytes, maxScryptWork its N·r·p.
	maxScryptMemory = 64 << 20
	maxScryptWork   = 1 << 22
)

var (
	oidPBES2       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
	oidHMACSHA1    = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA224  = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACSHA256  = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384  = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512  = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC   = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC   = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC   = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC  = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
	oidPKCS12PBES1 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1}
)

type encryptedPrivateKeyInfo struct {
	Algo pkix.AlgorithmIdentifier
	Data []byte
}

type pbes2Params struct {
	KDF pkix.AlgorithmIdentifier
	Enc pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt   []byte
	Iter   int
	KeyLen int                      `asn1:"optional"`
	PRF    pkix.AlgorithmIdentifier `asn1:"optional"`
}

type scryptParams struct {
	Salt   []byte
	N      int
	R      int
	P      int
	KeyLen int `asn1:"optional"`
}

// isEncryptedKey reports whether a PEM key block needs a passphrase.
func isEncryptedKey(b *pem.Block) bool {
	_, legacy := b.Headers["Proc-Type"]
	return legacy || b.Type == "ENCRYPTED PRIVATE KEY"
}

// decryptKeyBlock turns an encrypted PEM key block into the DER of the plain key and the PEM
// type that DER has.
func decryptKeyBlock(b *pem.Block, pass []byte) (der []byte, typ string, err error) {
	if b.Type == "ENCRYPTED PRIVATE KEY" {
		der, err := decryptPKCS8(b.Bytes, pass)
		return der, "PRIVATE KEY", err
	}
	der, err = decryptLegacyPEM(b, pass)
	return der, b.Type, err
}

// decryptLegacyPEM handles OpenSSL's traditional "Proc-Type: 4,ENCRYPTED" keys. Their key
// derivation is one MD5 round (EVP_BytesToKey), so its cost is fixed.
func decryptLegacyPEM(b *pem.Block, pass []byte) ([]byte, error) {
	if b.Headers["Proc-Type"] != "4,ENCRYPTED" {
		return nil, fmt.Errorf("unsupported Proc-Type %q", b.Headers["Proc-Type"])
	}
	//lint:ignore SA1019 the weakness (a padding oracle) needs an online attacker; a key file has none, and OpenSSL still writes this format.
	der, err := x509.DecryptPEMBlock(b, pass)
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, errWrongPassphrase
	}
	if err != nil {
		return nil, fmt.Errorf("decrypting %s: %w", b.Type, err)
	}
	return der, nil
}

// decryptPKCS8 decrypts an EncryptedPrivateKeyInfo (RFC 5958) protected with PBES2 (RFC 8018):
// PBKDF2 with HMAC-SHA1/SHA-2 or scrypt, then AES-CBC or 3DES-CBC, as OpenSSL writes them.
func decryptPKCS8(der, pass []byte) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if rest, err := asn1.Unmarshal(der, &info); err != nil || len(rest) > 0 {
		return nil, errors.New("malformed encrypted PKCS#8 key")
	}
	if !info.Algo.Algorithm.Equal(oidPBES2) {
		if len(info.Algo.Algorithm) > len(oidPKCS12PBES1) && info.Algo.Algorithm[:len(oidPKCS12PBES1)].Equal(oidPKCS12PBES1) {
			return nil, errors.New("this key uses the obsolete PKCS#12 PBE encryption; convert it with openssl pkcs8 -topk8 -v2 aes-256-cbc")
		}
		return nil, fmt.Errorf("unsupported key encryption %v (want PBES2)", info.Algo.Algorithm)
	}
	var params pbes2Params
	if rest, err := asn1.Unmarshal(info.Algo.Parameters.FullBytes, &params); err != nil || len(rest) > 0 {
		return nil, errors.New("malformed PBES2 parameters")
	}
	block, keyLen, iv, err := encryptionScheme(params.Enc)
	if err != nil {
		return nil, err
	}
	key, err := deriveKey(params.KDF, pass, keyLen)
	if err != nil {
		return nil, err
	}
	c, err := block(key)
	if err != nil {
		return nil, fmt.Errorf("key encryption: %w", err)
	}
	data := info.Data
	if len(data) == 0 || len(data)%c.BlockSize() != 0 {
		return nil, errors.New("encrypted key data is not a whole number of cipher blocks")
	}
	plain := make([]byte, len(data))
	cipher.NewCBCDecrypter(c, iv).CryptBlocks(plain, data)
	// PKCS#7 padding; a wrong passphrase almost always breaks it, or else the DER below.
	n := int(plain[len(plain)-1])
	if n == 0 || n > c.BlockSize() || !bytes.Equal(plain[len(plain)-n:], bytes.Repeat([]byte{byte(n)}, n)) {
		return nil, errWrongPassphrase
	}
	plain = plain[:len(plain)-n]
	var probe asn1.RawValue
	if rest, err := asn1.Unmarshal(plain, &probe); err != nil || len(rest) > 0 {
		return nil, errWrongPassphrase
	}
	return plain, nil
}

// encryptionScheme returns the block cipher constructor, key length and IV of a PBES2
// encryption scheme.
func encryptionScheme(a pkix.AlgorithmIdentifier) (func([]byte) (cipher.Block, error), int, []byte, error) {
	var iv []byte
	if rest, err := asn1.Unmarshal(a.Parameters.FullBytes, &iv); err != nil || len(rest) > 0 {
		return nil, 0, nil, errors.New("malformed cipher IV")
	}
	var block func([]byte) (cipher.Block, error)
	var keyLen, bs int
	switch {
	case a.Algorithm.Equal(oidAES128CBC):
		block, keyLen, bs = aes.NewCipher, 16, aes.BlockSize
	case a.Algorithm.Equal(oidAES192CBC):
		block, keyLen, bs = aes.NewCipher, 24, aes.BlockSize
	case a.Algorithm.Equal(oidAES256CBC):
		block, keyLen, bs = aes.NewCipher, 32, aes.BlockSize
	case a.Algorithm.Equal(oidDESEDE3CBC):
		block, keyLen, bs = des.NewTripleDESCipher, 24, des.BlockSize
	default:
		return nil, 0, nil, fmt.Errorf("unsupported key cipher %v (want AES-CBC or DES-EDE3-CBC)", a.Algorithm)
	}
	if len(iv) != bs {
		return nil, 0, nil, fmt.Errorf("cipher IV is %d bytes, want %d", len(iv), bs)
	}
	return block, keyLen, iv, nil
}

// deriveKey runs the PBES2 key derivation after checking that its cost is within bounds.
func deriveKey(a pkix.AlgorithmIdentifier, pass []byte, keyLen int) ([]byte, error) {
	switch {
	case a.Algorithm.Equal(oidPBKDF2):
		var p pbkdf2Params
		if rest, err := asn1.Unmarshal(a.Parameters.FullBytes, &p); err != nil || len(rest) > 0 {
			return nil, errors.New("malformed PBKDF2 parameters")
		}
		if p.Iter < 1 || p.Iter > maxPBKDF2Iterations {
			return nil, fmt.Errorf("PBKDF2 iteration count %d is outside 1..%d", p.Iter, maxPBKDF2Iterations)
		}
		if p.KeyLen != 0 && p.KeyLen != keyLen {
			return nil, fmt.Errorf("PBKDF2 key length %d does not fit the cipher's %d", p.KeyLen, keyLen)
		}
		h := sha1.New
		if len(p.PRF.Algorithm) > 0 {
			var ok bool
			if h, ok = prfHash(p.PRF.Algorithm); !ok {
				return nil, fmt.Errorf("unsupported PBKDF2 PRF %v", p.PRF.Algorithm)
			}
		}
		return pbkdf2.Key(h, string(pass), p.Salt, p.Iter, keyLen)
	case a.Algorithm.Equal(oidScrypt):
		var p scryptParams
		if rest, err := asn1.Unmarshal(a.Parameters.FullBytes, &p); err != nil || len(rest) > 0 {
			return nil, errors.New("malformed scrypt parameters")
		}
		if p.N < 2 || p.N&(p.N-1) != 0 || p.R < 1 || p.P < 1 || p.R > maxScryptMemory/128 ||
			p.N > maxScryptMemory/(128*p.R) || p.P > maxScryptWork/(p.N*p.R) {
			return nil, fmt.Errorf("scrypt parameters N=%d r=%d p=%d exceed the bounds (%d MiB, N·r·p ≤ %d)", p.N, p.R, p.P, maxScryptMemory>>20, maxScryptWork)
		}
		if p.KeyLen != 0 && p.KeyLen != keyLen {
			return nil, fmt.Errorf("scrypt key length %d does not fit the cipher's %d", p.KeyLen, keyLen)
		}
		return scrypt.Key(pass, p.Salt, p.N, p.R, p.P, keyLen)
	}
	return nil, fmt.Errorf("unsupported key derivation %v (want PBKDF2 or scrypt)", a.Algorithm)
}

func prfHash(oid asn1.ObjectIdentifier) (func() hash.Hash, bool) {
	switch {
	case oid.Equal(oidHMACSHA1):
		return sha1.New, true
	case oid.Equal(oidHMACSHA224):
		return sha256.New224, true
	case oid.Equal(oidHMACSHA256):
		return sha256.New, true
	case oid.Equal(oidHMACSHA384):
		return sha512.New384, true
	case oid.Equal(oidHMACSHA512):
		return sha512.New, true
	}
	return nil, false
}
