package config

import (
	"encoding/base64"
	"errors"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

// knownFileDirectives are the directives that read a file when given a path instead of an
// inline block. The daemon parses profiles from unprivileged callers with ParseInline, which
// must refuse every one of them; this list makes a new file-reading directive a deliberate
// change that shows up in review. ("connection FILE" fails its argument count before it could
// read anything, and peer-fingerprint takes a fingerprint, not a file; both are checked below.)
var knownFileDirectives = []string{
	"askpass", "auth-user-pass", "ca", "cert", "crl-verify", "extra-certs", "key", "pkcs12", "tls-auth", "tls-crypt", "tls-crypt-v2",
	"http-proxy-user-pass",
}

// TestParseInlineRefusesEveryPath walks the whole directive table. For each directive and a
// few argument shapes it parses with an opener that records paths; any directive that asks for
// a file must be in knownFileDirectives and must be an error under ParseInline (which has no
// opener at all, so it cannot open anything).
func TestParseInlineRefusesEveryPath(t *testing.T) {
	const path = "/etc/shadow"
	argSets := [][]string{{path}, {path, "1"}, {path, "0"}, {path, "force-cookie"}, {path, "1", "2"}}
	opened := map[string]bool{}
	for _, d := range directiveList {
		t.Run(d.name, func(t *testing.T) {
			for _, args := range argSets {
				text := "client\ndev tun\nremote vpn.example.com 1194\n" + d.name + " " + strings.Join(args, " ") + "\n"
				var asked []string
				_, _, _ = Parse("p.conf", []byte(text), func(p string) ([]byte, error) {
					asked = append(asked, p)
					return nil, errors.New("no such file")
				})
				if len(asked) == 0 {
					continue
				}
				opened[d.name] = true
				if !slices.Contains(knownFileDirectives, d.name) {
					t.Errorf("%s reads the file %v; add it to knownFileDirectives after checking ParseInline refuses it", d.name, asked)
				}
				_, _, err := ParseInline("p.conf", []byte(text))
				if err == nil || !strings.Contains(err.Error(), "only inline blocks are accepted") && !strings.Contains(err.Error(), "not accepted in profiles sent to the daemon") {
					t.Errorf("ParseInline(%q) = %v, want an only-inline error", strings.TrimSpace(text), err)
				}
				if err != nil && !strings.Contains(err.Error(), d.name) {
					t.Errorf("ParseInline error does not name %s: %v", d.name, err)
				}
			}
		})
	}
	var missing []string
	for _, n := range knownFileDirectives {
		if !opened[n] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("directives expected to read files did not: %v (update knownFileDirectives or the argument shapes)", missing)
	}
}

// TestParseInlineRefusesOtherPathShapes: "connection FILE" (top level or nested), a file
// named inside a <connection> block, and a path given to peer-fingerprint are all errors.
func TestParseInlineRefusesOtherPathShapes(t *testing.T) {
	for _, text := range []string{
		"client\ndev tun\nremote vpn.example.com 1194\nconnection /etc/shadow\n",
		"client\ndev tun\n<connection>\nremote vpn.example.com 1194\nconnection /etc/shadow\n</connection>\n",
		"client\ndev tun\n<connection>\nremote vpn.example.com 1194\nca /etc/shadow\n</connection>\n",
		"client\ndev tun\nremote vpn.example.com 1194\npeer-fingerprint /etc/shadow\n",
	} {
		t.Run(strings.ReplaceAll(text, "\n", ";"), func(t *testing.T) {
			if _, _, err := ParseInline("p.conf", []byte(text)); err == nil {
				t.Fatal("ParseInline accepted it")
			}
		})
	}
}

// TestParseInlineRefusesPKCS12: a bundle chooses its own key-derivation cost, so a profile from
// an unprivileged caller may not carry one, not even inline; the file-based parser still reads it.
func TestParseInlineRefusesPKCS12(t *testing.T) {
	p12, err := os.ReadFile("testdata/key files/client.p12")
	if err != nil {
		t.Fatal(err)
	}
	text := "client\ndev tun\nremote vpn.example.com 1194\nauth-user-pass\n<pkcs12>\n" + base64.StdEncoding.EncodeToString(p12) + "\n</pkcs12>\n"
	if _, _, err := ParseInline("p.conf", []byte(text)); err == nil || !strings.Contains(err.Error(), "PKCS#12 is not accepted") {
		t.Errorf("ParseInline accepted an inline PKCS#12 bundle: %v", err)
	}
	if _, _, err := Parse("p.conf", []byte(text), FSOpener(os.DirFS("."))); err != nil {
		t.Errorf("Parse with file access refused the same bundle: %v", err)
	}
}
