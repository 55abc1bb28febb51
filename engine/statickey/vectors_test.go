package statickey

import "github.com/ovpnd/ovpnd/engine/internal/ovpnvectors"

// Test vectors copied byte for byte from OpenVPN's unit tests (facts, not code).

// Key files from OpenVPN's unit tests, shared with the other engine packages.
const (
	testPktStaticKey = ovpnvectors.PktStaticKey
	testV2ServerKey  = ovpnvectors.V2ServerKey
	testV2ClientKey  = ovpnvectors.V2ClientKey
)

// testV2ClientKeyMetadata is `test_client_key_metadata` in test_tls_crypt.c: user metadata "AABBCCDD" (base64).
const testV2ClientKeyMetadata = `-----BEGIN OpenVPN tls-crypt-v2 client key-----
AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v
MDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5f
YGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6P
kJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/
wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v
8PHy8/T19vf4+fr7/P3+/2ntp1WCqhcLjJQY/igkjNt3Yb6i0neqFkfrOp2UCDcz
6RSJtPLZbvOOKUHk2qwxPYUsFCnz/IWV6/ZiLRrabzUpS8oSN1HS6P7qqAdrHKgf
hVTHasdSf2UdMTPC7HBgnP9Ll0FhKN0h7vSzbbt7QM7wH9mr1ecc/Mt0SYW2lpwA
aJObYGTyk6hTgWm0g/MLrworLrezTqUHBZzVsu+LDyqLWK1lzJNd66MuNOsGA4YF
fbCsDh8n3H+Cw1k5YNBZDYYJOtVUgBWXheO6vgoOmqDdI0dAQ3hVo9DE+SkCFjgf
l4FY2yLEh9ZVZZrl1eD1Owh/X178CkHrBJYl9LNQSyQEKlDGWwBLQ/pY3qtjctr3
pV62MPQdBo+1lcsjDCJVQA6XUyltas4BKQ==
-----END OpenVPN tls-crypt-v2 client key-----
`
