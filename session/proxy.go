package session

/* Proxies: http-proxy (HTTP CONNECT, TCP) and socks-proxy (SOCKS5 CONNECT for
 * TCP, UDP ASSOCIATE for UDP).
 *
 * With a proxy, an attempt's address is the proxy's: connectEntry resolves the
 * proxy host instead of the remote, status and logs show the proxy, and the
 * routing bypass route (the "server" route that keeps the tunnel's own packets
 * off redirect-gateway) goes to the proxy, which is the only peer the client
 * talks to. The VPN server's name is handed to the proxy as written (HTTP
 * CONNECT, SOCKS CONNECT), so a network whose DNS cannot resolve it still
 * works; only SOCKS UDP needs the server's IPv4 address in every datagram and
 * resolves it locally, as OpenVPN does.
 *
 * Credentials come from the profile (a file or an inline block) or, when it
 * says to ask, from Options.ProxyCredentials; asked credentials are kept for
 * reconnects and forgotten when the proxy refuses them.
 */

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	xproxy "golang.org/x/net/proxy"

	"github.com/ovpnd/ovpnd/config"
)

// proxyCreds is what the runner keeps of asked proxy credentials.
type proxyCreds struct {
	user, pass string
	asked      bool // from ProxyCredentials (forget them when refused)
}

// proxyName names a proxy kind in messages and prompts.
func proxyName(px *config.Proxy) string {
	if px.Kind == config.ProxyHTTP {
		return "HTTP proxy"
	}
	return "SOCKS proxy"
}

// resolveEntry resolves where an attempt for conn connects: the proxy when the
// profile has one (IPv4 only for SOCKS over UDP, as in OpenVPN), else the remote.
func (r *runner) resolveEntry(ctx context.Context, conn *config.Connection) ([]netip.Addr, uint16, error) {
	px := r.cfg.Proxy
	if px == nil {
		addrs, err := r.resolve(ctx, conn)
		return addrs, conn.Port, err
	}
	pc := *conn
	pc.Remote, pc.Family = px.Host, config.FamilyAny
	if px.Kind == config.ProxySOCKS && conn.Proto == config.ProtoUDP {
		pc.Family = config.FamilyIPv4
	}
	addrs, err := r.resolve(ctx, &pc)
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", proxyName(px), px.Host, err)
	}
	return addrs, px.Port, nil
}

// proxyCredentials returns the credentials for the proxy: the profile's, the
// ones asked for earlier, or new ones asked for now.
func (r *runner) proxyCredentials(ctx context.Context, px *config.Proxy) (*proxyCreds, error) {
	if px.Creds != nil {
		return &proxyCreds{user: px.Creds.User, pass: px.Creds.Pass}, nil
	}
	if r.proxyCreds != nil {
		return r.proxyCreds, nil
	}
	ask := r.s.opts.ProxyCredentials
	if ask == nil {
		return nil, fmt.Errorf("the %s needs a username and password and nothing can ask for them: give them in a file or an inline <%s-user-pass> block",
			proxyName(px), map[config.ProxyKind]string{config.ProxyHTTP: "http-proxy", config.ProxySOCKS: "socks-proxy"}[px.Kind])
	}
	r.s.logf(1, "asking for the %s's username and password", proxyName(px))
	actx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	user, pass, err := ask(actx, proxyName(px))
	if err != nil {
		return nil, fmt.Errorf("asking for the %s's credentials: %w", proxyName(px), err)
	}
	if len(user) > 255 || len(pass) > 255 || strings.ContainsAny(user, ":\x00\r\n") || strings.ContainsAny(pass, "\x00\r\n") {
		return nil, fmt.Errorf("%s credentials: a username or password is too long or has a character that cannot be sent", proxyName(px))
	}
	r.proxyCreds = &proxyCreds{user: user, pass: pass, asked: true}
	return r.proxyCreds, nil
}

// credsRefused forgets asked credentials after the proxy refused them.
func (r *runner) credsRefused(c *proxyCreds) {
	if c != nil && c.asked {
		r.proxyCreds = nil
	}
}

// dialProxy opens the transport of one attempt through the profile's proxy at
// proxyAddr.
func (r *runner) dialProxy(ctx context.Context, conn *config.Connection, proxyAddr netip.AddrPort, o udpDialOptions) (packetConn, error) {
	px := r.cfg.Proxy
	target := net.JoinHostPort(conn.Remote, strconv.Itoa(int(conn.Port)))
	r.s.logf(1, "connecting to %s through the %s at %v", target, proxyName(px), proxyAddr)
	switch {
	case px.Kind == config.ProxyHTTP:
		return r.dialHTTPProxy(ctx, px, proxyAddr, target, o)
	case conn.Proto == config.ProtoTCP:
		return r.dialSOCKSTCP(ctx, px, proxyAddr, target, o)
	default:
		return r.dialSOCKSUDP(ctx, conn, px, proxyAddr, o)
	}
}

