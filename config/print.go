package config

import (
	"bytes"
	"fmt"
	"github.com/ovpnd/ovpnd/engine/statickey"
	"io"
	"strconv"
	"strings"
	"time"
)

// Format returns the profile as a normalized, self-contained OpenVPN configuration: every
// file inlined, defaults written out, one canonical spelling per setting. Parsing the result
// with ParseInline and formatting again yields the same bytes.
func (c *Config) Format() []byte {
	var b bytes.Buffer
	w := &printer{b: &b}
	c.print(w)
	return b.Bytes()
}

// Print writes Format's output to w.
func (c *Config) Print(w io.Writer) error {
	_, err := w.Write(c.Format())
	return err
}

type printer struct{ b *bytes.Buffer }

// line writes one directive, quoting words as the lexer expects.
func (w *printer) line(name string, args ...string) {
	w.b.WriteString(name)
	for _, a := range args {
		w.b.WriteByte(' ')
		w.b.WriteString(quote(a))
	}
	w.b.WriteByte('\n')
}

func (w *printer) block(tag string, data []byte) {
	fmt.Fprintf(w.b, "<%s>\n", tag)
	w.b.Write(data)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		w.b.WriteByte('\n')
	}
	fmt.Fprintf(w.b, "</%s>\n", tag)
}

func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'\\#;") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

func secs(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }

func (c *Config) print(w *printer) {
	w.b.WriteString("# Normalized by ovpnd: self-contained, defaults explicit.\n")
	switch {
	case c.TLSClient && c.Pull:
		w.line("client")
	case c.TLSClient:
		w.line("tls-client")
	}
	w.line("dev", c.Dev)
	if !strings.HasPrefix(c.Dev, "tun") && c.Dev != "null" {
		w.line("dev-type", "tun")
	}
	if c.ResolvRetry == ResolvRetryInfinite {
		w.line("resolv-retry", "infinite")
	} else {
		w.line("resolv-retry", secs(c.ResolvRetry))
	}
	if c.RemoteRandom {
		w.line("remote-random")
	}
	for _, cn := range c.Connections {
		w.b.WriteString("<connection>\n")
		w.line("remote", cn.Remote, strconv.Itoa(int(cn.Port)), cn.Proto.String()+cn.Family.suffix())
		if cn.Bind {
			w.line("bind")
			w.line("lport", strconv.Itoa(int(cn.LocalPort)))
			if cn.Local != "" {
				w.line("local", cn.Local)
			}
		} else {
			w.line("nobind")
		}
		w.line("connect-retry", secs(cn.ConnectRetry), secs(cn.ConnectRetryMaxWait))
		if cn.ConnectRetryMax == 0 {
			w.line("connect-retry-max", "unlimited")
		} else {
			w.line("connect-retry-max", strconv.Itoa(cn.ConnectRetryMax))
		}
		w.line("connect-timeout", secs(cn.ConnectTimeout))
		if cn.Float {
			w.line("float")
		}
		if cn.ExplicitExitNotify > 0 {
			w.line("explicit-exit-notify", strconv.Itoa(cn.ExplicitExitNotify))
		}
		w.b.WriteString("</connection>\n")
	}
	if c.Proxy != nil {
		printProxy(w, c.Proxy)
	}
	if c.PersistTun {
		w.line("persist-tun")
	}
	if c.PersistKey {
		w.line("persist-key")
	}
	w.line("tun-mtu", strconv.Itoa(c.TunMTU))
	if c.TunMaxMTU != 0 {
		w.line("tun-max-mtu", strconv.Itoa(c.TunMaxMTU))
	}
	switch {
	case c.MSSFixDefault:
		w.line("mssfix") // the default depends on the final tun-mtu, which a push may change
	case c.MSSFixMTU:
		w.line("mssfix", strconv.Itoa(c.MSSFix), "mtu")
	case c.MSSFixFixed:
		w.line("mssfix", strconv.Itoa(c.MSSFix), "fixed")
	default:
		w.line("mssfix", strconv.Itoa(c.MSSFix))
	}
	if c.Fragment > 0 {
		if c.FragmentMTU {
			w.line("fragment", strconv.Itoa(c.Fragment), "mtu")
		} else {
			w.line("fragment", strconv.Itoa(c.Fragment))
		}
	}

	if c.src.ca != nil {
		w.block("ca", c.src.ca)
	}
	if c.Cert != nil {
		w.block("cert", c.src.cert)
		w.block("key", c.src.key)
	}
	if c.src.extraCerts != nil {
		w.block("extra-certs", c.src.extraCerts)
	}
	if a := c.AuthUserPass; a != nil {
		if a.Ask {
			w.line("auth-user-pass")
		} else {
			data := a.Username + "\n"
			if !a.PasswordMissing {
				data += a.Password + "\n"
			}
			w.block("auth-user-pass", []byte(data))
		}
	}
	if c.AuthNoCache {
		w.line("auth-nocache")
	}
	w.line("auth-retry", c.AuthRetry.String())
	if sc := c.StaticChallenge; sc != nil {
		echo, format := "0", "scrv1"
		if sc.Echo {
			echo = "1"
		}
		if sc.Concat {
			format = "concat"
		}
		w.line("static-challenge", sc.Text, echo, format)
	}
	if len(c.PeerFingerprints) > 0 {
		var fb bytes.Buffer
		for _, fp := range c.PeerFingerprints {
			fb.WriteString(formatFingerprint(fp) + "\n")
		}
		w.block("peer-fingerprint", fb.Bytes())
	}
	if v := c.VerifyX509Name; v != nil {
		w.line("verify-x509-name", v.Name, v.Type)
	}
	if c.RemoteCertTLS != "" {
		w.line("remote-cert-tls", c.RemoteCertTLS)
	}
	switch r := c.CRL; {
	case r == nil:
	case r.Dir != "":
		// Only ovpnd run and ovpnd instance can use it; ParseInline refuses it by name.
		w.line("crl-verify", r.Dir, "dir")
	default:
		w.block("crl-verify", r.PEM)
	}
	if c.NSCertType != "" {
		w.line("ns-cert-type", c.NSCertType)
	}
	if c.RemoteCertEKU != "" {
		w.line("remote-cert-eku", c.RemoteCertEKU)
	}
	if c.RemoteCertKU != nil {
		var ku []string
		for _, k := range c.RemoteCertKU {
			ku = append(ku, strconv.FormatUint(uint64(k), 16))
		}
		w.line("remote-cert-ku", ku...)
	}
	switch t := c.TLSWrap; t.Mode {
	case WrapTLSAuth:
		w.block("tls-auth", staticKeyPEM(t.Key))
		if t.Direction != KeyDirBidi {
			w.line("key-direction", strconv.Itoa(int(t.Direction)))
		}
	case WrapTLSCrypt:
		w.block("tls-crypt", staticKeyPEM(t.Key))
	case WrapTLSCryptV2:
		w.block("tls-crypt-v2", t.PEM)
	}
	w.line("tls-timeout", secs(c.TLSTimeout))
	w.line("hand-window", secs(c.HandWindow))
	w.line("tran-window", secs(c.TranWindow))
	w.line("reneg-sec", secs(c.RenegInterval))
	if c.RenegBytes > 0 {
		w.line("reneg-bytes", strconv.FormatInt(c.RenegBytes, 10))
	}
	if c.RenegPkts > 0 {
		w.line("reneg-pkts", strconv.FormatInt(c.RenegPkts, 10))
	}
	if v := c.TLSVersionMin; v.Version != 0 {
		if v.OrHighest {
			w.line("tls-version-min", tlsVersionName(v.Version), "or-highest")
		} else {
			w.line("tls-version-min", tlsVersionName(v.Version))
		}
	}
	if v := c.TLSVersionMax; v.Version != 0 {
		w.line("tls-version-max", tlsVersionName(v.Version))
	}
	if c.TLSCipher != "" {
		w.line("tls-cipher", c.TLSCipher)
	}
	if c.TLSCipherSuites != "" {
		w.line("tls-ciphersuites", c.TLSCipherSuites)
	}
	if c.TLSGroups != "" {
		w.line("tls-groups", c.TLSGroups)
	}
	if c.TLSCertProfile != "" {
		w.line("tls-cert-profile", c.TLSCertProfile)
	}
	w.line("data-ciphers", strings.Join(c.DataCiphers, ":"))
	if c.DataCiphersFallback != "" {
		w.line("data-ciphers-fallback", c.DataCiphersFallback)
	}
	if c.Cipher != "" {
		w.line("cipher", c.Cipher)
	}
	w.line("auth", c.Auth)
	w.line("replay-window", strconv.Itoa(c.ReplayWindow), secs(c.ReplayTime))
	switch m := c.Compression.Mode; m {
	case CompressOff:
	case CompressCompLZO:
		w.line("comp-lzo", c.Compression.CompLZO)
	default:
		w.line("compress", compressNames[m])
	}
	w.line("allow-compression", []string{"asym", "no"}[c.Compression.Allow])
	w.line("ping", secs(c.Ping))
	// Always written, 0 included: without a line, a pulling client's default is 120.
	if c.PingTimeoutAction == PingExit {
		w.line("ping-exit", secs(c.PingTimeout))
	} else {
		w.line("ping-restart", secs(c.PingTimeout))
	}
	printNet(w, &c.Net)
	if c.RouteNoPull {
		w.line("route-nopull")
	}
	if c.RouteNoExec {
		w.line("route-noexec")
	}
	if c.IfconfigNoExec {
		w.line("ifconfig-noexec")
	}
	if c.RouteDelay > 0 || c.RouteDelayWin > 0 {
		w.line("route-delay", secs(c.RouteDelay), secs(c.RouteDelayWin))
	}
	for _, f := range c.PullFilters {
		w.line("pull-filter", f.Action.String(), f.Text)
	}
	w.line("verb", strconv.Itoa(c.Verb))
	if c.Mute > 0 {
		w.line("mute", strconv.Itoa(c.Mute))
	}
}

