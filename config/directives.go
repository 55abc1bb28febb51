package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/ovpnd/ovpnd/engine/statickey"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// status is how ovpnd treats a directive.
type status uint8

const (
	supported status = iota // parsed and honoured
	ignored                 // accepted with a warning saying why it has no effect
	refused                 // an error: the feature is not supported
	pushOnly                // only meaningful in a PUSH_REPLY
)

var statusNames = []string{"supported", "ignored", "refused", "push only"}

// directive is one row of the table that drives parsing, pushing and docs/config.md.
type directive struct {
	name   string
	syntax string
	doc    string // meaning; for ignored and refused directives, why
	status status
	min    int
	max    int  // -1 = unbounded (up to MaxArgs)
	inline bool // may be an inline <name> block
	conn   bool // allowed inside <connection>
	apply  func(p *parser, s *scope, it *item) error

	// removed marks a refused directive that OpenVPN 2.6 no longer knows either, so that
	// ignore-unknown-option covers it as it does in OpenVPN.
	removed bool
}

// table is the single source of truth: Parse, ParsePush and the docs test all read it.
var table map[string]*directive

// directiveList keeps the table's order for docs/config.md.
var directiveList []*directive

func init() {
	directiveList = directives()
	table = make(map[string]*directive, len(directiveList))
	for _, d := range directiveList {
		if table[d.name] != nil {
			panic("config: duplicate directive " + d.name)
		}
		table[d.name] = d
	}
}

func sup(name, syntax string, min, max int, doc string, apply func(p *parser, s *scope, it *item) error) *directive {
	return &directive{name: name, syntax: syntax, doc: doc, status: supported, min: min, max: max, apply: apply}
}

func ign(name, why string) *directive {
	return &directive{name: name, syntax: name + " ...", doc: why, status: ignored, max: -1}
}

func ref(name, why string) *directive {
	return &directive{name: name, syntax: name + " ...", doc: why, status: refused, max: -1}
}

// gone is a directive OpenVPN 2.6 removed: refused, unless ignore-unknown-option lists it.
func gone(name, why string) *directive {
	d := ref(name, why+"; ignore-unknown-option "+name+" skips it, as in OpenVPN 2.6")
	d.removed = true
	return d
}

func pushonly(name, syntax, doc string) *directive {
	return &directive{name: name, syntax: syntax, doc: doc, status: pushOnly, max: -1}
}

func withInline(d *directive) *directive { d.inline = true; return d }
func withConn(d *directive) *directive   { d.conn = true; return d }

// flag applies a directive without arguments.
func flagDirective(set func(c *Config)) func(p *parser, s *scope, it *item) error {
	return func(p *parser, s *scope, it *item) error {
		if p.once(s, it, it.name, "") {
			set(p.cfg)
		}
		return nil
	}
}

// seconds applies a directive with one number of seconds.
func seconds(field func(c *Config) *time.Duration) func(p *parser, s *scope, it *item) error {
	return func(p *parser, s *scope, it *item) error {
		d, err := parseSeconds(it.args[0])
		if err != nil {
			return err
		}
		if p.once(s, it, it.name, it.args[0]) {
			*field(p.cfg) = d
		}
		return nil
	}
}

// connDirective validates a connection-level directive and records it for finish.
func connDirective(p *parser, s *scope, it *item) error {
	var c Connection
	var st connState
	if err := applyConn(&c, &st, it); err != nil {
		return err
	}
	key := it.name
	switch key {
	case "server-poll-timeout":
		key = "connect-timeout"
	case "nobind":
		key = "bind"
	case "remote":
		if len(s.remotes) >= MaxConnections {
			return fmt.Errorf("more than %d remotes", MaxConnections)
		}
		s.remotes = append(s.remotes, it)
		return nil
	}
	if p.once(s, it, key, it.name+" "+strings.Join(it.args, " ")) {
		s.conn = append(s.conn, it)
	}
	return nil
}