// tcpDialer is the dialer for TCP connections, to the server or to a proxy, with the socket options
// and local address the profile asks for.
func tcpDialer(o udpDialOptions) *net.Dialer {
	d := &net.Dialer{
		Control: o.control,
	}
	if o.Local.IsValid() || o.Local.Port() != 0 {
		d.LocalAddr = net.TCPAddrFromAddrPort(o.Local)
	}
	return d
}

func dialProxyTCP(ctx context.Context, addr netip.AddrPort, o udpDialOptions) (*net.TCPConn, error) {
	c, err := tcpDialer(o).DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("connecting to the proxy at %v: %w", addr, err)
	}
	tc := c.(*net.TCPConn)
	_ = tc.SetNoDelay(true)
	return tc, nil
}

// withDeadline bounds a handshake on c by ctx: cancelling ctx or reaching its
// deadline makes blocked reads and writes fail. The returned function lifts it.
func withDeadline(ctx context.Context, c net.Conn) func() {
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		_ = c.SetDeadline(time.Time{})
	}
}

// dialHTTPProxy connects through an HTTP proxy with CONNECT. Like OpenVPN it
// sends Basic credentials with the first request for "basic", and for
// "auto"/"auto-nct" only after the proxy answered 407 with a Basic challenge,
// on a new connection.
func (r *runner) dialHTTPProxy(ctx context.Context, px *config.Proxy, addr netip.AddrPort, target string, o udpDialOptions) (packetConn, error) {
	var creds *proxyCreds
	sendAuth := px.Auth == config.ProxyAuthBasic
	for {
		if sendAuth && creds == nil {
			var err error
			if creds, err = r.proxyCredentials(ctx, px); err != nil {
				return nil, err
			}
		}
		tc, err := dialProxyTCP(ctx, addr, o)
		if err != nil {
			return nil, err
		}
		req := connectRequest(px, target, credsIf(sendAuth, creds))
		lift := withDeadline(ctx, tc)
		br := bufio.NewReaderSize(tc, tcpReadBuffer)
		resp, err := httpConnect(tc, br, req)
		lift()
		if err != nil {
			tc.Close()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("HTTP proxy at %v: %w", addr, ctx.Err())
			}
			return nil, fmt.Errorf("HTTP proxy at %v: %w", addr, err)
		}
		if resp.status/100 == 2 {
			r.s.logf(1, "HTTP proxy at %v connected to %s (%s)", addr, target, resp.statusLine)
			t := newTCPConn(tc, addr)
			t.r = br // it may hold bytes that arrived behind the response
			return t, nil
		}
		tc.Close()
		if resp.status != 407 {
			return nil, fmt.Errorf("HTTP proxy at %v refused CONNECT %s: %s", addr, target, resp.statusLine)
		}
		switch {
		case sendAuth:
			r.credsRefused(creds)
			return nil, fmt.Errorf("HTTP proxy at %v refused the credentials (%s)", addr, resp.statusLine)
		case px.Auth == config.ProxyAuthNone:
			return nil, fmt.Errorf("HTTP proxy at %v needs authentication (%s); give http-proxy credentials or \"auto\"", addr, resp.statusLine)
		case !resp.offers("basic"):
			return nil, fmt.Errorf("HTTP proxy at %v asks for %s authentication; ovpnd supports Basic only", addr, strings.Join(resp.schemes, ", "))
		case px.Auth == config.ProxyAuthAutoNCT:
			return nil, fmt.Errorf("HTTP proxy at %v asks for Basic authentication, which sends the password in clear text and auto-nct does not allow", addr)
		}
		r.s.logf(2, "HTTP proxy at %v asks for Basic authentication", addr)
		sendAuth = true
	}
}

func credsIf(ok bool, c *proxyCreds) *proxyCreds {
	if ok {
		return c
	}
	return nil
}

