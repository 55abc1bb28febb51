package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PushSource is the file name Warnings and Errors from pushed options carry; Line is the
// option's 1-based position in the list.
const PushSource = "PUSH_REPLY"

// Pushed is what a server pushed, after the allow-list. Nil pointers and zero values mean
// "not pushed"; the session merges it over the profile's settings.
type Pushed struct {
	Net NetSettings

	Ping              *time.Duration
	PingTimeout       *time.Duration
	PingTimeoutAction PingAction
	RenegInterval     *time.Duration
	TunMTU            *int
	MSSFix            *int
	// RouteDelay and RouteDelayWin are a pushed route-delay (nil when not pushed).
	RouteDelay    *time.Duration
	RouteDelayWin *time.Duration
	// Cipher is the negotiated data cipher (upper case); the engine checks it against
	// Config.DataCiphers.
	Cipher string
	// PeerID is the DATA_V2 peer id.
	PeerID *uint32
	// ProtocolFlags are the words of protocol-flags (cc-exit, tls-ekm, dyn-tls-crypt, ...).
	ProtocolFlags []string
	// KeyDerivation is "tls-ekm" when the server asked for exporter-derived keys.
	KeyDerivation string
	// AuthToken replaces the password on later authentications; AuthTokenUser (decoded from
	// base64) replaces the username.
	AuthToken          string
	AuthTokenUser      string
	ExplicitExitNotify *int
	Compression        *Compression
	// PushContinuation is 2 when more PUSH_REPLY messages follow, 1 on the last, 0 if absent.
	PushContinuation int
	// Options are the accepted option lines, in order, as the server sent them.
	Options []string
}

// ParsePush applies the push allow-list to a server's option list without any profile
// settings (no pull-filter, no route-nopull). Unknown and forbidden options are dropped with a
// warning; a malformed allowed option is dropped with a warning too, because one odd option
// must not cost the whole connection.
func ParsePush(options []string) (*Pushed, []Warning) {
	pp := &pushParser{out: &Pushed{}}
	for i, o := range options {
		pp.option(i+1, o)
	}
	return pp.out, pp.warns
}

// ParsePush applies the profile's pull-filter rules (first match decides: accept keeps the
// option, ignore drops it with a warning, reject fails with an error as OpenVPN does, which
// ends the connection attempt) and route-nopull (pushed routes, redirect-gateway and DNS
// settings are dropped), then the push allow-list.
func (c *Config) ParsePush(options []string) (*Pushed, []Warning, error) {
	pp := &pushParser{out: &Pushed{}}
	for i, o := range options {
		line := i + 1
		opt := strings.TrimSpace(o)
		verdict := FilterAccept
		for _, f := range c.PullFilters {
			if strings.HasPrefix(opt, f.Text) {
				verdict = f.Action
				break
			}
		}
		switch verdict {
		case FilterReject:
			return nil, pp.warns, &Error{File: PushSource, Line: line, Msg: fmt.Sprintf("pushed option %q rejected by pull-filter", RedactOption(opt))}
		case FilterIgnore:
			pp.warnf(line, "ignoring pushed option %q (pull-filter)", RedactOption(opt))
			continue
		}
		if c.RouteNoPull && routeNoPullDrops[firstWord(opt)] {
			pp.warnf(line, "ignoring pushed option %q (route-nopull)", RedactOption(opt))
			continue
		}
		pp.option(line, o)
	}
	return pp.out, pp.warns, nil
}

// ParsePushReply parses a raw control message "PUSH_REPLY,opt,opt,..." (a trailing NUL is
// allowed) with ParsePush.
func ParsePushReply(msg string) (*Pushed, []Warning, error) {
	opts, err := SplitPushReply(msg)
	if err != nil {
		return nil, nil, err
	}
	p, w := ParsePush(opts)
	return p, w, nil
}

// SplitPushReply returns the option lines of a "PUSH_REPLY,..." control message.
func SplitPushReply(msg string) ([]string, error) {
	if len(msg) > MaxPushReplySize {
		return nil, &Error{File: PushSource, Msg: fmt.Sprintf("push reply is larger than %d bytes", MaxPushReplySize)}
	}
	msg = strings.TrimRight(msg, "\x00")
	rest, ok := strings.CutPrefix(msg, "PUSH_REPLY")
	if !ok || (rest != "" && rest[0] != ',') {
		return nil, &Error{File: PushSource, Msg: "message does not start with PUSH_REPLY"}
	}
	var opts []string
	for _, o := range strings.Split(strings.TrimPrefix(rest, ","), ",") {
		if strings.TrimSpace(o) != "" {
			opts = append(opts, o)
		}
	}
	return opts, nil
}

