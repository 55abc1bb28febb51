package config

import (
	"errors"
	"fmt"
	"strings"
)

// ProxyKind is the kind of proxy a profile connects through.
type ProxyKind uint8

// Proxy kinds.
const (
	ProxyHTTP  ProxyKind = iota + 1 // http-proxy: HTTP CONNECT, TCP only
	ProxySOCKS                      // socks-proxy: SOCKS5, TCP and UDP (UDP ASSOCIATE)
)

// ProxyAuth is how an HTTP proxy is authenticated (http-proxy's third and fourth arguments).
type ProxyAuth uint8

// HTTP proxy authentication methods. NTLM is refused while parsing.
const (
	ProxyAuthNone    ProxyAuth = iota // no credentials are ever sent
	ProxyAuthBasic                    // Basic credentials with the first request
	ProxyAuthAuto                     // credentials only when the proxy asks (407), Basic
	ProxyAuthAutoNCT                  // like auto, but never in clear text: Basic is refused
)

// Proxy is http-proxy or socks-proxy with its options.
type Proxy struct {
	Kind ProxyKind
	Host string
	Port uint16
	// Auth is the HTTP method; a SOCKS proxy offers username/password exactly when
	// credentials are configured or asked for.
	Auth ProxyAuth
	// Creds are the credentials from a file or an inline block (nil: none). Ask means the
	// user is asked when the proxy needs them (http-proxy ... stdin, or auto without a
	// <http-proxy-user-pass>; socks-proxy ... stdin).
	Creds *ProxyCreds
	Ask   bool
	// HTTP only (http-proxy-option): the HTTP version of the CONNECT request ("1.0" unless
	// VERSION says 1.1), the User-Agent (AGENT) and extra headers (CUSTOM-HEADER, EXT1, EXT2).
	Version string
	Agent   string
	Headers []ProxyHeader
}

// ProxyCreds is a proxy username and password.
type ProxyCreds struct {
	User, Pass string
}

// ProxyHeader is one CUSTOM-HEADER: a name and its content, or with an empty Content a whole
// header line, sent as written (as OpenVPN does).
type ProxyHeader struct {
	Name, Content string
}

// maxProxyHeaders is OpenVPN's MAX_CUSTOM_HTTP_HEADER.
const maxProxyHeaders = 10

// proxyState gathers the proxy directives while reading; finishProxy builds Config.Proxy.
type proxyState struct {
	http, socks             *item
	httpUserPass, socksPass *item
	httpCreds, socksCreds   *ProxyCreds
	options                 []*item
}

// applyHTTPProxy reads "http-proxy HOST PORT [AUTHFILE|stdin|auto|auto-nct] [none|basic|ntlm]".
func applyHTTPProxy(p *parser, s *scope, it *item) error {
	if _, err := parsePort(it.args[1]); err != nil {
		return err
	}
	if !validRemote(it.args[0]) {
		return fmt.Errorf("%q is not a host name or IP address", it.args[0])
	}
	if len(it.args) > 3 {
		switch strings.ToLower(it.args[3]) {
		case "none", "basic":
		case "ntlm", "ntlm2":
			return errors.New("NTLM proxy authentication is not supported by ovpnd; use basic (or auto, which answers a Basic challenge)")
		default:
			return fmt.Errorf("unknown authentication method %q (want none or basic)", it.args[3])
		}
		if a := it.args[2]; a == "auto" || a == "auto-nct" {
			return fmt.Errorf("%s takes no authentication method", a)
		}
	}
	if !p.once(s, it, "http-proxy", strings.Join(it.args, " ")) {
		return nil
	}
	p.proxy.http = it
	if len(it.args) > 2 {
		switch a := it.args[2]; {
		case a == "auto", a == "auto-nct", a == "stdin":
		case len(it.args) > 3 && strings.EqualFold(it.args[3], "none"):
			// OpenVPN never reads the file of method none.
		default:
			c, err := p.proxyCreds(it.sub(2))
			if err != nil {
				return err
			}
			p.proxy.httpCreds = c
		}
	}
	return nil
}

// proxyCreds reads proxy credentials from the file it names first or its inline block: the
// third argument of http-proxy and socks-proxy (passed as it.sub(2)), or http-proxy-user-pass.
// The contents are read now: the daemon never opens a caller's files.
func (p *parser) proxyCreds(it *item) (*ProxyCreds, error) {
	data, err := p.material(it)
	if err != nil {
		return nil, err
	}
	c, err := parseProxyCreds(data)
	if err != nil {
		return nil, materialErr(it, err)
	}
	return c, nil
}

// sub is it with its arguments starting at i, for reading a file argument in the middle.
func (it *item) sub(i int) *item {
	c := *it
	c.args = it.args[i:]
	return &c
}