// connectRequest is the CONNECT request OpenVPN's proxy.c sends: the request
// line in the configured HTTP version, Host for 1.1, User-Agent, the custom
// headers, and Basic credentials when given.
func connectRequest(px *config.Proxy, target string, creds *proxyCreds) []byte {
	var b strings.Builder
	version := px.Version
	if version == "" {
		version = "1.0"
	}
	fmt.Fprintf(&b, "CONNECT %s HTTP/%s\r\n", target, version)
	if version == "1.1" {
		host, _, _ := net.SplitHostPort(target)
		fmt.Fprintf(&b, "Host: %s\r\n", host)
	}
	if px.Agent != "" {
		fmt.Fprintf(&b, "User-Agent: %s\r\n", px.Agent)
	}
	for _, h := range px.Headers {
		if h.Content == "" {
			fmt.Fprintf(&b, "%s\r\n", h.Name)
		} else {
			fmt.Fprintf(&b, "%s: %s\r\n", h.Name, h.Content)
		}
	}
	if creds != nil {
		fmt.Fprintf(&b, "Proxy-Authorization: Basic %s\r\n", base64.StdEncoding.EncodeToString([]byte(creds.user+":"+creds.pass)))
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// httpResponse is what ovpnd reads of a proxy's answer to CONNECT.
type httpResponse struct {
	status     int
	statusLine string   // sanitized, for messages
	schemes    []string // Proxy-Authenticate schemes, lower case
}

func (h httpResponse) offers(scheme string) bool {
	for _, s := range h.schemes {
		if s == scheme {
			return true
		}
	}
	return false
}

// httpConnect sends req and reads the response head.
func httpConnect(c net.Conn, br *bufio.Reader, req []byte) (httpResponse, error) {
	if _, err := c.Write(req); err != nil {
		return httpResponse{}, fmt.Errorf("sending CONNECT: %w", err)
	}
	return readHTTPResponse(br)
}

// Bounds of a CONNECT response head.
const (
	maxHTTPLine    = 4096
	maxHTTPHeaders = 100
)

var errHTTPResponse = errors.New("malformed response to CONNECT")

// readHTTPResponse reads the status line and headers of an HTTP/1.x response,
// up to and including the empty line, and nothing more: what follows belongs
// to the tunnel.
func readHTTPResponse(br *bufio.Reader) (httpResponse, error) {
	var h httpResponse
	line, err := readHTTPLine(br)
	if err != nil {
		return h, err
	}
	// HTTP/1.x SP 3DIGIT [SP reason]
	proto, rest, _ := strings.Cut(line, " ")
	if proto != "HTTP/1.0" && proto != "HTTP/1.1" || len(rest) < 3 || len(rest) > 3 && rest[3] != ' ' {
		return h, fmt.Errorf("%w: status line %q", errHTTPResponse, truncate(safeText(line), 80))
	}
	code, err := strconv.Atoi(rest[:3])
	if err != nil || code < 100 {
		return h, fmt.Errorf("%w: status line %q", errHTTPResponse, truncate(safeText(line), 80))
	}
	h.status, h.statusLine = code, truncate(safeText(line), 120)
	for n := 0; ; n++ {
		if n > maxHTTPHeaders {
			return h, fmt.Errorf("%w: more than %d header lines", errHTTPResponse, maxHTTPHeaders)
		}
		line, err := readHTTPLine(br)
		if err != nil {
			return h, err
		}
		if line == "" {
			return h, nil
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue // tolerated, as OpenVPN ignores what it does not look for
		}
		if strings.EqualFold(strings.TrimSpace(name), "Proxy-Authenticate") {
			scheme, _, _ := strings.Cut(strings.TrimSpace(value), " ")
			if scheme != "" && len(h.schemes) < 8 {
				h.schemes = append(h.schemes, strings.ToLower(truncate(safeText(scheme), 32)))
			}
		}
	}
}

// readHTTPLine reads one CRLF- (or LF-) terminated line of at most maxHTTPLine bytes.
func readHTTPLine(br *bufio.Reader) (string, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > maxHTTPLine {
			return "", fmt.Errorf("%w: a line longer than %d bytes", errHTTPResponse, maxHTTPLine)
		}
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", fmt.Errorf("reading the proxy's response: %w", err)
		}
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// dialSOCKSTCP connects through a SOCKS5 proxy with golang.org/x/net/proxy,
// offering username/password authentication when the profile has credentials
// (or says to ask for them). The tunnel then runs over the proxy connection.
func (r *runner) dialSOCKSTCP(ctx context.Context, px *config.Proxy, addr netip.AddrPort, target string, o udpDialOptions) (packetConn, error) {
	var auth *xproxy.Auth
	var creds *proxyCreds
	if px.Creds != nil || px.Ask {
		var err error
		if creds, err = r.proxyCredentials(ctx, px); err != nil {
			return nil, err
		}
		auth = &xproxy.Auth{User: creds.user, Password: creds.pass}
	}
	fwd := &recordingDialer{d: tcpDialer(o)}
	d, err := xproxy.SOCKS5("tcp", addr.String(), auth, fwd)
	if err != nil {
		return nil, fmt.Errorf("SOCKS proxy at %v: %w", addr, err)
	}
	c, err := d.(xproxy.ContextDialer).DialContext(ctx, "tcp", target)
	if err != nil {
		if fwd.conn != nil {
			fwd.conn.Close()
		}
		if strings.Contains(err.Error(), "username/password authentication failed") {
			r.credsRefused(creds)
		}
		return nil, fmt.Errorf("SOCKS proxy at %v: %w", addr, err)
	}
	tc := fwd.conn
	if tc == nil {
		c.Close()
		return nil, fmt.Errorf("SOCKS proxy at %v: no TCP connection", addr)
	}
	_ = tc.SetNoDelay(true)
	r.s.logf(1, "SOCKS proxy at %v connected to %s", addr, target)
	// The SOCKS dialer reads exactly the handshake's bytes, so the tunnel
	// continues on the TCP connection itself.
	return newTCPConn(tc, addr), nil
}

// recordingDialer is the SOCKS dialer's way to the proxy: it keeps the TCP
// connection it made so the tunnel can use it directly.
type recordingDialer struct {
	d    *net.Dialer
	conn *net.TCPConn
}

func (r *recordingDialer) Dial(network, addr string) (net.Conn, error) {
	return r.DialContext(context.Background(), network, addr)
}

func (r *recordingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := r.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to the proxy: %w", err)
	}
	r.conn = c.(*net.TCPConn)
	return c, nil
}
