package config

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Sizes of OpenVPN key material.
const (
	staticKeySize = 256 // "OpenVPN Static key V1": 2048 bits
	v2ClientKc    = 256 // tls-crypt-v2 client key Kc
	v2MinWKc      = 32 + 256 + 2
	v2MaxWKc      = 1024
)

const (
	staticKeyBegin = "-----BEGIN OpenVPN Static key V1-----"
	staticKeyEnd   = "-----END OpenVPN Static key V1-----"
	v2ClientType   = "OpenVPN tls-crypt-v2 client key"
	v2ServerType   = "OpenVPN tls-crypt-v2 server key"
)

// parseStaticKey reads an "OpenVPN Static key V1" file: comment lines, then 2048 bits in hex
// between BEGIN and END lines.
func parseStaticKey(data []byte) ([]byte, error) {
	s := strings.ReplaceAll(string(data), "\r", "")
	begin := strings.Index(s, staticKeyBegin)
	if begin < 0 {
		if bytes.Contains(data, []byte("-----BEGIN "+v2ClientType)) {
			return nil, errors.New("this is a tls-crypt-v2 client key, not an OpenVPN static key")
		}
		return nil, fmt.Errorf("no %q line", staticKeyBegin)
	}
	rest := s[begin+len(staticKeyBegin):]
	end := strings.Index(rest, staticKeyEnd)
	if end < 0 {
		return nil, fmt.Errorf("no %q line", staticKeyEnd)
	}
	var hexDigits strings.Builder
	for _, line := range strings.Split(rest[:end], "\n") {
		hexDigits.WriteString(strings.TrimSpace(line))
	}
	key, err := hex.DecodeString(hexDigits.String())
	if err != nil {
		return nil, fmt.Errorf("static key is not hex: %w", err)
	}
	if len(key) != staticKeySize {
		return nil, fmt.Errorf("static key has %d bytes, want %d", len(key), staticKeySize)
	}
	return key, nil
}

// formatStaticKey writes a static key in OpenVPN's layout (16 bytes of hex per line).
func formatStaticKey(key []byte) []byte {
	var b bytes.Buffer
	b.WriteString(staticKeyBegin + "\n")
	for i := 0; i < len(key); i += 16 {
		b.WriteString(hex.EncodeToString(key[i:min(i+16, len(key))]))
		b.WriteByte('\n')
	}
	b.WriteString(staticKeyEnd + "\n")
	return b.Bytes()
}

// parseTLSCryptV2Client reads an "OpenVPN tls-crypt-v2 client key" PEM: Kc (256 bytes) followed
// by the wrapped key WKc, whose last two bytes are its own length.
func parseTLSCryptV2Client(data []byte) (kc, wkc []byte, err error) {
	body, typ, err := pemBody(data)
	if err != nil {
		return nil, nil, err
	}
	if typ == v2ServerType {
		return nil, nil, errors.New("this is a tls-crypt-v2 server key; a client needs its client key")
	}
	if typ != v2ClientType {
		return nil, nil, fmt.Errorf("PEM type is %q, want %q", typ, v2ClientType)
	}
	if len(body) < v2ClientKc+v2MinWKc {
		return nil, nil, fmt.Errorf("tls-crypt-v2 client key has %d bytes, want at least %d", len(body), v2ClientKc+v2MinWKc)
	}
	kc, wkc = body[:v2ClientKc], body[v2ClientKc:]
	if len(wkc) > v2MaxWKc {
		return nil, nil, fmt.Errorf("tls-crypt-v2 wrapped key has %d bytes, more than %d", len(wkc), v2MaxWKc)
	}
	if n := int(binary.BigEndian.Uint16(wkc[len(wkc)-2:])); n != len(wkc) {
		return nil, nil, fmt.Errorf("tls-crypt-v2 wrapped key says it has %d bytes but has %d", n, len(wkc))
	}
	return kc, wkc, nil
}

// pemBody decodes a single PEM-like block by hand. OpenVPN's own types contain spaces and
// lower-case letters, which encoding/pem accepts, but we also want its error messages.
func pemBody(data []byte) ([]byte, string, error) {
	s := strings.ReplaceAll(string(data), "\r", "")
	i := strings.Index(s, "-----BEGIN ")
	if i < 0 {
		return nil, "", errors.New("no PEM block")
	}
	s = s[i+len("-----BEGIN "):]
	j := strings.Index(s, "-----")
	if j < 0 {
		return nil, "", errors.New("malformed PEM BEGIN line")
	}
	typ := s[:j]
	s = s[j+5:]
	endLine := "-----END " + typ + "-----"
	k := strings.Index(s, endLine)
	if k < 0 {
		return nil, typ, fmt.Errorf("no %q line", endLine)
	}
	b64 := strings.Join(strings.Fields(s[:k]), "")
	body, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, typ, fmt.Errorf("%s: bad base64: %w", typ, err)
	}
	return body, typ, nil
}

func encodeV2PEM(body []byte) []byte {
	var b bytes.Buffer
	b.WriteString("-----BEGIN " + v2ClientType + "-----\n")
	enc := base64.StdEncoding.EncodeToString(body)
	for len(enc) > 64 {
		b.WriteString(enc[:64] + "\n")
		enc = enc[64:]
	}
	if enc != "" {
		b.WriteString(enc + "\n")
	}
	b.WriteString("-----END " + v2ClientType + "-----\n")
	return b.Bytes()
}