// routeNoPullDrops are the pushed options route-nopull discards (OpenVPN's route and DHCP/DNS
// option classes).
var routeNoPullDrops = map[string]bool{
	"route": true, "route-ipv6": true, "redirect-gateway": true, "redirect-private": true,
	"dhcp-option": true, "dns": true, "block-outside-dns": true,
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i]
	}
	return s
}

type pushParser struct {
	out   *Pushed
	warns []Warning
}

func (pp *pushParser) warnf(line int, format string, args ...any) {
	pp.warns = append(pp.warns, Warning{File: PushSource, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// pushIgnored are options servers commonly push that a Linux client has no use for.
var pushIgnored = map[string]string{
	"block-outside-dns": "Windows only",
	"register-dns":      "Windows only",
	"ip-win32":          "Windows only",
	"route-method":      "Windows only",
	"dhcp-pre-release":  "Windows only",
	"dhcp-renew":        "Windows only",
	"dhcp-release":      "Windows only",
	"tun-ipv6":          "obsolete",
	"sndbuf":            "ovpnd sizes socket buffers itself",
	"rcvbuf":            "ovpnd sizes socket buffers itself",
	"socket-flags":      "ovpnd sets socket options itself",
	"inactive":          "not implemented",
	"echo":              "ovpnd has no GUI to echo to",
	"setenv":            "ovpnd never runs scripts",
	"ping-timer-rem":    "ovpnd always runs the ping timer",
	"persist-tun":       "ovpnd keeps the device across reconnects anyway",
	"persist-key":       "ovpnd keeps keys across reconnects anyway",
	"comp-noadapt":      "ovpnd never compresses",
}

func (pp *pushParser) option(line int, raw string) {
	if len(pp.out.Options) >= MaxListEntries {
		pp.warnf(line, "too many pushed options; ignoring the rest")
		return
	}
	words, err := splitWords(raw)
	if err != nil {
		pp.warnf(line, "ignoring malformed pushed option %q: %v", RedactOption(raw), err)
		return
	}
	if len(words) == 0 {
		return
	}
	if len(words) > MaxArgs+1 {
		pp.warnf(line, "ignoring pushed option %s: more than %d arguments", words[0], MaxArgs)
		return
	}
	name, a := words[0], words[1:]
	if why, ok := pushIgnored[name]; ok {
		pp.warnf(line, "ignoring pushed option %s: %s", name, why)
		return
	}
	h, ok := pushHandlers[name]
	if !ok {
		if table[name] != nil {
			pp.warnf(line, "dropping pushed option %s: a server may not push it", name)
		} else {
			pp.warnf(line, "ignoring unknown pushed option %q", name)
		}
		return
	}
	if len(a) < h.min || len(a) > h.max {
		pp.warnf(line, "ignoring pushed option %q: wrong number of arguments", RedactOption(strings.TrimSpace(raw)))
		return
	}
	if err := h.apply(pp.out, a, name); err != nil {
		pp.warnf(line, "ignoring pushed option %q: %v", RedactOption(strings.TrimSpace(raw)), err)
		return
	}
	pp.out.Options = append(pp.out.Options, strings.TrimSpace(raw))
}

type pushHandler struct {
	min, max int
	apply    func(p *Pushed, a []string, name string) error
}

func pushNet(p *Pushed, a []string, name string) error {
	if len(p.Net.Routes)+len(p.Net.RoutesIPv6)+len(p.Net.DHCPOptions) >= MaxListEntries {
		return errors.New("too many entries")
	}
	return applyNetSetting(&p.Net, a, name)
}

func pushSeconds(field func(p *Pushed) **time.Duration) func(p *Pushed, a []string, name string) error {
	return func(p *Pushed, a []string, name string) error {
		d, err := parseSeconds(a[0])
		if err != nil {
			return err
		}
		*field(p) = &d
		return nil
	}
}

// pushHandlers is the push allow-list. Every name here is also in the directive table, which
// records the profile-side meaning; docs/config.md marks these as pushable.
var pushHandlers = map[string]pushHandler{
	"route":              {1, 4, pushNet},
	"route-ipv6":         {1, 3, pushNet},
	"route-gateway":      {1, 1, pushNet},
	"route-ipv6-gateway": {1, 1, pushNet},
	"route-metric":       {1, 1, pushNet},
	"redirect-gateway":   {0, 8, pushNet},
	"redirect-private":   {0, 8, pushNet},
	"ifconfig":           {2, 2, pushNet},
	"ifconfig-ipv6":      {1, 2, pushNet},
	"topology":           {1, 1, pushNet},
	"dhcp-option":        {1, 3, pushNet},
	"dns":                {2, MaxArgs, pushNet},
	"block-ipv6":         {0, 0, pushNet},
	"ping":               {1, 1, pushSeconds(func(p *Pushed) **time.Duration { return &p.Ping })},
	"reneg-sec":          {1, 2, pushSeconds(func(p *Pushed) **time.Duration { return &p.RenegInterval })},
	"ping-restart": {1, 1, func(p *Pushed, a []string, name string) error {
		p.PingTimeoutAction = PingRestart
		return pushSeconds(func(p *Pushed) **time.Duration { return &p.PingTimeout })(p, a, name)
	}},
	"ping-exit": {1, 1, func(p *Pushed, a []string, name string) error {
		p.PingTimeoutAction = PingExit
		return pushSeconds(func(p *Pushed) **time.Duration { return &p.PingTimeout })(p, a, name)
	}},
	"keepalive": {2, 2, func(p *Pushed, a []string, name string) error {
		ping, err := parseSeconds(a[0])
		if err != nil {
			return err
		}
		to, err := parseSeconds(a[1])
		if err != nil {
			return err
		}
		p.Ping, p.PingTimeout, p.PingTimeoutAction = &ping, &to, PingRestart
		return nil
	}},
	"tun-mtu": {1, 1, func(p *Pushed, a []string, name string) error {
		n, err := parseTunMTU(a[0])
		if err == nil {
			p.TunMTU = &n
		}
		return err
	}},
	"mssfix": {0, 2, func(p *Pushed, a []string, name string) error {
		n, _, _, err := parseMSSFix(a)
		if err == nil {
			p.MSSFix = &n
		}
		return err
	}},
	"cipher": {1, 1, func(p *Pushed, a []string, name string) error {
		c := strings.ToUpper(a[0])
		if !supportedCiphers[c] {
			return fmt.Errorf("cipher %s is not supported", a[0])
		}
		p.Cipher = c
		return nil
	}},
	"peer-id": {1, 1, func(p *Pushed, a []string, name string) error {
		n, err := strconv.ParseUint(a[0], 10, 32)
		if err != nil || n > 0xFFFFFF {
			return fmt.Errorf("peer id %q is not a number below 2^24", a[0])
		}
		id := uint32(n)
		p.PeerID = &id
		return nil
	}},
	"protocol-flags": {1, MaxArgs, func(p *Pushed, a []string, name string) error {
		p.ProtocolFlags = append(p.ProtocolFlags, a...)
		return nil
	}},
	"key-derivation": {1, 1, func(p *Pushed, a []string, name string) error {
		if a[0] != "tls-ekm" {
			return fmt.Errorf("unknown method %q", a[0])
		}
		p.KeyDerivation = a[0]
		return nil
	}},
	"auth-token": {1, 1, func(p *Pushed, a []string, name string) error {
		p.AuthToken = a[0]
		return nil
	}},
	"auth-token-user": {1, 1, func(p *Pushed, a []string, name string) error {
		u, err := base64.StdEncoding.DecodeString(a[0])
		if err != nil {
			return fmt.Errorf("not base64: %w", err)
		}
		p.AuthTokenUser = string(u)
		return nil
	}},
	"explicit-exit-notify": {0, 1, func(p *Pushed, a []string, name string) error {
		n := 1
		if len(a) > 0 {
			var err error
			if n, err = parseInt(a[0], 1000); err != nil {
				return err
			}
		}
		p.ExplicitExitNotify = &n
		return nil
	}},
	"route-delay": {0, 2, func(p *Pushed, a []string, name string) error {
		var d, w time.Duration
		var err error
		if len(a) > 0 {
			if d, err = parseSeconds(a[0]); err != nil {
				return err
			}
		}
		if len(a) > 1 {
			if w, err = parseSeconds(a[1]); err != nil {
				return err
			}
		}
		p.RouteDelay, p.RouteDelayWin = &d, &w
		return nil
	}},
	"comp-lzo": {0, 1, pushCompression},
	"compress": {0, 1, pushCompression},
	"push-continuation": {1, 1, func(p *Pushed, a []string, name string) error {
		if a[0] != "1" && a[0] != "2" {
			return fmt.Errorf("%q is not 1 or 2", a[0])
		}
		p.PushContinuation = int(a[0][0] - '0')
		return nil
	}},
}

func pushCompression(p *Pushed, a []string, name string) error {
	c, err := parseCompression(name, a)
	if err != nil {
		return err
	}
	p.Compression = &c
	return nil
}
