package config

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"time"
)

// Config is a parsed client profile with every referenced file already loaded and checked.
// Fields hold OpenVPN's default where the profile says nothing; options that cannot be
// combined are either resolved by the rules in docs/config.md or refused while parsing, so
// a Config never carries a contradiction.
type Config struct {
	// Connections are tried in order (shuffled first when RemoteRandom is set). There is at
	// least one.
	Connections  []Connection
	RemoteRandom bool

	// Dev is the device name as written ("tun", "tun5", "null"); DevType is always DevTUN
	// for a tun device and DevNull for "dev null" (no device, for tests).
	Dev     string
	DevType DevType

	// TLSClient and Pull are both set by "client"; a profile without tls-client is refused.
	TLSClient bool
	Pull      bool

	// CA verifies the server's chain; CACerts are the same certificates in file order. CA is
	// nil only when PeerFingerprints alone authenticate the server.
	CA      *x509.CertPool
	CACerts []*x509.Certificate
	// Cert is the client's certificate chain (leaf, the rest of its file, then ExtraCerts) and
	// private key; nil when the profile authenticates with auth-user-pass only.
	Cert       *tls.Certificate
	ExtraCerts []*x509.Certificate
	// AuthUserPass is nil when the profile does not use username/password authentication.
	AuthUserPass *AuthUserPass

	// TLSWrap is the control-channel protection: none, tls-auth, tls-crypt or tls-crypt-v2.
	TLSWrap TLSWrap

	// DataCiphers is the NCP list offered to the server, in order. DataCiphersFallback is
	// used with servers that do not negotiate ("" = none). Cipher is the legacy --cipher
	// value as written ("" when absent); OpenVPN 2.6 only uses it as described in docs/config.md.
	DataCiphers         []string
	DataCiphersFallback string
	Cipher              string
	// Auth is the HMAC digest for tls-auth and for CBC data ciphers (default SHA1).
	Auth string

	TLSVersionMin TLSVersion
	TLSVersionMax TLSVersion // zero Version = no maximum
	// TLSCipher (TLS 1.2 and below, OpenSSL names) and TLSCipherSuites (TLS 1.3) as written.
	TLSCipher       string
	TLSCipherSuites string
	TLSCertProfile  string
	// TLSGroups is tls-groups as written ("" = ovpnd's default, which offers no post-quantum
	// key share; see TLSGroupList).
	TLSGroups string

	// VerifyX509Name is nil when absent.
	VerifyX509Name *VerifyX509Name
	// RemoteCertTLS is "server" (the usual), "client", or "" when absent. RemoteCertEKU is an
	// OID or OpenSSL long name; RemoteCertKU lists acceptable key-usage values.
	RemoteCertTLS string
	RemoteCertEKU string
	RemoteCertKU  []uint16
	// NSCertType is the deprecated ns-cert-type ("server", "client" or "" when absent).
	NSCertType string
	// CRL is crl-verify (nil when absent).
	CRL *CRL
	// PeerFingerprints are SHA-256 fingerprints of acceptable server certificates.
	PeerFingerprints [][32]byte

	Compression Compression

	// Ping sends a keepalive after this much send silence (0 = never). PingTimeout restarts
	// or exits after this much receive silence (0 = never).
	Ping              time.Duration
	PingTimeout       time.Duration
	PingTimeoutAction PingAction

	RenegInterval time.Duration
	RenegBytes    int64
	RenegPkts     int64
	HandWindow    time.Duration
	TranWindow    time.Duration
	TLSTimeout    time.Duration
	// ReplayWindow is the packet-id window size and ReplayTime the seconds of reordering
	// tolerated (replay-window N T; defaults 64 and 15).
	ReplayWindow int
	ReplayTime   time.Duration

	// ResolvRetry is how long to retry name resolution; ResolvRetryInfinite means forever.
	ResolvRetry time.Duration

	PersistTun bool
	PersistKey bool

	// MSSFix is the TCP MSS clamp target (0 = off); MSSFixMTU and MSSFixFixed carry the
	// "mtu" and "fixed" flags of mssfix. MSSFixDefault is set when the profile has no mssfix
	// value of its own (no mssfix line, or a bare "mssfix"): OpenVPN then uses "1492 mtu" with
	// tun-mtu 1500 and "TUN-MTU fixed" otherwise, which differs from an explicit "mssfix 1492".
	MSSFix        int
	MSSFixMTU     bool
	MSSFixFixed   bool
	MSSFixDefault bool
	TunMTU        int
	// TunMaxMTU is tun-max-mtu: the largest tun-mtu a server may push (0: the larger of
	// tun-mtu and 1600, OpenVPN's default). ovpnd announces it as IV_MTU and sizes its
	// buffers for it; a larger pushed tun-mtu is clamped to it.
	TunMaxMTU int
	// Proxy is the HTTP or SOCKS proxy every connection goes through (nil: none).
	Proxy *Proxy

	// Fragment is fragment's size limit (0 = no fragmentation layer) and FragmentMTU its
	// "mtu" flag: the limit includes the outer IP and UDP headers.
	Fragment    int
	FragmentMTU bool

	// Net holds the tunnel's network settings given in the profile; pushed settings are
	// merged on top by the session.
	Net NetSettings

	// RouteNoPull drops pushed routes and DNS settings; RouteNoExec and IfconfigNoExec leave
	// routes and addresses for the user to apply.
	RouteNoPull    bool
	RouteNoExec    bool
	IfconfigNoExec bool
	RouteDelay     time.Duration
	RouteDelayWin  time.Duration
	// PullFilters are applied to pushed options in order; the first match decides.
	PullFilters []PullFilter

	Verb int
	// Mute is OpenVPN's --mute: at most this many consecutive log lines of one kind (0: no limit).
	Mute        int
	AuthNoCache bool
	AuthRetry   AuthRetry
	// StaticChallenge is static-challenge: a one-time code asked together with the password.
	StaticChallenge *StaticChallenge

	// src keeps what the printer needs to write the profile back with every file inlined.
	src printSources
}