func directives() []*directive {
	return []*directive{
		// Role.
		sup("client", "client", 0, 0, "Shorthand for tls-client and pull.", flagDirective(func(c *Config) { c.TLSClient, c.Pull = true, true })),
		sup("tls-client", "tls-client", 0, 0, "Act as the TLS client (required).", flagDirective(func(c *Config) { c.TLSClient = true })),
		sup("pull", "pull", 0, 0, "Accept options pushed by the server.", flagDirective(func(c *Config) { c.Pull = true })),
		ref("tls-server", "ovpnd is a client; server mode is not supported"),
		ref("server", "ovpnd is a client; server mode is not supported"),
		ref("mode", "ovpnd is a client; server mode is not supported"),
		ref("secret", "static-key mode has no forward secrecy and is not supported; use TLS (client, ca, cert, key)"),

		// Connections.
		withConn(sup("remote", "remote HOST [PORT] [PROTO]", 1, 3, "A server to connect to; each remote is tried in order.", connDirective)),
		withConn(sup("proto", "proto udp|udp4|udp6|tcp|tcp4|tcp6|tcp-client|tcp4-client|tcp6-client", 1, 1, "Transport protocol; the 4/6 suffix restricts the address family. Default udp.", connDirective)),
		withConn(sup("port", "port PORT", 1, 1, "Remote and local port (default 1194); rport and lport override it whatever their order.", connDirective)),
		withConn(sup("rport", "rport PORT", 1, 1, "Remote port for remotes that do not name one.", connDirective)),
		withConn(sup("lport", "lport PORT", 1, 1, "Local port to bind (implies bind).", connDirective)),
		withConn(sup("local", "local ADDRESS", 1, 1, "Local address to bind (implies bind).", connDirective)),
		withConn(sup("bind", "bind [ipv6only]", 0, 1, "Bind the local socket (default for UDP, port 1194). The ipv6only flag is accepted with a warning but not applied.", applyBind)),
		withConn(sup("nobind", "nobind", 0, 0, "Let the kernel choose the local port.", connDirective)),
		withConn(sup("connect-retry", "connect-retry SECONDS [MAX]", 1, 2, "Wait between connection attempts (default 1), doubling after five tries up to MAX (default 300).", connDirective)),
		withConn(sup("connect-retry-max", "connect-retry-max N|unlimited", 1, 1, "Attempts per connection before giving up (default unlimited).", connDirective)),
		withConn(sup("connect-timeout", "connect-timeout SECONDS", 1, 1, "Time allowed for one connection attempt (default 120).", connDirective)),
		withConn(sup("server-poll-timeout", "server-poll-timeout SECONDS", 1, 1, "Same as connect-timeout.", connDirective)),
		withConn(sup("explicit-exit-notify", "explicit-exit-notify [N]", 0, 1, "Tell the server we are leaving, N tries (default 1 when given, 0 when absent).", connDirective)),
		withInline(sup("connection", "<connection>...</connection>", 0, 0, "A remote with its own proto, port, bind and retry settings; the block may hold only connection-level directives.", applyConnectionBlock)),
		sup("remote-random", "remote-random", 0, 0, "Try the connections in random order.", flagDirective(func(c *Config) { c.RemoteRandom = true })),
		sup("resolv-retry", "resolv-retry SECONDS|infinite", 1, 1, "How long to retry resolving a remote's name (default infinite).", applyResolvRetry),
		withConn(sup("float", "float", 0, 0, "UDP: accept packets from a new server address once they authenticate (data packets that decrypt; control packets that pass tls-auth or tls-crypt) and send to that address from then on. Without float the socket is connected to the server's address and the kernel drops packets from any other.", connDirective)),

		// Device.
		sup("dev", "dev tun|tunN|NAME|null", 1, 1, "The tun device (tun = next free tunN; the default, as in OpenVPN 2.7, when a profile has no dev). tap is refused.", applyDev),
		sup("dev-type", "dev-type tun", 1, 1, "Device type for a device whose name does not start with tun.", applyDevType),
		sup("persist-tun", "persist-tun", 0, 0, "Keep the device across reconnects.", flagDirective(func(c *Config) { c.PersistTun = true })),
		sup("persist-key", "persist-key", 0, 0, "Keep key material across reconnects (ovpnd always does).", flagDirective(func(c *Config) { c.PersistKey = true })),
		sup("tun-mtu", "tun-mtu BYTES", 1, 1, "MTU of the tun device (default 1500).", applyTunMTU),
		sup("tun-max-mtu", "tun-max-mtu BYTES", 1, 1, "Largest tun-mtu a server may push (default 1600, at most 16000); a larger one is clamped.", applyTunMaxMTU),
		ign("link-mtu", "deprecated in OpenVPN 2.6 and not used by ovpnd, which sizes packets from tun-mtu; set tun-mtu instead"),
		sup("mssfix", "mssfix [BYTES [mtu|fixed]]", 0, 2, "Clamp TCP MSS so encapsulated packets fit (default 1492).", applyMSSFix),

		// Authentication material.
		withInline(sup("ca", "ca FILE | <ca>", 0, 1, "CA certificates that sign the server's certificate (PEM).", applyCA)),
		withInline(sup("cert", "cert FILE | <cert>", 0, 1, "Client certificate, optionally followed by its intermediates (PEM).", applyCert)),
		withInline(sup("key", "key FILE | <key>", 0, 1, "Client private key (PEM, PKCS#1, PKCS#8 or SEC 1; not encrypted). Must match cert.", applyKey)),
		withInline(sup("extra-certs", "extra-certs FILE | <extra-certs>", 0, 1, "More certificates sent with the client certificate.", applyExtraCerts)),
		withInline(sup("pkcs12", "pkcs12 FILE | <pkcs12>", 0, 1, "PKCS#12 bundle (base64 when inline) with key, certificate and optionally CAs; no password.", applyPKCS12)),
		withInline(sup("auth-user-pass", "auth-user-pass [FILE] | <auth-user-pass>", 0, 1, "Username/password authentication; without a file ovpnd asks.", applyAuthUserPass)),
		sup("auth-nocache", "auth-nocache", 0, 0, "Forget the password after use.", flagDirective(func(c *Config) { c.AuthNoCache = true })),
		sup("auth-retry", "auth-retry none|nointeract|interact", 1, 1, "What to do after AUTH_FAILED (default none: stop).", applyAuthRetry),
		withInline(sup("peer-fingerprint", "peer-fingerprint SHA256 | <peer-fingerprint>", 0, 1, "Accept a server certificate with this SHA-256 fingerprint; with ca both checks apply.", applyPeerFingerprint)),
		sup("verify-x509-name", "verify-x509-name NAME [subject|name|name-prefix]", 1, 2, "Check the server certificate's subject or common name.", applyVerifyX509Name),
		sup("remote-cert-tls", "remote-cert-tls server|client", 1, 1, "Require a key usage extension and the TLS Web Server (or, for client, TLS Web Client) extended key usage on the server certificate.", applyRemoteCertTLS),
		sup("remote-cert-eku", "remote-cert-eku OID|NAME", 1, 1, "Require this extended key usage on the server certificate.", applyRemoteCertEKU),
		sup("remote-cert-ku", "remote-cert-ku [HEX...]", 0, maxRemoteCertKU, "Require a key usage extension on the server certificate whose value (OpenSSL bit order: digitalSignature 80, nonRepudiation 40, keyEncipherment 20, dataEncipherment 10, keyAgreement 08, keyCertSign 04, cRLSign 02, encipherOnly 01) contains all bits of one of the values; without values the extension only has to be present. After remote-cert-tls it replaces that line's key usage check (and remote-cert-eku its extended key usage check), as in OpenVPN.", applyRemoteCertKU),
		sup("ns-cert-type", "ns-cert-type server|client", 1, 1, "Deprecated (OpenVPN 2.6 warns and still enforces it; use remote-cert-tls): the server certificate must pass OpenSSL's SSL server (or client) purpose check, that is an extended key usage, Netscape certificate type and key usage that allow the purpose where present, or else carry the Netscape certificate type bit for it.", applyNSCertType),
		ref("tls-verify", "ovpnd never runs scripts and will not skip a verification step; use verify-x509-name or peer-fingerprint"),
		withInline(sup("crl-verify", "crl-verify FILE [dir] | <crl-verify>", 0, 2, "Certificate revocation lists (PEM or DER) checked against every certificate of the server's chain at each TLS handshake, as OpenSSL does for OpenVPN: each needs a valid list from its issuer, and a revoked or expired-list chain is refused. ovpnd run and ovpnd instance re-read FILE when it changes; ovpnctl up sends the lists inline. With dir, a file in DIR named by a certificate's decimal serial number revokes it (ovpnd run and ovpnd instance only: the daemon cannot be sent a directory).", applyCRLVerify)),
		ref("verify-hash", "not supported; use peer-fingerprint"),
		ref("capath", "not supported; use ca"),
		sup("askpass", "askpass [FILE]", 0, 1, "Passphrase of an encrypted key or PKCS#12 bundle: the first line of FILE; without FILE (or without askpass) ovpnctl up and ovpnd run ask on the terminal, and ovpnd instance reads the systemd credential askpass. Only the decrypted key ever reaches the daemon, and --print writes it decrypted.", applyAskpass),
		ref("pkcs11-providers", "PKCS#11 tokens are not supported"),
		ref("pkcs11-id", "PKCS#11 tokens are not supported"),
		ref("cryptoapicert", "Windows certificate store only"),
		ref("management-external-key", "external keys are not supported"),
		ref("management-external-cert", "external certificates are not supported"),
		sup("static-challenge", "static-challenge TEXT ECHO [scrv1|concat]", 2, 3, "Ask for a one-time code with the password, showing TEXT (ECHO 1: the code is echoed); sent as SCRV1 or appended to the password (concat).", applyStaticChallenge),

		// Control channel.
		withInline(sup("tls-auth", "tls-auth FILE [0|1] | <tls-auth>", 0, 2, "HMAC-protect the control channel with an OpenVPN static key.", applyWrap(WrapTLSAuth))),
		withInline(sup("tls-crypt", "tls-crypt FILE | <tls-crypt>", 0, 1, "Encrypt and authenticate the control channel with an OpenVPN static key.", applyWrap(WrapTLSCrypt))),
		withInline(sup("tls-crypt-v2", "tls-crypt-v2 FILE | <tls-crypt-v2>", 0, 1, "tls-crypt with a per-client key (client key file).", applyWrap(WrapTLSCryptV2))),
		sup("key-direction", "key-direction 0|1", 1, 1, "Direction of an inline tls-auth key (clients normally use 1).", applyKeyDirection),
		sup("tls-timeout", "tls-timeout SECONDS", 1, 1, "Retransmit an unacknowledged control packet after at most this long (default 2); ovpnd resends sooner once it has measured the round trip (RFC 6298 RTO, at least 0.2 s).", seconds(func(c *Config) *time.Duration { return &c.TLSTimeout })),
		sup("hand-window", "hand-window SECONDS", 1, 1, "Time allowed for a TLS handshake (default 60).", seconds(func(c *Config) *time.Duration { return &c.HandWindow })),
		sup("tran-window", "tran-window SECONDS", 1, 1, "How long the old key keeps working after a rekey (default 3600).", seconds(func(c *Config) *time.Duration { return &c.TranWindow })),
		sup("reneg-sec", "reneg-sec SECONDS [MIN]", 1, 2, "Renegotiate data keys after this long (default 3600, 0 = never).", applyRenegSec),
		sup("reneg-bytes", "reneg-bytes BYTES", 1, 1, "Renegotiate after this many bytes (default 0 = off).", applyRenegCount),
		sup("reneg-pkts", "reneg-pkts PACKETS", 1, 1, "Renegotiate after this many packets (default 0 = off).", applyRenegCount),
		sup("key-method", "key-method 2", 1, 1, "Only key method 2 exists in OpenVPN 2.6.", applyKeyMethod),
		sup("tls-version-min", "tls-version-min 1.0|1.1|1.2|1.3 [or-highest]", 1, 2, "Lowest TLS version (default 1.2).", applyTLSVersion),
		sup("tls-version-max", "tls-version-max 1.0|1.1|1.2|1.3", 1, 1, "Highest TLS version (default none).", applyTLSVersion),
		sup("tls-cipher", "tls-cipher SUITE[:SUITE...]", 1, 1, "TLS 1.2 cipher suites offered, by OpenSSL name (ECDHE-RSA-AES256-GCM-SHA384) or IANA name with dashes (TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384); DEFAULT stands for crypto/tls's defaults. Suites crypto/tls lacks (DHE, CAMELLIA, CCM, CBC-SHA384, ...) and @SECLEVEL are dropped with a warning; unknown names, OpenSSL rules (HIGH, !aNULL) and lists left empty are errors. The order is not applied: crypto/tls ranks suites itself.", applyTLSCipher),
		sup("tls-ciphersuites", "tls-ciphersuites SUITE[:SUITE...]", 1, 1, "TLS 1.3 cipher suites allowed (TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256; dashes accepted). crypto/tls always offers all three, so ovpnd fails a handshake that negotiated a suite not listed; the order is not applied. CCM suites are dropped with a warning; a list naming none of the three is an error.", applyTLSCipherSuites),
		sup("tls-cert-profile", "tls-cert-profile insecure|legacy|preferred|suiteb", 1, 1, "Key and signature rules for the server's certificate chain (every key, every signature but the CA's own): preferred = SHA-2 signatures and RSA of at least 2048 bits, any curve; suiteb = ECDSA P-256/P-384 keys with ECDSA-SHA256/SHA384 signatures only; legacy = also RSA of 1024 bits; insecure = whatever crypto/tls accepts. crypto/tls refuses SHA-1 signed chains and RSA under 1024 bits whatever the profile, so legacy cannot re-enable them. Not applied to the client's own certificate.", applyCertProfile),
		sup("tls-groups", "tls-groups GROUP[:GROUP...]", 1, 1, "TLS key-exchange groups offered, most preferred first, by OpenSSL name: X25519, P-256 (prime256v1, secp256r1), P-384 (secp384r1), P-521 (secp521r1) and the hybrid post-quantum X25519MLKEM768, SecP256r1MLKEM768, SecP384r1MLKEM1024. The first is the one key share sent in the ClientHello. The default, X25519:P-256:P-384:P-521, keeps the first TLS message in one control packet; put X25519MLKEM768 first for post-quantum key exchange (a ClientHello of about 1.5 KB, two control packets). Groups crypto/tls lacks (X448, ffdhe*, brainpool*, pure MLKEM*) are dropped with a warning; unknown names and lists left empty are errors.", applyTLSGroups),
		ign("ecdh-curve", "ovpnd uses Go's TLS key-exchange groups"),

		// Data channel.
		sup("data-ciphers", "data-ciphers CIPHER[:CIPHER...]", 1, 1, "Data ciphers offered for negotiation (default AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305); a ? prefix marks a cipher optional; DEFAULT in the list stands for the default list (OpenVPN 2.7).", applyDataCiphers),
		sup("ncp-ciphers", "ncp-ciphers CIPHER[:CIPHER...]", 1, 1, "Old name of data-ciphers.", applyDataCiphers),
		sup("data-ciphers-fallback", "data-ciphers-fallback CIPHER", 1, 1, "Cipher for servers that cannot negotiate.", applyFallback),
		sup("cipher", "cipher CIPHER", 1, 1, "Legacy cipher. As in OpenVPN 2.6 and 2.7 it takes no part in negotiation: only data-ciphers (default or explicit) is offered, and a cipher missing from it draws OpenVPN's warning. Use data-ciphers-fallback for servers that cannot negotiate.", applyCipher),
		sup("auth", "auth DIGEST", 1, 1, "HMAC digest for tls-auth and CBC ciphers (default SHA1).", applyAuth),
		gone("ncp-disable", "removed in OpenVPN 2.6"),
		gone("keysize", "removed in OpenVPN 2.6"),
		ref("no-replay", "disabling replay protection is not supported"),
		sup("replay-window", "replay-window N [SECONDS]", 1, 2, "Data-channel replay window size in packets (default 64). The time part (default 15) is not applied: ovpnd's data-channel window checks packet ids only, so a SECONDS other than 15 draws a warning.", applyReplayWindow),
		sup("comp-lzo", "comp-lzo [yes|no|adaptive]", 0, 1, "LZO compression framing; ovpnd never compresses, and decompresses only with allow-compression.", applyCompression),
		sup("compress", "compress [stub|stub-v2|lzo|lz4|lz4-v2]", 0, 1, "Compression framing; ovpnd never compresses, and decompresses only with allow-compression.", applyCompression),
		sup("allow-compression", "allow-compression no|asym|yes", 1, 1, "Whether compressed packets from the server are accepted (default asym: decompress, never compress; yes behaves as asym; no drops them).", applyAllowCompression),
		sup("fragment", "fragment BYTES [mtu]", 1, 2, "UDP only: OpenVPN's data-channel fragmentation, both ways; data packets larger than BYTES of UDP payload (with mtu: of IP datagram) are sent in pieces and the server's pieces are reassembled. The server must use fragment too. Without an mssfix value, mssfix defaults to \"BYTES mtu\" as in OpenVPN.", applyFragment),

		// Keepalive.
		sup("ping", "ping SECONDS", 1, 1, "Send a keepalive after this much silence (default 0 = never).", applyPing),
		sup("ping-restart", "ping-restart SECONDS", 1, 1, "Reconnect after this much silence from the server (default 120 when pulling).", applyPingTimeout),
		sup("ping-exit", "ping-exit SECONDS", 1, 1, "Exit after this much silence from the server.", applyPingTimeout),
		sup("keepalive", "keepalive PING TIMEOUT", 2, 2, "Shorthand for ping PING and ping-restart TIMEOUT.", applyKeepalive),
		ign("ping-timer-rem", "ovpnd always runs the ping timer"),

		// Network settings.
		sup("ifconfig", "ifconfig LOCAL REMOTE|NETMASK", 2, 2, "IPv4 tunnel address (usually pushed).", applyNet),
		sup("ifconfig-ipv6", "ifconfig-ipv6 ADDRESS/BITS [REMOTE]", 1, 2, "IPv6 tunnel address (usually pushed).", applyNet),
		sup("topology", "topology net30|p2p|subnet", 1, 1, "Meaning of ifconfig (default net30; servers push subnet).", applyNet),
		sup("route", "route NETWORK [NETMASK [GATEWAY [METRIC]]]", 1, 4, "An IPv4 route into the tunnel.", applyNet),
		sup("route-ipv6", "route-ipv6 NETWORK/BITS [GATEWAY [METRIC]]", 1, 3, "An IPv6 route into the tunnel.", applyNet),
		sup("route-gateway", "route-gateway ADDRESS|dhcp", 1, 1, "Default gateway for routes.", applyNet),
		sup("route-ipv6-gateway", "route-ipv6-gateway ADDRESS", 1, 1, "Default gateway for IPv6 routes.", applyNet),
		sup("route-metric", "route-metric N", 1, 1, "Default metric for routes.", applyNet),
		sup("route-delay", "route-delay [SECONDS [WINDOW]]", 0, 2, "Wait before adding routes.", applyRouteDelay),
		sup("route-nopull", "route-nopull", 0, 0, "Ignore pushed routes, redirect-gateway and DNS settings.", flagDirective(func(c *Config) { c.RouteNoPull = true })),
		sup("route-noexec", "route-noexec", 0, 0, "Do not add routes (the user does).", flagDirective(func(c *Config) { c.RouteNoExec = true })),
		sup("ifconfig-noexec", "ifconfig-noexec", 0, 0, "Do not configure addresses (the user does).", flagDirective(func(c *Config) { c.IfconfigNoExec = true })),
		sup("redirect-gateway", "redirect-gateway [def1] [bypass-dhcp] [bypass-dns] [local] [autolocal] [block-local] [ipv6] [!ipv4]", 0, 8, "Send all traffic through the tunnel.", applyNet),
		sup("redirect-private", "redirect-private [FLAGS]", 0, 8, "Like redirect-gateway but only adds the routes to the server.", applyNet),
		sup("dhcp-option", "dhcp-option DNS|DNS6|DOMAIN|DOMAIN-SEARCH|... VALUE", 1, 3, "Resolver settings, applied through systemd-resolved.", applyNet),
		sup("dns", "dns search-domains D... | dns server N address|resolve-domains|dnssec|transport|sni ...", 2, -1, "OpenVPN 2.6 resolver settings; they take precedence over dhcp-option DNS.", applyNet),
		sup("dns-updown", "dns-updown disable", 1, 1, "OpenVPN 2.7's script that applies pushed DNS. Only disable is accepted, and changes nothing: ovpnd never runs scripts and applies DNS itself (ovpnd --dns-mode). A script path or force is refused.", applyDNSUpdown),
		ref("route-table", "ovpnd installs routes in the main routing table only (OpenVPN 2.7's route-table puts them into another table)"),
		sup("block-ipv6", "block-ipv6", 0, 0, "Answer IPv6 sent into the tunnel with ICMPv6 no-route instead of sending it (see networking.md).", applyNet),
		sup("pull-filter", "pull-filter accept|ignore|reject TEXT", 2, 2, "Filter pushed options that start with TEXT; the first matching rule wins.", applyPullFilter),
		ign("allow-pull-fqdn", "ovpnd accepts host names in pushed routes"),
		ign("route-method", "Windows only"),
		ign("ip-win32", "Windows only"),
		ign("block-outside-dns", "Windows only; on Linux ovpnd routes DNS through systemd-resolved"),
		ign("register-dns", "Windows only"),
		ign("dhcp-renew", "Windows only"),
		ign("dhcp-release", "Windows only"),
		ign("tap-sleep", "Windows only"),
		ign("allow-recursive-routing", "ovpnd always excludes the server's address from tunnel routes"),
		ign("max-routes", "removed in OpenVPN 2.4; ovpnd has its own bound"),
		ign("tun-ipv6", "obsolete: IPv6 in the tunnel is always available"),
		ign("txqueuelen", "the kernel default is kept"),
		ign("mtu-disc", "path MTU discovery follows the kernel default"),
		ign("mtu-test", "not implemented; set tun-mtu and mssfix"),
		ign("tun-mtu-extra", "only meaningful for tap devices"),
		ign("dev-node", "ovpnd opens /dev/net/tun"),
		ign("lladdr", "only meaningful for tap devices"),
		ign("iproute", "ovpnd configures the network through netlink"),
		sup("http-proxy", "http-proxy HOST PORT [AUTHFILE|stdin|auto|auto-nct] [none|basic]", 2, 4, "Connect through an HTTP proxy with CONNECT (TCP only). With AUTHFILE (username and password lines, or an inline <http-proxy-user-pass>) Basic credentials go with the request; stdin asks for them; auto answers the proxy's Basic challenge, asking when no credentials are given; auto-nct refuses clear-text Basic. NTLM is refused. The bypass route goes to the proxy.", applyHTTPProxy),
		sup("http-proxy-option", "http-proxy-option VERSION 1.0|1.1 | AGENT STRING | CUSTOM-HEADER NAME [CONTENT]", 2, 3, "HTTP version (default 1.0; 1.1 adds a Host header), User-Agent and extra headers (EXT1/EXT2 are other names of CUSTOM-HEADER; at most 10) of the CONNECT request.", applyHTTPProxyOption),
		sup("socks-proxy", "socks-proxy HOST [PORT] [AUTHFILE|stdin]", 1, 3, "Connect through a SOCKS5 proxy (port 1080 by default): CONNECT for TCP, UDP ASSOCIATE for UDP (IPv4, as in OpenVPN). AUTHFILE holds a username and password for RFC 1929 authentication; stdin asks for them. The bypass route goes to the proxy.", applySOCKSProxy),
		withInline(sup("http-proxy-user-pass", "http-proxy-user-pass FILE | <http-proxy-user-pass>", 0, 1, "The HTTP proxy's username and password (overrides http-proxy's AUTHFILE).", applyHTTPProxyUserPass)),
		withInline(sup("socks-proxy-user-pass", "<socks-proxy-user-pass>", 0, 0, "ovpnd's inline form of socks-proxy credentials, which --print writes (OpenVPN reads them only from a file).", applySOCKSProxyUserPass)),
		ref("client-nat", "not supported"),
		ref("ifconfig-pool", "server option"),
		ref("push", "server option"),
		ref("client-to-client", "server option"),
		ref("cd", "ovpnd resolves relative paths against the configuration file's folder"),

		// Scripts and process handling: ovpnd never runs scripts.
		ign("script-security", "ovpnd never runs scripts"),
		ign("up", "ovpnd never runs scripts; it configures addresses, routes and DNS itself"),
		ign("down", "ovpnd never runs scripts; it undoes its own changes"),
		ign("route-up", "ovpnd never runs scripts"),
		ign("route-pre-down", "ovpnd never runs scripts"),
		ign("ipchange", "ovpnd never runs scripts"),
		ign("learn-address", "ovpnd never runs scripts"),
		ign("up-restart", "ovpnd never runs scripts"),
		ign("up-delay", "ovpnd never runs scripts"),
		ign("down-pre", "ovpnd never runs scripts"),
		ign("user", "the ovpnd daemon manages its own privileges"),
		ign("group", "the ovpnd daemon manages its own privileges"),
		ign("chroot", "the ovpnd daemon manages its own sandbox"),
		ign("daemon", "ovpnd runs as a systemd service"),
		ign("writepid", "ovpnd runs as a systemd service"),
		ign("log", "ovpnd logs to the journal"),
		ign("log-append", "ovpnd logs to the journal"),
		ign("syslog", "ovpnd logs to the journal"),
		ign("suppress-timestamps", "ovpnd logs to the journal"),
		ign("machine-readable-output", "ovpnd logs to the journal"),
		ign("status", "ovpnd reports status over its D-Bus API"),
		ign("status-version", "ovpnd reports status over its D-Bus API"),
		ign("management", "ovpnd has its own D-Bus API"),
		ign("management-query-passwords", "ovpnd asks for credentials over its D-Bus API"),
		ign("management-hold", "ovpnd has its own D-Bus API"),
		ign("management-client", "ovpnd has its own D-Bus API"),
		ign("setenv", "ovpnd never runs scripts, so environment variables have no reader"),
		ign("setenv-safe", "ovpnd never runs scripts"),
		ign("mute-replay-warnings", "ovpnd counts replays instead of logging each"),
		ign("ifconfig-nowarn", "ovpnd does not compare option strings with the server"),
		ign("passtos", "not implemented; packets are sent with the default TOS"),
		ign("sndbuf", "ovpnd sizes socket buffers itself"),
		ign("rcvbuf", "ovpnd sizes socket buffers itself"),
		ign("socket-flags", "ovpnd sets socket options itself"),
		ign("fast-io", "ovpnd's I/O is always non-blocking"),
		ign("nice", "set the service's priority in systemd instead"),
		ign("mlock", "set memory locking in systemd instead"),
		ign("engine", "ovpnd does not use OpenSSL engines"),
		ign("providers", "ovpnd does not use OpenSSL providers"),
		ign("push-peer-info", "ovpnd always sends the peer info a server needs"),
		ign("persist-local-ip", "ovpnd always keeps the local address"),
		ign("persist-remote-ip", "ovpnd always re-resolves the remote"),
		ign("remote-random-hostname", "not implemented; names are resolved as written"),
		ign("inactive", "not implemented; the tunnel stays up while idle"),
		ign("single-session", "server option"),
		ign("tls-exit", "not implemented; TLS errors lead to a reconnect"),
		ign("disable-occ", "ovpnd does not send option-consistency messages"),
		ign("opt-verify", "server option"),
		ign("dh", "server option; clients do not need Diffie-Hellman parameters"),
		ign("x509-track", "ovpnd never runs scripts"),
		ign("tls-export-cert", "ovpnd never runs scripts"),
		ign("bind-dev", "VRF binding is not implemented"),
		ign("mark", "ovpnd marks its own packets for routing"),
		ign("auth-user-pass-optional", "server option"),
		ign("comp-noadapt", "ovpnd never compresses"),
		ign("http-proxy-retry", "deprecated and without effect in OpenVPN 2.6 (a failed proxy connection is retried like any other)"),
		ign("socks-proxy-retry", "deprecated and without effect in OpenVPN 2.6 (a failed proxy connection is retried like any other)"),
		sup("verb", "verb 0-11", 1, 1, "Log verbosity (default 1); a later verb overrides an earlier one.", applyVerb),
		sup("mute", "mute N", 1, 1, "Log at most N consecutive lines of the same kind, then count the rest (0: no limit); ovpnd also rate-limits its log.", applyMute),
		sup("ignore-unknown-option", "ignore-unknown-option NAME...", 1, -1, "Warn about the listed unknown directives instead of failing.", applyIgnoreUnknown),

		// Only in PUSH_REPLY.
		pushonly("auth-token", "auth-token TOKEN", "Session token that replaces the password on reconnects."),
		pushonly("auth-token-user", "auth-token-user BASE64", "Username to use with auth-token."),
		pushonly("peer-id", "peer-id N", "Peer id for DATA_V2 packets."),
		pushonly("protocol-flags", "protocol-flags FLAG...", "cc-exit, tls-ekm, dyn-tls-crypt, aead-epoch."),
		pushonly("key-derivation", "key-derivation tls-ekm", "Derive data keys with the TLS exporter."),
		pushonly("push-continuation", "push-continuation 1|2", "Marks a PUSH_REPLY split over several messages."),
	}
}