func metricString(m int) string {
	if m < 0 {
		return "default"
	}
	return strconv.Itoa(m)
}

func printNet(w *printer, n *NetSettings) {
	if n.Topology != TopologyUnset {
		w.line("topology", n.Topology.String())
	}
	if ic := n.Ifconfig; ic != nil {
		w.line("ifconfig", ic.Local.String(), ic.Remote.String())
	}
	if ic := n.IfconfigIPv6; ic != nil {
		if ic.Remote.IsValid() {
			w.line("ifconfig-ipv6", ic.Local.String(), ic.Remote.String())
		} else {
			w.line("ifconfig-ipv6", ic.Local.String())
		}
	}
	if g := n.RouteGateway; g != nil {
		if g.DHCP {
			w.line("route-gateway", "dhcp")
		} else {
			w.line("route-gateway", g.Addr.String())
		}
	}
	if n.RouteIPv6Gateway.IsValid() {
		w.line("route-ipv6-gateway", n.RouteIPv6Gateway.String())
	}
	if n.RouteMetric > 0 {
		w.line("route-metric", strconv.Itoa(n.RouteMetric))
	}
	for _, r := range n.Routes {
		gw := r.Gateway
		if gw == "" {
			gw = "default"
		}
		w.line("route", r.Network, r.Netmask.String(), gw, metricString(r.Metric))
	}
	for _, r := range n.RoutesIPv6 {
		gw := "default"
		if r.Gateway.IsValid() {
			gw = r.Gateway.String()
		}
		w.line("route-ipv6", r.Prefix.String(), gw, metricString(r.Metric))
	}
	if r := n.RedirectGateway; r != nil {
		w.line("redirect-gateway", r.flags()...)
	}
	if r := n.RedirectPrivate; r != nil {
		w.line("redirect-private", r.flags()...)
	}
	for _, o := range n.DHCPOptions {
		w.line("dhcp-option", append([]string{o.Type}, strings.Fields(o.Value)...)...)
	}
	if d := n.DNS; d != nil {
		if len(d.SearchDomains) > 0 {
			w.line("dns", append([]string{"search-domains"}, d.SearchDomains...)...)
		}
		for _, s := range d.Servers {
			p := strconv.Itoa(s.Priority)
			if len(s.Addresses) > 0 {
				args := []string{"server", p, "address"}
				for _, a := range s.Addresses {
					args = append(args, formatDNSAddr(a))
				}
				w.line("dns", args...)
			}
			if len(s.ResolveDomains) > 0 {
				w.line("dns", append([]string{"server", p, "resolve-domains"}, s.ResolveDomains...)...)
			}
			if s.DNSSEC != "" {
				w.line("dns", "server", p, "dnssec", s.DNSSEC)
			}
			if s.Transport != "" {
				w.line("dns", "server", p, "transport", s.Transport)
			}
			if s.SNI != "" {
				w.line("dns", "server", p, "sni", s.SNI)
			}
		}
	}
	if n.BlockIPv6 {
		w.line("block-ipv6")
	}
}

// staticKeyPEM writes a 256-byte static key in OpenVPN's file layout.
func staticKeyPEM(key []byte) []byte {
	k, err := statickey.FromBytes(key)
	if err != nil {
		return nil // the parser only stores keys that FromBytes accepts
	}
	return k.EncodePEM()
}