// CRL is crl-verify: certificate revocation lists checked against the server's chain at
// every TLS handshake.
type CRL struct {
	// PEM holds the lists (X509 CRL blocks) as loaded; nil in directory mode.
	PEM []byte
	// Path is the absolute file the lists came from when the profile was read from disk
	// (ovpnd run, ovpnd instance): the session re-reads it when it changes. It is empty for an
	// inline block and for profiles sent to the daemon, which never opens a caller's files.
	Path string
	// Dir is the absolute directory of "crl-verify DIR dir": a file there named by a
	// certificate's decimal serial number revokes that certificate.
	Dir string
}

// Connection is one remote to try, with its own transport and retry settings.
type Connection struct {
	Remote string
	Port   uint16
	Proto  Proto
	Family Family

	// ConnectRetry is the wait between attempts, doubling after five up to ConnectRetryMaxWait.
	ConnectRetry        time.Duration
	ConnectRetryMaxWait time.Duration
	// ConnectRetryMax is how often to try this connection before giving up (0 = forever).
	ConnectRetryMax int
	// ConnectTimeout (also server-poll-timeout) bounds one connection attempt.
	ConnectTimeout time.Duration
	// ExplicitExitNotify is how many times to tell a UDP server that we are leaving.
	ExplicitExitNotify int

	// Bind binds the local socket to Local:LocalPort; when false the kernel picks.
	Bind      bool
	Local     string
	LocalPort uint16

	// Float accepts authenticated UDP packets from a new server address and sends there
	// from then on (OpenVPN's --float).
	Float bool
}

// Proto is the transport protocol of a connection.
type Proto uint8

// Transport protocols.
const (
	ProtoUDP Proto = iota
	ProtoTCP
)

func (p Proto) String() string {
	if p == ProtoTCP {
		return "tcp"
	}
	return "udp"
}

// Family restricts name resolution and sockets to one address family.
type Family uint8

// Address families.
const (
	FamilyAny Family = iota
	FamilyIPv4
	FamilyIPv6
)

func (f Family) suffix() string {
	switch f {
	case FamilyIPv4:
		return "4"
	case FamilyIPv6:
		return "6"
	}
	return ""
}

// DevType is the kind of virtual device.
type DevType uint8

// Device kinds. TAP is refused while parsing.
const (
	DevTUN DevType = iota
	DevNull
)