func applyConnectionBlock(p *parser, s *scope, it *item) error {
	if len(p.blocks) >= MaxConnections {
		return fmt.Errorf("more than %d <connection> blocks", MaxConnections)
	}
	if !it.isInline {
		// "connection FILE" reads a file holding the block's directives.
		data, err := p.material(it)
		if err != nil {
			return err
		}
		it = &item{line: it.line, name: it.name, inline: data, isInline: true, blockLine: it.line}
	}
	b := &scope{seen: map[string]seenVal{}, isBlock: true, blockLn: it.blockLine}
	items := lex(it.inline, it.blockLine, p.errf)
	for _, x := range items {
		if x.name == "connection" {
			p.errf(x.line, "<connection> blocks cannot be nested")
			return nil
		}
	}
	p.run(items, b)
	p.blocks = append(p.blocks, b)
	return nil
}

func applyResolvRetry(p *parser, s *scope, it *item) error {
	d := ResolvRetryInfinite
	if it.args[0] != "infinite" {
		var err error
		if d, err = parseSeconds(it.args[0]); err != nil {
			return err
		}
	}
	if p.once(s, it, it.name, it.args[0]) {
		p.cfg.ResolvRetry = d
	}
	return nil
}

func applyDev(p *parser, s *scope, it *item) error {
	name := it.args[0]
	if len(name) > 15 || name == "" || strings.ContainsAny(name, "/ \t") {
		return fmt.Errorf("%q is not a valid interface name (at most 15 characters, no / or spaces)", name)
	}
	if strings.HasPrefix(name, "tap") {
		return errors.New("tap devices (layer-2 bridging) are not supported; use dev tun")
	}
	if !p.once(s, it, "dev", name) {
		return nil
	}
	p.cfg.Dev = name
	if name == "null" {
		p.cfg.DevType = DevNull
	}
	return nil
}

