package config

import (
	"encoding/asn1"
	"fmt"
	"math/big"
)

// maxPKCS12Iterations bounds the key-derivation work a PKCS#12 bundle can demand. go-pkcs12
// runs whatever iteration count the file states, so a corrupt or hostile file could otherwise
// keep the parser busy for hours. OpenSSL writes 2048 by default; cautious tools use ~600000.
const maxPKCS12Iterations = 2_000_000

// checkPKCS12Work walks the visible DER structure of a PKCS#12 bundle and rejects any
// PBE/PBKDF2/MAC parameter block whose iteration count exceeds maxPKCS12Iterations. Such
// blocks look like SEQUENCE { OCTET STRING salt, INTEGER iterations, ... } (PBE and PBKDF2
// parameters) or SEQUENCE { SEQUENCE mac, OCTET STRING salt, INTEGER iterations } (MacData).
// Parameters inside encrypted content cannot be seen before decryption; reaching them needs a
// bundle that decrypts with an empty password.
func checkPKCS12Work(der []byte) error {
	return walkDER(der, 0)
}

func walkDER(der []byte, depth int) error {
	if depth > 24 {
		return nil
	}
	for len(der) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(der, &v)
		if err != nil {
			return nil // not DER; go-pkcs12 reports the real problem
		}
		der = rest
		switch {
		case v.Class == asn1.ClassUniversal && v.Tag == asn1.TagSequence:
			if err := checkParams(v.Bytes); err != nil {
				return err
			}
			if err := walkDER(v.Bytes, depth+1); err != nil {
				return err
			}
		case v.IsCompound:
			if err := walkDER(v.Bytes, depth+1); err != nil {
				return err
			}
		case v.Class == asn1.ClassUniversal && v.Tag == asn1.TagOctetString:
			// ContentInfo data and bag values are DER wrapped in OCTET STRINGs.
			if err := walkDER(v.Bytes, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkParams inspects the elements of one SEQUENCE for the two parameter shapes.
func checkParams(body []byte) error {
	var elems []asn1.RawValue
	for len(body) > 0 && len(elems) < 3 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(body, &v)
		if err != nil {
			return nil
		}
		elems = append(elems, v)
		body = rest
	}
	isUniv := func(v asn1.RawValue, tag int) bool { return v.Class == asn1.ClassUniversal && v.Tag == tag }
	var iter *asn1.RawValue
	switch {
	case len(elems) >= 2 && isUniv(elems[0], asn1.TagOctetString) && isUniv(elems[1], asn1.TagInteger):
		iter = &elems[1]
	case len(elems) >= 3 && isUniv(elems[0], asn1.TagSequence) && isUniv(elems[1], asn1.TagOctetString) && isUniv(elems[2], asn1.TagInteger):
		iter = &elems[2]
	default:
		return nil
	}
	n := new(big.Int).SetBytes(iter.Bytes)
	if len(iter.Bytes) > 0 && iter.Bytes[0]&0x80 != 0 {
		return fmt.Errorf("PKCS#12 bundle has a negative iteration count")
	}
	if !n.IsInt64() || n.Int64() > maxPKCS12Iterations {
		return fmt.Errorf("PKCS#12 bundle asks for %s key-derivation iterations, more than the %d ovpnd allows", n, maxPKCS12Iterations)
	}
	return nil
}
