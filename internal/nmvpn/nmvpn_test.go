package nmvpn

import (
	"strings"
	"testing"
)

const sample = `client
remote vpn.example 1194 udp
<ca>
CA LINES
</ca>
<cert>
CERT
</cert>
<key>
-----BEGIN PRIVATE KEY-----
SECRET
-----END PRIVATE KEY-----
</key>
<tls-crypt>
TC KEY
</tls-crypt>
auth-user-pass
`

// TestSplitJoin: private key material leaves the data part, and Join gives a profile with
// the same blocks back.
func TestSplitJoin(t *testing.T) {
	data, secrets, err := Split(sample)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(data, "SECRET") || strings.Contains(data, "TC KEY") || !strings.Contains(data, "CA LINES") || !strings.Contains(data, "auth-user-pass") {
		t.Fatalf("data part:\n%s", data)
	}
	if len(secrets) != 2 || !strings.Contains(secrets["inline-key"], "SECRET") || secrets["inline-tls-crypt"] != "TC KEY\n" {
		t.Fatalf("secrets %q", secrets)
	}
	joined, err := Join(data, secrets)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<key>\n-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n</key>\n", "<tls-crypt>\nTC KEY\n</tls-crypt>\n", "<ca>\nCA LINES\n</ca>\n"} {
		if !strings.Contains(joined, want) {
			t.Errorf("joined profile lacks %q:\n%s", want, joined)
		}
	}
}

func TestSplitJoinRefuse(t *testing.T) {
	if _, _, err := Split("<key>\nX\n"); err == nil || !strings.Contains(err.Error(), "not closed") {
		t.Errorf("unclosed block: %v", err)
	}
	if _, _, err := Split("<key>\nX\n</key>\n<key>\nY\n</key>\n"); err == nil || !strings.Contains(err.Error(), "second <key>") {
		t.Errorf("two keys: %v", err)
	}
	if _, err := Join("client\n", map[string]string{"inline-ca": "x"}); err == nil || !strings.Contains(err.Error(), "inline-ca") {
		t.Errorf("unknown block: %v", err)
	}
	if _, err := Join("client\n", map[string]string{"inline-key": "x\n</key>\nremote evil\n<key>\n"}); err == nil {
		t.Errorf("a block that closes itself was accepted")
	}
	if _, err := Join(strings.Repeat("#\n", MaxProfile), nil); err == nil {
		t.Errorf("oversized profile accepted")
	}
}