func applyDevType(p *parser, s *scope, it *item) error {
	switch it.args[0] {
	case "tun":
	case "tap":
		return errors.New("tap devices (layer-2 bridging) are not supported")
	default:
		return fmt.Errorf("unknown device type %q", it.args[0])
	}
	p.once(s, it, it.name, it.args[0])
	return nil
}

func applyTunMTU(p *parser, s *scope, it *item) error {
	n, err := parseTunMTU(it.args[0])
	if err != nil {
		return err
	}
	if p.once(s, it, it.name, it.args[0]) {
		p.cfg.TunMTU = n
	}
	return nil
}

// MaxTunMaxMTU bounds tun-max-mtu: the session's receive buffers (16 KiB) hold one packet of
// that size plus the data channel's overhead.
const MaxTunMaxMTU = 16000

func applyTunMaxMTU(p *parser, s *scope, it *item) error {
	n, err := parseTunMTU(it.args[0])
	if err != nil {
		return err
	}
	if n > MaxTunMaxMTU {
		return fmt.Errorf("%d is above %d, the largest packet ovpnd's receive buffers hold", n, MaxTunMaxMTU)
	}
	if p.once(s, it, it.name, it.args[0]) {
		p.cfg.TunMaxMTU = n
	}
	return nil
}

func applyMSSFix(p *parser, s *scope, it *item) error {
	n, mtu, fixed, err := parseMSSFix(it.args)
	if err != nil {
		return err
	}
	if p.once(s, it, it.name, strings.Join(it.args, " ")) {
		p.cfg.MSSFix, p.cfg.MSSFixMTU, p.cfg.MSSFixFixed = n, mtu, fixed
		p.cfg.MSSFixDefault = len(it.args) == 0
	}
	return nil
}

// certsDirective loads the certificates of ca, cert or extra-certs and hands them, with the
// line that named them, to store.
func certsDirective(store func(p *parser, it *item, certs []*x509.Certificate)) func(p *parser, s *scope, it *item) error {
	return func(p *parser, s *scope, it *item) error {
		if !p.once(s, it, it.name, it.argString()) {
			return nil
		}
		// Record the line even if loading fails, so later checks (cert without key, ...)
		// do not pile a second error on the first.
		store(p, it, nil)
		data, err := p.material(it)
		if err != nil {
			return err
		}
		certs, err := parseCerts(data)
		if err != nil {
			return materialErr(it, err)
		}
		store(p, it, certs)
		return nil
	}
}

var (
	applyCA = certsDirective(func(p *parser, it *item, certs []*x509.Certificate) {
		p.caItem, p.caCerts = it, certs
	})
	applyCert = certsDirective(func(p *parser, it *item, certs []*x509.Certificate) {
		p.certItem, p.certChain = it, certs
	})
	applyExtraCerts = certsDirective(func(p *parser, it *item, certs []*x509.Certificate) {
		p.extraItem, p.extra = it, certs
	})
)

func applyKey(p *parser, s *scope, it *item) error {
	if !p.once(s, it, it.name, it.argString()) {
		return nil
	}
	p.keyItem = it
	data, err := p.material(it)
	if err != nil {
		return err
	}
	k, norm, err := parseKey(data)
	if errors.Is(err, errKeyEncrypted) {
		// Decrypted in finish, once askpass (which may come later) is known.
		p.encKey = data
		return nil
	}
	if err != nil {
		return materialErr(it, err)
	}
	p.key, p.keyPEM = k, norm
	return nil
}

