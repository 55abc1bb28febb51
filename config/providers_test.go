package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProviderProfiles runs the provider-shaped profiles in testdata/providers: one per kind
// of profile that OpenVPN 2.6 accepts and ovpnd once refused or changed (ping-restart 0,
// ns-cert-type, DHE tls-cipher lists, repeated directives, ignore-unknown-option, crl-verify,
// cipher with data-ciphers, encrypted keys), written with CRLF, byte-order marks and inline
// blocks as bundles are. Each must parse with the warnings its "# warn: LINE: text" comments
// list, print to a fixpoint whose re-parse is the same model, and be accepted by the daemon's
// ParseInline in printed form.
func TestProviderProfiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/providers/*")
	if len(files) < 10 {
		t.Fatalf("only %d provider profiles", len(files))
	}
	fsys := material(t)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, warns, err := Parse(filepath.Base(f), data, FSOpener(fsys))
			if err != nil {
				t.Fatalf("refused:\n%s", errText(err))
			}
			got := warnText(warns)
			n := 0
			for _, l := range strings.Split(string(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))), "\n") {
				l = strings.TrimSuffix(l, "\r")
				if l == "# accept" {
					n++
				}
				want, ok := strings.CutPrefix(l, "# warn: ")
				if !ok {
					continue
				}
				n++
				line, msg, _ := strings.Cut(want, ": ")
				if w := filepath.Base(f) + ":" + line + ": warning: " + msg; !strings.Contains(got, w) {
					t.Errorf("warnings:\n%s\nwant:\n%s", got, w)
				}
			}
			if n == 0 {
				t.Fatal("no # warn: or # accept line")
			}
			checkFixpoint(t, c)
			printed := c.Format()
			c2, _, err := ParseInline("daemon", printed)
			if err != nil {
				t.Fatalf("the daemon refuses the printed profile:\n%s", errText(err))
			}
			if d := modelDiff(c, c2); d != "" {
				t.Errorf("the daemon's model differs (-file +daemon):\n%s", d)
			}
		})
	}
}

// TestPrintKeepsExplicitValues is the printer audit: every directive given a value that is
// "off" or differs from what a bare "client" profile gets must survive --print, so that the
// daemon's re-parse means the same (checkFixpoint compares the models).
func TestPrintKeepsExplicitValues(t *testing.T) {
	for _, line := range []string{
		"ping-restart 0", "ping-exit 0", "ping-exit 45", "ping 0", "keepalive 0 0", "keepalive 10 0",
		"reneg-sec 0", "reneg-bytes 0", "reneg-pkts 1000", "hand-window 0", "tran-window 0", "tls-timeout 1",
		"mssfix 0", "mssfix", "mssfix 1400 mtu", "tun-mtu 1400", "resolv-retry 0", "connect-retry 0",
		"connect-retry-max 1", "connect-timeout 0", "server-poll-timeout 5", "explicit-exit-notify 0",
		"explicit-exit-notify", "nobind", "bind", "lport 0", "allow-compression no", "comp-lzo no",
		"comp-lzo", "compress", "compress stub-v2", "route-delay", "route-delay 0 0", "remote-cert-ku",
		"auth none", "replay-window 64 15", "verb 0", "auth-retry nointeract", "data-ciphers AES-256-GCM",
		"route-metric 0", "topology subnet", "topology net30", "tls-version-min 1.3", "key-direction 1",
		"remote-cert-tls server", "ns-cert-type client", "auth-nocache", "pull-filter ignore route",
		"route-nopull", "block-ipv6", "redirect-gateway def1 block-local", "persist-tun",
	} {
		t.Run(line, func(t *testing.T) {
			c, _, err := parseText(t, base+line+"\n")
			if err != nil {
				t.Fatal(errText(err))
			}
			checkFixpoint(t, c)
		})
	}
}