// applyHTTPProxyUserPass reads http-proxy-user-pass FILE or its inline block.
func applyHTTPProxyUserPass(p *parser, s *scope, it *item) error {
	if !p.once(s, it, it.name, it.argString()) {
		return nil
	}
	c, err := p.proxyCreds(it)
	if err != nil {
		return err
	}
	p.proxy.httpUserPass, p.proxy.httpCreds = it, c
	return nil
}

// applyHTTPProxyOption reads http-proxy-option VERSION|AGENT|CUSTOM-HEADER|EXT1|EXT2.
func applyHTTPProxyOption(p *parser, s *scope, it *item) error {
	a := it.args
	switch strings.ToUpper(a[0]) {
	case "VERSION":
		if len(a) != 2 || a[1] != "1.0" && a[1] != "1.1" {
			return errors.New("VERSION takes 1.0 or 1.1")
		}
	case "AGENT":
		if len(a) != 2 {
			return errors.New("AGENT takes one argument")
		}
		if !validHeaderValue(a[1]) {
			return fmt.Errorf("AGENT %q cannot be sent in an HTTP header", a[1])
		}
	case "CUSTOM-HEADER", "EXT1", "EXT2":
		if len(a) < 2 {
			return fmt.Errorf("%s needs a header", a[0])
		}
		name := a[1]
		if len(a) == 2 {
			// A whole "Name: value" line in one argument, which OpenVPN sends as it is.
			name, _, _ = strings.Cut(a[1], ":")
		}
		if !validHeaderName(strings.TrimSpace(name)) || !validHeaderValue(strings.Join(a[1:], " ")) {
			return fmt.Errorf("%s %q cannot be sent as an HTTP header", a[0], strings.Join(a[1:], " "))
		}
		n := 0
		for _, o := range p.proxy.options {
			if u := strings.ToUpper(o.args[0]); u == "CUSTOM-HEADER" || u == "EXT1" || u == "EXT2" {
				n++
			}
		}
		if n >= maxProxyHeaders {
			return fmt.Errorf("more than %d custom headers", maxProxyHeaders)
		}
	default:
		return fmt.Errorf("unknown option %q (want VERSION, AGENT or CUSTOM-HEADER)", a[0])
	}
	p.proxy.options = append(p.proxy.options, it)
	return nil
}

// applySOCKSProxy reads "socks-proxy HOST [PORT] [AUTHFILE|stdin]".
func applySOCKSProxy(p *parser, s *scope, it *item) error {
	if !validRemote(it.args[0]) {
		return fmt.Errorf("%q is not a host name or IP address", it.args[0])
	}
	if len(it.args) > 1 {
		if _, err := parsePort(it.args[1]); err != nil {
			return err
		}
	}
	if !p.once(s, it, "socks-proxy", strings.Join(it.args, " ")) {
		return nil
	}
	p.proxy.socks = it
	if len(it.args) > 2 && it.args[2] != "stdin" {
		c, err := p.proxyCreds(it.sub(2))
		if err != nil {
			return err
		}
		p.proxy.socksCreds = c
	}
	return nil
}

// applySOCKSProxyUserPass reads the inline <socks-proxy-user-pass> block that ovpnd prints for
// socks-proxy credentials (OpenVPN itself only reads them from a file).
func applySOCKSProxyUserPass(p *parser, s *scope, it *item) error {
	if !p.once(s, it, it.name, "") {
		return nil
	}
	c, err := parseProxyCreds(it.inline)
	if err != nil {
		return materialErr(it, err)
	}
	p.proxy.socksPass, p.proxy.socksCreds = it, c
	return nil
}

// parseProxyCreds reads a proxy credentials file: username, then password.
func parseProxyCreds(data []byte) (*ProxyCreds, error) {
	a, err := parseUserPass(data)
	if err != nil {
		return nil, errors.New(strings.Replace(err.Error(), "auth-user-pass file", "proxy credentials", 1))
	}
	if a.PasswordMissing {
		return nil, errors.New("proxy credentials have no password on the second line")
	}
	if strings.ContainsAny(a.Username, ":\x00") || strings.ContainsRune(a.Password, 0) {
		return nil, errors.New("proxy username contains ':' or NUL")
	}
	if len(a.Username) > 255 || len(a.Password) > 255 {
		return nil, errors.New("proxy username or password longer than 255 bytes")
	}
	return &ProxyCreds{User: a.Username, Pass: a.Password}, nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	return !strings.ContainsAny(s, "\r\n\x00")
}