// AuthUserPass holds username/password credentials. When Ask is set (or Password is empty and
// PasswordMissing), the client asks the user; ovpnd's daemon asks over its API.
type AuthUserPass struct {
	Ask             bool
	Username        string
	Password        string
	PasswordMissing bool
}

// StaticChallenge is static-challenge TEXT ECHO [FORMAT]: the prompt shown for a one-time code,
// whether the code is echoed, and whether it is appended to the password (concat) instead of
// being sent in OpenVPN's SCRV1 form.
type StaticChallenge struct {
	Text   string
	Echo   bool
	Concat bool
}

// WrapMode is the control-channel protection.
type WrapMode uint8

// Control-channel protection modes.
const (
	WrapNone WrapMode = iota
	WrapTLSAuth
	WrapTLSCrypt
	WrapTLSCryptV2
)

func (m WrapMode) String() string {
	switch m {
	case WrapTLSAuth:
		return "tls-auth"
	case WrapTLSCrypt:
		return "tls-crypt"
	case WrapTLSCryptV2:
		return "tls-crypt-v2"
	}
	return "none"
}

// KeyDirection is the key-direction of a tls-auth key.
type KeyDirection int8

// Key directions; KeyDirBidi means "both directions use the same keys".
const (
	KeyDirBidi KeyDirection = -1
	KeyDir0    KeyDirection = 0
	KeyDir1    KeyDirection = 1
)

// TLSWrap is the control-channel key. For tls-auth and tls-crypt Key is the 256-byte OpenVPN
// static key; for tls-crypt-v2 Key is the 256-byte client key Kc and WKc the wrapped key sent
// to the server, and PEM the client key file as written.
type TLSWrap struct {
	Mode      WrapMode
	Key       []byte
	WKc       []byte
	PEM       []byte
	Direction KeyDirection
}

// TLSVersion is a minimum or maximum TLS version (tls.VersionTLS12 ...); zero means unset.
type TLSVersion struct {
	Version   uint16
	OrHighest bool
}

// VerifyX509Name checks the server certificate's subject: Type is "subject", "name" or
// "name-prefix".
type VerifyX509Name struct {
	Name string
	Type string
}

// CompressMode is the compression framing agreed with the server.
type CompressMode uint8

// Compression framings. ovpnd never compresses what it sends; it decompresses what the server
// sends when AllowCompression permits.
const (
	CompressOff     CompressMode = iota // no framing byte
	CompressCompLZO                     // comp-lzo: 0xFA / 0x66 prefix
	CompressStub                        // compress (stub): 0xFB swap framing
	CompressStubV2                      // compress stub-v2
	CompressLZO                         // compress lzo
	CompressLZ4                         // compress lz4
	CompressLZ4V2                       // compress lz4-v2
)

// AllowCompression is OpenVPN 2.6's allow-compression setting.
type AllowCompression uint8

// allow-compression values. The zero value is the default: like an OpenVPN 2.6 client,
// ovpnd decompresses what a compressing server sends and never compresses itself.
const (
	AllowAsym AllowCompression = iota // also what "yes" means to ovpnd (VORACLE)
	AllowNo                           // compression directives are errors; compressed packets are dropped
)

// Compression is the compression setting. CompLZO keeps comp-lzo's argument ("yes", "no",
// "adaptive") for printing.
type Compression struct {
	Mode    CompressMode
	CompLZO string
	Allow   AllowCompression
}

// PingAction is what happens when PingTimeout expires.
type PingAction uint8

// Ping timeout actions.
const (
	PingRestart PingAction = iota
	PingExit
)

// ResolvRetryInfinite is ResolvRetry's "infinite".
const ResolvRetryInfinite time.Duration = -1

// AuthRetry is auth-retry's policy after AUTH_FAILED.
type AuthRetry uint8

// auth-retry values.
const (
	AuthRetryNone AuthRetry = iota
	AuthRetryNoInteract
	AuthRetryInteract
)

var authRetryNames = []string{"none", "nointeract", "interact"}

func (a AuthRetry) String() string { return authRetryNames[a] }

// PullFilterAction is a pull-filter verdict.
type PullFilterAction uint8

// pull-filter actions.
const (
	FilterAccept PullFilterAction = iota
	FilterIgnore
	FilterReject
)

var filterNames = []string{"accept", "ignore", "reject"}