func applyPKCS12(p *parser, s *scope, it *item) error {
	if !p.once(s, it, it.name, it.argString()) {
		return nil
	}
	p.p12Item = it
	if p.open == nil {
		// Profiles parsed without file access come from unprivileged callers over D-Bus. A
		// bundle names its own key-derivation cost, even inside encrypted content that cannot
		// be checked before doing the work, so it could keep the root daemon busy without
		// end; ovpnctl sends certificate and key as PEM instead (ovpnctl check --print).
		return errors.New("PKCS#12 is not accepted in profiles sent to the daemon; send the certificate and key as PEM (ovpnctl check --print converts it)")
	}
	data, err := p.material(it)
	if err != nil {
		return err
	}
	if it.isInline {
		if data, err = decodeInlinePKCS12(data); err != nil {
			return materialErr(it, err)
		}
	}
	k, cert, cas, err := parsePKCS12(data)
	if errors.Is(err, errKeyEncrypted) {
		p.encP12 = data
		return nil
	}
	if err != nil {
		return materialErr(it, err)
	}
	p.p12Key, p.p12Cert, p.p12CAs = k, cert, cas
	return nil
}

func applyAuthUserPass(p *parser, s *scope, it *item) error {
	if !p.once(s, it, it.name, it.argString()) {
		return nil
	}
	if !it.isInline && len(it.args) == 0 {
		p.cfg.AuthUserPass = &AuthUserPass{Ask: true}
		return nil
	}
	data, err := p.material(it)
	if err != nil {
		return err
	}
	a, err := parseUserPass(data)
	if err != nil {
		return materialErr(it, err)
	}
	p.cfg.AuthUserPass = a
	p.cfg.src.authUserPass = data
	return nil
}

func applyCRLVerify(p *parser, s *scope, it *item) error {
	if !p.once(s, it, it.name, it.argString()) {
		return nil
	}
	if !it.isInline && len(it.args) == 2 {
		if it.args[1] != "dir" {
			return fmt.Errorf("unknown flag %q (want dir)", it.args[1])
		}
		if p.dir == "" {
			return errors.New("crl-verify DIR dir needs the profile's own folder: only ovpnd run and ovpnd instance can use it (the daemon cannot be sent a directory; give a CRL file instead)")
		}
		d := it.args[0]
		if !filepath.IsAbs(d) {
			d = filepath.Join(p.dir, d)
		}
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return fmt.Errorf("%s is not a directory", d)
		}
		p.cfg.CRL = &CRL{Dir: d}
		return nil
	}
	if it.isInline && len(it.args) > 0 {
		return fmt.Errorf("unexpected argument %q after the inline block", it.args[0])
	}
	data, err := p.material(it)
	if err != nil {
		return err
	}
	norm, err := ParseCRLs(data)
	if err != nil {
		return materialErr(it, err)
	}
	r := &CRL{PEM: norm}
	if !it.isInline && p.dir != "" {
		r.Path = it.args[0]
		if !filepath.IsAbs(r.Path) {
			r.Path = filepath.Join(p.dir, r.Path)
		}
	}
	p.cfg.CRL = r
	return nil
}

func applyAskpass(p *parser, s *scope, it *item) error {
	if !p.once(s, it, it.name, it.argString()) || len(it.args) == 0 {
		return nil
	}
	data, err := p.material(it)
	if err != nil {
		return err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	p.askpass = bytes.TrimSuffix(line, []byte("\r"))
	return nil
}

func applyAuthRetry(p *parser, s *scope, it *item) error {
	for i, n := range authRetryNames {
		if it.args[0] == n {
			if p.once(s, it, it.name, n) {
				p.cfg.AuthRetry = AuthRetry(i)
			}
			return nil
		}
	}
	return fmt.Errorf("unknown policy %q (want none, nointeract or interact)", it.args[0])
}

// maxChallengeText bounds the static-challenge prompt text.
const maxChallengeText = 1024

func applyStaticChallenge(p *parser, s *scope, it *item) error {
	sc := &StaticChallenge{Text: it.args[0]}
	if len(sc.Text) > maxChallengeText {
		return fmt.Errorf("text is longer than %d bytes", maxChallengeText)
	}
	// OpenVPN reads ECHO with atoi: any non-zero number echoes.
	n, err := strconv.Atoi(it.args[1])
	if err != nil {
		return fmt.Errorf("ECHO must be 0 or 1, not %q", it.args[1])
	}
	sc.Echo = n != 0
	if len(it.args) == 3 {
		switch it.args[2] {
		case "scrv1":
		case "concat":
			sc.Concat = true
		default:
			return fmt.Errorf("unknown format %q (want scrv1 or concat)", it.args[2])
		}
	}
	if p.once(s, it, it.name, strings.Join(it.args, " ")) {
		p.cfg.StaticChallenge = sc
	}
	return nil
}

func applyPeerFingerprint(p *parser, s *scope, it *item) error {
	var fps [][32]byte
	if it.isInline {
		var err error
		if fps, err = parseFingerprintBlock(it.inline); err != nil {
			return materialErr(it, err)
		}
	} else {
		if len(it.args) != 1 {
			return errors.New("needs a fingerprint or an inline block")
		}
		fp, err := parseFingerprint(it.args[0])
		if err != nil {
			return err
		}
		fps = [][32]byte{fp}
	}
	if len(p.cfg.PeerFingerprints)+len(fps) > MaxListEntries {
		return errors.New("too many fingerprints")
	}
	p.cfg.PeerFingerprints = append(p.cfg.PeerFingerprints, fps...)
	return nil
}

func applyVerifyX509Name(p *parser, s *scope, it *item) error {
	v := &VerifyX509Name{Name: it.args[0], Type: "subject"}
	if len(it.args) > 1 {
		v.Type = it.args[1]
	}
	switch v.Type {
	case "subject", "name", "name-prefix":
	default:
		return fmt.Errorf("unknown type %q (want subject, name or name-prefix)", v.Type)
	}
	if p.once(s, it, it.name, v.Name+"\x00"+v.Type) {
		p.cfg.VerifyX509Name = v
	}
	return nil
}

func applyRemoteCertTLS(p *parser, s *scope, it *item) error {
	if it.args[0] != "server" && it.args[0] != "client" {
		return fmt.Errorf("want server or client, not %q", it.args[0])
	}
	if it.args[0] == "client" {
		p.warnf(it.line, "remote-cert-tls client expects the server to present a client certificate; this is almost always a mistake for a client profile")
	}
	if p.once(s, it, it.name, it.args[0]) {
		// remote-cert-tls sets both the key usage and the extended key usage checks, so it
		// replaces an earlier remote-cert-ku or remote-cert-eku (OpenVPN: the later line wins).
		for _, k := range []string{"remote-cert-ku", "remote-cert-eku"} {
			if prev := s.seen[k]; prev.it != nil {
				p.overrideWarning(it, prev.it)
				delete(s.seen, k)
			}
		}
		p.cfg.RemoteCertKU, p.cfg.RemoteCertEKU = nil, ""
		p.cfg.RemoteCertTLS = it.args[0]
		p.remoteCertTLSItem = it
	}
	return nil
}

// splitRemoteCertTLS handles remote-cert-ku or remote-cert-eku after remote-cert-tls: as in
// OpenVPN the later line replaces its part of remote-cert-tls, and the other part stays.
func (p *parser) splitRemoteCertTLS(it *item) {
	if p.cfg.RemoteCertTLS == "" {
		return
	}
	prev := p.remoteCertTLSItem
	oid := oidServerAuth
	if p.cfg.RemoteCertTLS == "client" {
		oid = oidClientAuth
	}
	part := "key usage"
	if it.name == "remote-cert-ku" {
		p.cfg.RemoteCertEKU = oid
	} else {
		part = "extended key usage"
		p.cfg.RemoteCertKU = []uint16{KURequired}
	}
	p.warnf(it.line, "%s overrides the %s check of %s on line %d (the later line wins, as in OpenVPN)", describe(it), part, describe(prev), prev.line)
	p.cfg.RemoteCertTLS = ""
	p.remoteCertTLSItem = nil
	delete(p.global.seen, "remote-cert-tls")
}

// Extended key usages that remote-cert-tls server and client require.
const (
	oidServerAuth = "1.3.6.1.5.5.7.3.1"
	oidClientAuth = "1.3.6.1.5.5.7.3.2"
)

func applyNSCertType(p *parser, s *scope, it *item) error {
	if it.args[0] != "server" && it.args[0] != "client" {
		return fmt.Errorf("want server or client, not %q", it.args[0])
	}
	if p.once(s, it, it.name, it.args[0]) {
		// OpenVPN 2.6's own words for it.
		p.warnf(it.line, "--ns-cert-type is DEPRECATED.  Use --remote-cert-tls instead. (ovpnd still enforces it, as OpenVPN does.)")
		p.cfg.NSCertType = it.args[0]
	}
	return nil
}

func applyRemoteCertEKU(p *parser, s *scope, it *item) error {
	if p.once(s, it, it.name, it.args[0]) {
		p.splitRemoteCertTLS(it)
		p.cfg.RemoteCertEKU = it.args[0]
	}
	return nil
}

// KURequired as the first RemoteCertKU value means "remote-cert-ku" without values: the key
// usage extension must be present, whatever it holds (OpenVPN's OPENVPN_KU_REQUIRED).
const KURequired = 0xFFFF

// maxRemoteCertKU bounds the values of remote-cert-ku (OpenVPN reads at most MAX_PARMS).
const maxRemoteCertKU = 16

func applyRemoteCertKU(p *parser, s *scope, it *item) error {
	kus := []uint16{KURequired}
	if len(it.args) > 0 {
		kus = kus[:0]
	}
	for _, a := range it.args {
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(a), "0x"), 16, 16)
		if err != nil {
			return fmt.Errorf("key usage %q is not a hex number of at most 4 digits", a)
		}
		kus = append(kus, uint16(n))
	}
	if p.once(s, it, it.name, strings.Join(it.args, " ")) {
		p.splitRemoteCertTLS(it)
		p.cfg.RemoteCertKU = kus
	}
	return nil
}