// finishProxy builds Config.Proxy and applies OpenVPN's rules: http-proxy needs TCP, the two
// proxies exclude each other, and the HTTP options need an http-proxy.
func (p *parser) finishProxy() {
	ps := &p.proxy
	c := p.cfg
	if ps.http != nil && ps.socks != nil {
		p.errf(ps.socks.line, "socks-proxy cannot be used together with http-proxy on line %d", ps.http.line)
		return
	}
	if ps.http == nil {
		if len(ps.options) > 0 {
			p.errf(ps.options[0].line, "http-proxy-option needs an http-proxy")
		}
		if ps.httpUserPass != nil {
			p.errf(ps.httpUserPass.line, "%s needs an http-proxy", describe(ps.httpUserPass))
		}
	}
	if ps.socks == nil && ps.socksPass != nil {
		p.errf(ps.socksPass.line, "%s needs a socks-proxy", describe(ps.socksPass))
	}
	switch {
	case ps.http != nil:
		a := ps.http.args
		port, _ := parsePort(a[1])
		px := &Proxy{Kind: ProxyHTTP, Host: a[0], Port: port, Version: "1.0", Creds: ps.httpCreds}
		switch {
		case len(a) < 3:
			px.Auth = ProxyAuthNone
		case a[2] == "auto":
			px.Auth = ProxyAuthAuto
		case a[2] == "auto-nct":
			px.Auth = ProxyAuthAutoNCT
		case len(a) > 3 && strings.EqualFold(a[3], "none"):
			px.Auth = ProxyAuthNone
		default:
			px.Auth = ProxyAuthBasic
		}
		if px.Auth == ProxyAuthNone {
			px.Creds = nil
		} else {
			px.Ask = px.Creds == nil
		}
		for _, o := range ps.options {
			switch strings.ToUpper(o.args[0]) {
			case "VERSION":
				px.Version = o.args[1]
			case "AGENT":
				px.Agent = o.args[1]
			default:
				px.Headers = append(px.Headers, ProxyHeader{Name: o.args[1], Content: strings.Join(o.args[2:], " ")})
			}
		}
		for _, cn := range c.Connections {
			if cn.Proto != ProtoTCP {
				p.errf(ps.http.line, "http-proxy needs TCP (proto tcp-client), and remote %s uses UDP", cn.Remote)
				return
			}
		}
		c.Proxy = px
	case ps.socks != nil:
		a := ps.socks.args
		port := uint16(1080)
		if len(a) > 1 {
			port, _ = parsePort(a[1])
		}
		px := &Proxy{Kind: ProxySOCKS, Host: a[0], Port: port, Creds: ps.socksCreds}
		px.Ask = px.Creds == nil && len(a) > 2 && a[2] == "stdin"
		for _, cn := range c.Connections {
			if cn.Proto == ProtoUDP && cn.Family == FamilyIPv6 {
				p.warnf(ps.socks.line, "proto udp6 does not work with socks-proxy; remote %s is reached over IPv4, as OpenVPN does", cn.Remote)
				break
			}
		}
		c.Proxy = px
	}
}

// printProxy writes the proxy directives back, credentials inline.
func printProxy(w *printer, px *Proxy) {
	port := fmt.Sprint(px.Port)
	switch px.Kind {
	case ProxyHTTP:
		switch px.Auth {
		case ProxyAuthNone:
			w.line("http-proxy", px.Host, port)
		case ProxyAuthAuto:
			w.line("http-proxy", px.Host, port, "auto")
		case ProxyAuthAutoNCT:
			w.line("http-proxy", px.Host, port, "auto-nct")
		case ProxyAuthBasic:
			// "stdin" asks; the inline block below, when there is one, overrides it.
			w.line("http-proxy", px.Host, port, "stdin", "basic")
		}
		if px.Creds != nil {
			w.block("http-proxy-user-pass", []byte(px.Creds.User+"\n"+px.Creds.Pass+"\n"))
		}
		if px.Version != "1.0" {
			w.line("http-proxy-option", "VERSION", px.Version)
		}
		if px.Agent != "" {
			w.line("http-proxy-option", "AGENT", px.Agent)
		}
		for _, h := range px.Headers {
			if h.Content == "" {
				w.line("http-proxy-option", "CUSTOM-HEADER", h.Name)
			} else {
				w.line("http-proxy-option", "CUSTOM-HEADER", h.Name, h.Content)
			}
		}
	case ProxySOCKS:
		if px.Ask {
			w.line("socks-proxy", px.Host, port, "stdin")
		} else {
			w.line("socks-proxy", px.Host, port)
		}
		if px.Creds != nil {
			w.block("socks-proxy-user-pass", []byte(px.Creds.User+"\n"+px.Creds.Pass+"\n"))
		}
	}
}