func (a PullFilterAction) String() string { return filterNames[a] }

// PullFilter matches a pushed option whose text starts with Text.
type PullFilter struct {
	Action PullFilterAction
	Text   string
}

// Topology is the tunnel addressing scheme.
type Topology uint8

// Topologies; TopologyUnset only appears in Pushed.
const (
	TopologyUnset Topology = iota
	TopologyNet30
	TopologyP2P
	TopologySubnet
)

var topologyNames = []string{"", "net30", "p2p", "subnet"}

func (t Topology) String() string { return topologyNames[t] }

// NetSettings are the network settings a profile may set and a server may push.
type NetSettings struct {
	Routes      []Route
	RoutesIPv6  []RouteIPv6
	RouteMetric int // 0 = unset
	// RouteGateway is nil when absent.
	RouteGateway     *RouteGateway
	RouteIPv6Gateway netip.Addr
	RedirectGateway  *RedirectGateway
	RedirectPrivate  *RedirectGateway
	Ifconfig         *Ifconfig
	IfconfigIPv6     *IfconfigIPv6
	Topology         Topology
	DHCPOptions      []DHCPOption
	DNS              *DNS
	BlockIPv6        bool
}

// Route is an IPv4 route. Network is an IPv4 address, a host name, or one of vpn_gateway,
// net_gateway and remote_host; Gateway likewise ("" = the route gateway). Metric -1 = default.
type Route struct {
	Network string
	Netmask netip.Addr
	Gateway string
	Metric  int
}

// RouteIPv6 is an IPv6 route; a zero Gateway means the tunnel's peer. Metric -1 = default.
type RouteIPv6 struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
	Metric  int
}

// RouteGateway is route-gateway: an address, or DHCP to learn it from the TAP DHCP server.
type RouteGateway struct {
	Addr netip.Addr
	DHCP bool
}

// RedirectGateway carries redirect-gateway's flags.
type RedirectGateway struct {
	Local, AutoLocal, Def1, BypassDHCP, BypassDNS, BlockLocal, IPv6, NoIPv4 bool
}

// Ifconfig is the IPv4 tunnel address: with topology subnet Remote is the netmask, otherwise
// the peer address.
type Ifconfig struct {
	Local  netip.Addr
	Remote netip.Addr
}

// IfconfigIPv6 is the IPv6 tunnel address and its peer (the peer may be zero).
type IfconfigIPv6 struct {
	Local  netip.Prefix
	Remote netip.Addr
}

// DHCPOption is one dhcp-option; Type is upper case (DNS, DNS6, DOMAIN, DOMAIN-SEARCH, ...).
type DHCPOption struct {
	Type  string
	Value string
}

// DNS is OpenVPN 2.6's --dns option.
type DNS struct {
	SearchDomains []string
	// Servers are ordered by Priority (lowest first).
	Servers []DNSServer
}

// DNSServer is one "dns server N ..." entry.
type DNSServer struct {
	Priority       int
	Addresses      []netip.AddrPort // port 0 = default
	ResolveDomains []string
	DNSSEC         string // "", "yes", "no", "optional"
	Transport      string // "", "plain", "DoH", "DoT"
	SNI            string
}

// DNSServers returns the IPv4 and IPv6 resolvers from dhcp-option DNS and DNS6.
func (n *NetSettings) DNSServers() []netip.Addr {
	var out []netip.Addr
	for _, o := range n.DHCPOptions {
		if o.Type == "DNS" || o.Type == "DNS6" {
			if a, err := netip.ParseAddr(o.Value); err == nil {
				out = append(out, a)
			}
		}
	}
	return out
}

// SearchDomains returns the DOMAIN and DOMAIN-SEARCH values of dhcp-option, in order.
func (n *NetSettings) SearchDomains() []string {
	var out []string
	for _, o := range n.DHCPOptions {
		if o.Type == "DOMAIN" || o.Type == "DOMAIN-SEARCH" || o.Type == "ADAPTER_DOMAIN_SUFFIX" {
			out = append(out, o.Value)
		}
	}
	return out
}

// printSources are the texts the printer inlines. Certificates and keys are normalized
// PEM; credentials are printed as read.
type printSources struct {
	ca, cert, key, extraCerts []byte
	authUserPass              []byte
}