// applyBind records bind; the ipv6only flag has no reader in the session, so say so.
func applyBind(p *parser, s *scope, it *item) error {
	if len(it.args) == 1 && it.args[0] == "ipv6only" {
		p.warnf(it.line, "bind ipv6only: the ipv6only flag is not applied; the socket is bound without IPV6_V6ONLY")
	}
	return connDirective(p, s, it)
}

func applyWrap(mode WrapMode) func(p *parser, s *scope, it *item) error {
	return func(p *parser, s *scope, it *item) error {
		if !p.once(s, it, "tls-wrap", it.name+"\x00"+it.argString()) {
			return nil
		}
		dir := KeyDirBidi
		extra := it.args
		if !it.isInline && len(extra) > 0 {
			extra = extra[1:]
		}
		if len(extra) > 0 {
			if mode != WrapTLSAuth {
				return fmt.Errorf("unexpected argument %q", extra[0])
			}
			switch extra[0] {
			case "0":
				dir = KeyDir0
			case "1":
				dir = KeyDir1
			default:
				return fmt.Errorf("key direction %q is not 0 or 1", extra[0])
			}
		}
		data, err := p.material(it)
		if err != nil {
			return err
		}
		w := TLSWrap{Mode: mode, Direction: KeyDirBidi}
		if mode == WrapTLSCryptV2 {
			ck, err := statickey.ParseTLSCryptV2Client(data)
			if err != nil {
				return materialErr(it, err)
			}
			kb := ck.Key.Bytes()
			w.Key, w.WKc, w.PEM = kb[:], ck.WKc, ck.EncodePEM()
		} else {
			key, err := statickey.ParseStaticKey(data)
			if err != nil {
				return materialErr(it, err)
			}
			kb := key.Bytes()
			w.Key = kb[:]
		}
		if dir == KeyDirBidi && mode == WrapTLSAuth {
			dir = p.overriddenDir
		}
		p.cfg.TLSWrap = w
		p.wrapItem, p.wrapDir = it, dir
		return nil
	}
}

// noteOverriddenDirection keeps the key direction of a tls-auth line that a later one
// replaces (OpenVPN sets the direction as it reads each line).
func (p *parser) noteOverriddenDirection(it *item) {
	a := it.args
	if !it.isInline && len(a) > 0 {
		a = a[1:]
	}
	if len(a) == 1 && (a[0] == "0" || a[0] == "1") {
		p.overriddenDir = KeyDirection(a[0][0] - '0')
	}
}

func applyKeyDirection(p *parser, s *scope, it *item) error {
	if it.args[0] != "0" && it.args[0] != "1" {
		return fmt.Errorf("%q is not 0 or 1", it.args[0])
	}
	if p.once(s, it, it.name, it.args[0]) {
		p.keyDirItem = it
	}
	return nil
}

func applyRenegSec(p *parser, s *scope, it *item) error {
	d, err := parseSeconds(it.args[0])
	if err != nil {
		return err
	}
	if len(it.args) > 1 {
		if _, err := parseSeconds(it.args[1]); err != nil {
			return err
		}
	}
	if p.once(s, it, it.name, strings.Join(it.args, " ")) {
		p.cfg.RenegInterval = d
	}
	return nil
}

func applyRenegCount(p *parser, s *scope, it *item) error {
	n, err := strconv.ParseInt(it.args[0], 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a non-negative number", it.args[0])
	}
	if !p.once(s, it, it.name, it.args[0]) {
		return nil
	}
	if it.name == "reneg-bytes" {
		p.cfg.RenegBytes = n
	} else {
		p.cfg.RenegPkts = n
	}
	return nil
}

func applyKeyMethod(p *parser, s *scope, it *item) error {
	if it.args[0] != "2" {
		return fmt.Errorf("key method %s is not supported (only 2)", it.args[0])
	}
	return nil
}

var tlsVersions = map[string]uint16{"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

func tlsVersionName(v uint16) string {
	for k, x := range tlsVersions {
		if x == v {
			return k
		}
	}
	return ""
}

func applyTLSVersion(p *parser, s *scope, it *item) error {
	v, ok := tlsVersions[it.args[0]]
	if !ok {
		return fmt.Errorf("unknown TLS version %q (want 1.0, 1.1, 1.2 or 1.3)", it.args[0])
	}
	tv := TLSVersion{Version: v}
	if len(it.args) > 1 {
		if it.args[1] != "or-highest" {
			return fmt.Errorf("unknown flag %q (want or-highest)", it.args[1])
		}
		tv.OrHighest = true
	}
	if !p.once(s, it, it.name, strings.Join(it.args, " ")) {
		return nil
	}
	if it.name == "tls-version-min" {
		if v < tls.VersionTLS12 && !tv.OrHighest {
			p.warnf(it.line, "TLS %s is obsolete; ovpnd negotiates TLS 1.2 or later anyway", it.args[0])
		}
		p.cfg.TLSVersionMin = tv
	} else {
		if v < tls.VersionTLS12 {
			return fmt.Errorf("TLS %s is below the TLS 1.2 that ovpnd requires", it.args[0])
		}
		p.cfg.TLSVersionMax = tv
	}
	return nil
}

func applyCertProfile(p *parser, s *scope, it *item) error {
	switch it.args[0] {
	case "insecure", "legacy", "preferred", "suiteb":
	default:
		return fmt.Errorf("unknown profile %q", it.args[0])
	}
	if p.once(s, it, it.name, it.args[0]) {
		p.cfg.TLSCertProfile = it.args[0]
	}
	return nil
}

func applyDNSUpdown(p *parser, s *scope, it *item) error {
	if it.args[0] != "disable" {
		return fmt.Errorf("%q is refused: ovpnd never runs scripts and applies pushed DNS itself (see ovpnd --dns-mode); only \"dns-updown disable\" is accepted", it.args[0])
	}
	p.once(s, it, it.name, it.args[0])
	return nil
}

// defaultDataCiphers is OpenVPN's default data-ciphers list (ovpnd has ChaCha20-Poly1305).
var defaultDataCiphers = []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"}

// supportedCiphers are the data-channel ciphers ovpnd implements.
var supportedCiphers = map[string]bool{
	"AES-128-GCM": true, "AES-192-GCM": true, "AES-256-GCM": true, "CHACHA20-POLY1305": true,
	"AES-128-CBC": true, "AES-192-CBC": true, "AES-256-CBC": true,
}

func applyDataCiphers(p *parser, s *scope, it *item) error {
	if !p.once(s, it, "data-ciphers", it.args[0]) {
		return nil
	}
	var list []string
	for _, c := range strings.Split(it.args[0], ":") {
		optional := strings.HasPrefix(c, "?")
		name := strings.ToUpper(strings.TrimPrefix(c, "?"))
		switch {
		case name == "DEFAULT":
			// OpenVPN 2.7 (ssl_ncp.c options_postprocess_setdefault_ncpciphers): the
			// default list in place of the word.
			for _, d := range defaultDataCiphers {
				if !containsFold(list, d) {
					list = append(list, d)
				}
			}
		case supportedCiphers[name]:
			if !containsFold(list, name) {
				list = append(list, name)
			}
		case optional:
			p.warnf(it.line, "dropping optional cipher %s: not supported by ovpnd", name)
		default:
			return fmt.Errorf("cipher %q is not supported (supported: AES-128-GCM, AES-192-GCM, AES-256-GCM, CHACHA20-POLY1305, AES-128-CBC, AES-192-CBC, AES-256-CBC; prefix with ? to make it optional)", c)
		}
	}
	if len(list) == 0 {
		return errors.New("no supported cipher in the list")
	}
	if len(list) > 64 {
		return errors.New("more than 64 ciphers")
	}
	p.cfg.DataCiphers = list
	return nil
}

func applyFallback(p *parser, s *scope, it *item) error {
	name := strings.ToUpper(it.args[0])
	if !supportedCiphers[name] {
		return fmt.Errorf("cipher %q is not supported", it.args[0])
	}
	if p.once(s, it, it.name, name) {
		p.cfg.DataCiphersFallback = name
	}
	return nil
}

func applyCipher(p *parser, s *scope, it *item) error {
	if p.once(s, it, it.name, strings.ToUpper(it.args[0])) {
		p.cfg.Cipher = it.args[0]
		p.cipherItem = it
	}
	return nil
}

var digests = map[string]bool{"SHA1": true, "SHA224": true, "SHA256": true, "SHA384": true, "SHA512": true, "MD5": true, "NONE": true}

func applyAuth(p *parser, s *scope, it *item) error {
	name := strings.ToUpper(strings.ReplaceAll(it.args[0], "-", ""))
	if !digests[name] {
		return fmt.Errorf("unknown digest %q (want SHA1, SHA224, SHA256, SHA384, SHA512, MD5 or none)", it.args[0])
	}
	if name == "NONE" {
		name = "none"
	}
	if p.once(s, it, it.name, name) {
		p.cfg.Auth = name
	}
	return nil
}

func applyReplayWindow(p *parser, s *scope, it *item) error {
	n, err := parseInt(it.args[0], 65536)
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("window must be at least 1")
	}
	t := 15 * time.Second
	if len(it.args) > 1 {
		if t, err = parseSeconds(it.args[1]); err != nil {
			return err
		}
	}
	if p.once(s, it, it.name, strings.Join(it.args, " ")) {
		p.cfg.ReplayWindow, p.cfg.ReplayTime = n, t
		if t != defaultReplayTime {
			p.warnf(it.line, "replay-window: the time part (%d seconds) is not applied; ovpnd's data-channel replay window checks packet ids only (window %d)", int(t/time.Second), n)
		}
	}
	return nil
}

// defaultReplayTime is OpenVPN's replay-window time default; the only value ovpnd honours,
// since its data-channel window has no time component.
const defaultReplayTime = 15 * time.Second

func applyTLSCipher(p *parser, s *scope, it *item) error {
	_, notes, err := TLSCipherList(it.args[0])
	if err != nil {
		return err
	}
	if p.once(s, it, it.name, it.args[0]) {
		for _, n := range notes {
			p.warnf(it.line, "tls-cipher: %s", n)
		}
		p.cfg.TLSCipher = it.args[0]
	}
	return nil
}

func applyTLSGroups(p *parser, s *scope, it *item) error {
	_, notes, err := TLSGroupList(it.args[0])
	if err != nil {
		return err
	}
	if p.once(s, it, it.name, it.args[0]) {
		for _, n := range notes {
			p.warnf(it.line, "tls-groups: %s", n)
		}
		p.cfg.TLSGroups = it.args[0]
	}
	return nil
}

// tlsGroupNames maps OpenSSL's group names (lower case) that crypto/tls implements to its ids.
var tlsGroupNames = map[string]tls.CurveID{
	"x25519":             tls.X25519,
	"p-256":              tls.CurveP256,
	"prime256v1":         tls.CurveP256,
	"secp256r1":          tls.CurveP256,
	"p-384":              tls.CurveP384,
	"secp384r1":          tls.CurveP384,
	"p-521":              tls.CurveP521,
	"secp521r1":          tls.CurveP521,
	"x25519mlkem768":     tls.X25519MLKEM768,
	"secp256r1mlkem768":  tls.SecP256r1MLKEM768,
	"secp384r1mlkem1024": tls.SecP384r1MLKEM1024,
}

// unsupportedGroup reports whether OpenSSL knows the group (lower case) but crypto/tls does not.
func unsupportedGroup(name string) bool {
	switch {
	case name == "x448", name == "secp224r1", name == "prime192v1", name == "secp192r1",
		name == "p-224", name == "p-192", name == "secp256k1",
		strings.HasPrefix(name, "ffdhe"), strings.HasPrefix(name, "brainpool"),
		strings.HasPrefix(name, "mlkem"), strings.HasPrefix(name, "x448mlkem"),
		strings.HasPrefix(name, "curvesm2"), name == "sm2":
		return true
	}
	return false
}

// TLSGroupList translates a tls-groups value (OpenSSL group names, colon-separated, most
// preferred first) into crypto/tls ids for tls.Config.CurvePreferences. Like OpenVPN, groups
// the TLS library lacks are dropped with a note; unknown names are an error, and so is a list
// with nothing left.
func TLSGroupList(list string) (ids []tls.CurveID, notes []string, err error) {
	var entries []string
	for _, e := range strings.Split(list, ":") {
		if e = strings.TrimSpace(e); e != "" {
			entries = append(entries, e)
		}
	}
	if len(entries) > maxSuiteList {
		return nil, nil, fmt.Errorf("more than %d groups", maxSuiteList)
	}
	for _, e := range entries {
		name := strings.ToLower(e)
		id, ok := tlsGroupNames[name]
		switch {
		case ok:
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		case unsupportedGroup(name):
			notes = append(notes, fmt.Sprintf("dropping %s: crypto/tls does not implement it", e))
		default:
			return nil, nil, fmt.Errorf("unknown group %q (want X25519, P-256, P-384, P-521, X25519MLKEM768, SecP256r1MLKEM768 or SecP384r1MLKEM1024)", e)
		}
	}
	if len(ids) == 0 {
		return nil, nil, fmt.Errorf("no group in %q is implemented by crypto/tls", list)
	}
	return ids, notes, nil
}

func applyTLSCipherSuites(p *parser, s *scope, it *item) error {
	_, notes, err := TLS13CipherList(it.args[0])
	if err != nil {
		return err
	}
	if p.once(s, it, it.name, it.args[0]) {
		for _, n := range notes {
			p.warnf(it.line, "tls-ciphersuites: %s", n)
		}
		p.cfg.TLSCipherSuites = it.args[0]
	}
	return nil
}

// openSSLSuiteNames maps OpenSSL's names of the TLS 1.2 suites crypto/tls implements to their ids.
var openSSLSuiteNames = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"ECDHE-ECDSA-AES128-SHA256":     tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	"ECDHE-RSA-AES128-SHA256":       tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	"ECDHE-ECDSA-RC4-SHA":           tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA,
	"ECDHE-RSA-RC4-SHA":             tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA,
	"ECDHE-RSA-DES-CBC3-SHA":        tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA256":                 tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	"DES-CBC3-SHA":                  tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
	"RC4-SHA":                       tls.TLS_RSA_WITH_RC4_128_SHA,
}

// missingSuites are real TLS 1.2 suites (OpenSSL name, IANA name) that crypto/tls does not
// implement; a list may name them, and they are dropped with a warning.
var missingSuites = [][2]string{
	{"DHE-RSA-AES256-GCM-SHA384", "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"},
	{"DHE-RSA-AES128-GCM-SHA256", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"},
	{"DHE-RSA-CHACHA20-POLY1305", "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
	{"DHE-RSA-AES256-SHA256", "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"},
	{"DHE-RSA-AES128-SHA256", "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"},
	{"DHE-RSA-AES256-SHA", "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"},
	{"DHE-RSA-AES128-SHA", "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"},
	{"EDH-RSA-DES-CBC3-SHA", "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"},
	{"DHE-DSS-AES256-GCM-SHA384", "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384"},
	{"DHE-DSS-AES128-GCM-SHA256", "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256"},
	{"DHE-RSA-CAMELLIA256-SHA", "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA"},
	{"DHE-RSA-CAMELLIA128-SHA", "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA"},
	{"CAMELLIA256-SHA", "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA"},
	{"CAMELLIA128-SHA", "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA"},
	{"ECDHE-ECDSA-AES256-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"},
	{"ECDHE-RSA-AES256-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"},
	{"AES256-SHA256", "TLS_RSA_WITH_AES_256_CBC_SHA256"},
	{"ECDHE-ECDSA-AES256-CCM", "TLS_ECDHE_ECDSA_WITH_AES_256_CCM"},
	{"ECDHE-ECDSA-AES128-CCM", "TLS_ECDHE_ECDSA_WITH_AES_128_CCM"},
	{"DHE-RSA-AES256-CCM", "TLS_DHE_RSA_WITH_AES_256_CCM"},
	{"DHE-RSA-AES128-CCM", "TLS_DHE_RSA_WITH_AES_128_CCM"},
}

// maxSuiteList bounds the entries of a cipher list.
const maxSuiteList = 64

// goSuite finds a crypto/tls suite by IANA name; tls13 selects TLS 1.3 suites, otherwise
// only suites usable below TLS 1.3 match.
func goSuite(name string, tls13 bool) (*tls.CipherSuite, bool) {
	for _, list := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, cs := range list {
			is13 := len(cs.SupportedVersions) == 1 && cs.SupportedVersions[0] == tls.VersionTLS13
			if cs.Name == name && is13 == tls13 {
				return cs, true
			}
		}
	}
	return nil, false
}

// splitSuites splits a colon-separated list, bounding its size.
func splitSuites(list string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(list, ":") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("empty cipher suite list")
	}
	if len(out) > maxSuiteList {
		return nil, fmt.Errorf("more than %d cipher suites", maxSuiteList)
	}
	return out, nil
}

// TLSCipherList translates a tls-cipher value (TLS 1.2 suites, colon-separated, as OpenVPN
// accepts them: OpenSSL names or IANA names with dashes) into crypto/tls suite ids for
// tls.Config.CipherSuites, in the order given. Like OpenSSL, which OpenVPN hands the list to,
// it skips what it cannot use: suites crypto/tls lacks (DHE, CAMELLIA, ...), TLS 1.3 names and
// names it does not know are dropped, each with a note. An empty ids with a nil error means
// that nothing is left for TLS 1.2 and below, so only TLS 1.3 can be negotiated. OpenSSL
// rules (HIGH, !aNULL) and a list that names no cipher suite at all are errors.
func TLSCipherList(list string) (ids []uint16, notes []string, err error) {
	entries, err := splitSuites(list)
	if err != nil {
		return nil, nil, err
	}
	add := func(cs *tls.CipherSuite) {
		for _, id := range ids {
			if id == cs.ID {
				return
			}
		}
		ids = append(ids, cs.ID)
		if cs.Insecure {
			notes = append(notes, fmt.Sprintf("%s is an insecure cipher suite", cs.Name))
		}
	}
	real := false // some entry names a real cipher suite
	for _, e := range entries {
		up := strings.ToUpper(e)
		switch {
		case up == "DEFAULT":
			real = true
			for _, cs := range tls.CipherSuites() {
				if cs.SupportedVersions[0] != tls.VersionTLS13 {
					add(cs)
				}
			}
			continue
		case strings.HasPrefix(up, "@"):
			notes = append(notes, fmt.Sprintf("dropping %s: OpenSSL security levels have no crypto/tls equivalent", e))
			continue
		case strings.ContainsAny(e[:1], "!+-") || strings.Contains(e, "+") || !strings.ContainsAny(e, "-_"):
			// Every suite name has a dash or underscore; HIGH, aNULL, !MD5, EECDH+AESGCM are rules.
			return nil, nil, fmt.Errorf("OpenSSL cipher rule %q is not supported; list the suites by name", e)
		}
		iana := ""
		if strings.HasPrefix(up, "TLS-") || strings.HasPrefix(up, "TLS_") {
			iana = strings.ReplaceAll(up, "-", "_")
			if cs, ok := goSuite(iana, false); ok {
				add(cs)
				real = true
				continue
			}
		} else if id, ok := openSSLSuiteNames[up]; ok {
			cs, _ := goSuite(tls.CipherSuiteName(id), false)
			add(cs)
			real = true
			continue
		}
		known := false
		for _, m := range missingSuites {
			known = known || m[0] == up || m[1] == iana
		}
		switch _, is13 := goSuite(iana, true); {
		case is13:
			real = true
			notes = append(notes, fmt.Sprintf("dropping %s: it is a TLS 1.3 suite, which belongs in tls-ciphersuites", e))
		case known:
			real = true
			notes = append(notes, fmt.Sprintf("dropping %s: crypto/tls does not implement it", e))
		default:
			notes = append(notes, fmt.Sprintf("dropping unknown cipher suite %q, as OpenSSL does (names look like ECDHE-RSA-AES256-GCM-SHA384 or TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384)", e))
		}
	}
	if !real {
		// OpenSSL refuses a list in which it finds no suite at all, and so does OpenVPN.
		return nil, nil, fmt.Errorf("no cipher suite in %q is known", list)
	}
	if len(ids) == 0 {
		notes = append(notes, "no suite in the list is left for TLS 1.2 and below; only TLS 1.3 can be negotiated")
	}
	return ids, notes, nil
}

// TLS13CipherList translates a tls-ciphersuites value (TLS 1.3 suites, colon-separated,
// underscores or dashes) into crypto/tls ids. crypto/tls cannot restrict what it offers for
// TLS 1.3, so the engine enforces the list after the handshake; order is not applied.
func TLS13CipherList(list string) (ids []uint16, notes []string, err error) {
	entries, err := splitSuites(list)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		name := strings.ReplaceAll(strings.ToUpper(e), "-", "_")
		if cs, ok := goSuite(name, true); ok {
			dup := false
			for _, id := range ids {
				dup = dup || id == cs.ID
			}
			if !dup {
				ids = append(ids, cs.ID)
			}
			continue
		}
		if name == "TLS_AES_128_CCM_SHA256" || name == "TLS_AES_128_CCM_8_SHA256" {
			notes = append(notes, fmt.Sprintf("dropping %s: crypto/tls does not implement it", e))
			continue
		}
		return nil, nil, fmt.Errorf("unknown TLS 1.3 cipher suite %q (want TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256 or TLS_CHACHA20_POLY1305_SHA256)", e)
	}
	if len(ids) == 0 {
		return nil, nil, fmt.Errorf("no cipher suite in %q is implemented by crypto/tls", list)
	}
	if len(ids) < 3 {
		notes = append(notes, "crypto/tls still offers every TLS 1.3 suite; a handshake that settles on one not listed is refused, and the list's order is not applied")
	}
	return ids, notes, nil
}

func applyCompression(p *parser, s *scope, it *item) error {
	c, err := parseCompression(it.name, it.args)
	if err != nil {
		return err
	}
	if !p.once(s, it, "compression", it.name+" "+strings.Join(it.args, " ")) {
		return nil
	}
	allow := p.cfg.Compression.Allow
	p.cfg.Compression = c
	p.cfg.Compression.Allow = allow
	p.compItem = it
	return nil
}

func applyAllowCompression(p *parser, s *scope, it *item) error {
	var a AllowCompression
	switch it.args[0] {
	case "no":
		a = AllowNo
	case "asym":
		a = AllowAsym
	case "yes":
		// ovpnd never compresses what it sends, so "yes" is "asym".
		a = AllowAsym
		p.warnf(it.line, "allow-compression yes: ovpnd never compresses what it sends (VORACLE); treating it as asym")
	default:
		return fmt.Errorf("unknown value %q (want no, asym or yes)", it.args[0])
	}
	if p.once(s, it, it.name, it.args[0]) {
		p.cfg.Compression.Allow = a
	}
	return nil
}

func applyPing(p *parser, s *scope, it *item) error {
	d, err := parseSeconds(it.args[0])
	if err != nil {
		return err
	}
	if p.once(s, it, "ping", it.args[0]) {
		p.cfg.Ping = d
	}
	return nil
}

func applyPingTimeout(p *parser, s *scope, it *item) error {
	d, err := parseSeconds(it.args[0])
	if err != nil {
		return err
	}
	action := PingRestart
	if it.name == "ping-exit" {
		action = PingExit
	}
	if p.once(s, it, "ping-timeout", it.name+" "+it.args[0]) {
		p.cfg.PingTimeout, p.cfg.PingTimeoutAction = d, action
	}
	return nil
}

func applyKeepalive(p *parser, s *scope, it *item) error {
	ping, err := parseSeconds(it.args[0])
	if err != nil {
		return err
	}
	timeout, err := parseSeconds(it.args[1])
	if err != nil {
		return err
	}
	if ping > 0 && timeout > 0 && timeout < 2*ping {
		return errors.New("the timeout must be at least twice the ping interval")
	}
	if p.once(s, it, "ping", it.args[0]) {
		p.cfg.Ping = ping
	}
	if p.once(s, it, "ping-timeout", "ping-restart "+it.args[1]) {
		p.cfg.PingTimeout, p.cfg.PingTimeoutAction = timeout, PingRestart
	}
	return nil
}

// applyNet handles the network settings that a server may also push.
func applyNet(p *parser, s *scope, it *item) error {
	n := &p.cfg.Net
	single := func() bool { return p.once(s, it, it.name, strings.Join(it.args, " ")) }
	switch it.name {
	case "route", "route-ipv6", "dhcp-option", "dns":
		if len(n.Routes)+len(n.RoutesIPv6)+len(n.DHCPOptions) >= MaxListEntries {
			return fmt.Errorf("more than %d entries", MaxListEntries)
		}
		return applyNetSetting(n, it.args, it.name)
	}
	// Validate first, then apply once.
	var scratch NetSettings
	if err := applyNetSetting(&scratch, it.args, it.name); err != nil {
		return err
	}
	if single() {
		return applyNetSetting(n, it.args, it.name)
	}
	return nil
}

// applyNetSetting applies one network directive to n; shared with the push parser.
func applyNetSetting(n *NetSettings, a []string, name string) error {
	var err error
	switch name {
	case "route":
		var r Route
		if r, err = parseRoute(a); err == nil {
			n.Routes = append(n.Routes, r)
		}
	case "route-ipv6":
		var r RouteIPv6
		if r, err = parseRouteIPv6(a); err == nil {
			n.RoutesIPv6 = append(n.RoutesIPv6, r)
		}
	case "route-gateway":
		n.RouteGateway, err = parseRouteGateway(a)
	case "route-ipv6-gateway":
		n.RouteIPv6Gateway, err = parseIPv6(a[0])
	case "route-metric":
		var m int
		if m, err = parseMetric(a[0]); err == nil {
			if m < 0 {
				m = 0
			}
			n.RouteMetric = m
		}
	case "redirect-gateway":
		n.RedirectGateway, err = parseRedirect(a)
	case "redirect-private":
		n.RedirectPrivate, err = parseRedirect(a)
	case "ifconfig":
		n.Ifconfig, err = parseIfconfig(a)
	case "ifconfig-ipv6":
		n.IfconfigIPv6, err = parseIfconfigIPv6(a)
	case "topology":
		n.Topology, err = parseTopology(a[0])
	case "dhcp-option":
		var o DHCPOption
		if o, err = parseDHCPOption(a); err == nil {
			n.DHCPOptions = append(n.DHCPOptions, o)
		}
	case "dns":
		err = applyDNS(&n.DNS, a)
	case "block-ipv6":
		n.BlockIPv6 = true
	default:
		err = fmt.Errorf("internal: %s is not a network setting", name)
	}
	return err
}

func applyRouteDelay(p *parser, s *scope, it *item) error {
	var d, w time.Duration
	var err error
	if len(it.args) > 0 {
		if d, err = parseSeconds(it.args[0]); err != nil {
			return err
		}
	}
	if len(it.args) > 1 {
		if w, err = parseSeconds(it.args[1]); err != nil {
			return err
		}
	}
	if p.once(s, it, it.name, strings.Join(it.args, " ")) {
		p.cfg.RouteDelay, p.cfg.RouteDelayWin = d, w
	}
	return nil
}

func applyPullFilter(p *parser, s *scope, it *item) error {
	var a PullFilterAction
	switch it.args[0] {
	case "accept":
		a = FilterAccept
	case "ignore":
		a = FilterIgnore
	case "reject":
		a = FilterReject
	default:
		return fmt.Errorf("unknown action %q (want accept, ignore or reject)", it.args[0])
	}
	if len(p.cfg.PullFilters) >= MaxListEntries {
		return fmt.Errorf("more than %d pull-filters", MaxListEntries)
	}
	p.cfg.PullFilters = append(p.cfg.PullFilters, PullFilter{Action: a, Text: it.args[1]})
	return nil
}

func applyIgnoreUnknown(p *parser, s *scope, it *item) error {
	if p.ignoreUnknown == nil {
		p.ignoreUnknown = map[string]bool{}
	}
	for _, n := range it.args {
		p.ignoreUnknown[n] = true
	}
	return nil
}

func applyMute(p *parser, s *scope, it *item) error {
	n, err := parseInt(it.args[0], 1<<20)
	if err != nil {
		return err
	}
	p.cfg.Mute = n
	return nil
}

func applyVerb(p *parser, s *scope, it *item) error {
	n, err := parseInt(it.args[0], 11)
	if err != nil {
		return err
	}
	p.cfg.Verb = n
	return nil
}
