// Package push is the one grammar for the options an OpenVPN server pushes (PUSH_REPLY).
//
// Every pushed option is read exactly once, here: Parse splits each option line into canonical
// words (Words: quotes and escapes removed), applies the profile's pull-filter rules and
// route-nopull to that canonical text, checks the option against the allow-list and its
// arguments against the grammar, and returns a typed Reply. Nothing downstream re-reads the
// server's text: the engine takes the protocol options (cipher, peer-id, keepalive timers,
// reneg-sec, protocol-flags, key-derivation, compression, auth-token, explicit-exit-notify)
// from the Reply's typed fields, and the session takes the network options from Reply.Net
// (canonical words, already filtered and arity-checked; config parses their values with the
// same code that reads them in a profile) plus the typed TunMTU, MSSFix and RouteDelay.
//
// Every option ends in exactly one of: accepted (listed in Reply.Accepted, and in Reply.Net
// when it is a network option), ignored with a Warning that says why (unknown, forbidden,
// malformed, filtered), or rejected by a "pull-filter reject" rule (Parse returns a
// *RejectError and no Reply; OpenVPN restarts the connection then). Warnings and errors never carry an auth-token: Redact hides
// the arguments of auth-token and auth-token-user however the server spelled them.
//
// The package is sans-IO like the rest of the engine (no net, no os, no clock) so that both
// the engine and config can import it. A later PUSH_UPDATE (OpenVPN 2.7) reuses Parse: an
// update is a list of option lines like a reply.
//
// Usage:
//
//	r, err := push.Parse(lines, push.Policy{Filters: filters, RouteNoPull: nopull})
//	var rej *push.RejectError
//	if errors.As(err, &rej) { /* end the connection attempt */ }
//	for _, w := range r.Warnings { log(w) }
package push

import (
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Limits on a reply, for hostile servers.
const (
	// MaxOptions is the most option lines Parse reads; the rest are ignored with a warning.
	MaxOptions = 4096
	// MaxArgs is the most arguments one option may carry (OpenVPN's own limit is 16 words).
	MaxArgs = 16
	// maxUserPassLen matches OpenVPN's USER_PASS_LEN bound on tokens and user names.
	maxUserPassLen = 128
)

// Action is a pull-filter verdict.
type Action uint8

// pull-filter actions.
const (
	Accept Action = iota
	Ignore
	Reject
)

var actionNames = []string{"accept", "ignore", "reject"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// Filter is one pull-filter rule: it matches an option whose canonical text (words joined by
// one space) starts with Text (runs of blanks in Text count as one space).
type Filter struct {
	Action Action
	Text   string
}

// Policy is what the profile says about pushes: its pull-filter rules in order (the first
// match decides) and route-nopull.
type Policy struct {
	Filters     []Filter
	RouteNoPull bool
}

// Option is one accepted option: its position in the reply (1-based), canonical name and
// canonical arguments.
type Option struct {
	Line int
	Name string
	Args []string
}

// String is the option's canonical text with auth-token arguments redacted: safe to log.
func (o Option) String() string {
	if secret[o.Name] && len(o.Args) > 0 {
		return o.Name + " " + Redacted
	}
	return canonical(append([]string{o.Name}, o.Args...))
}

// Warning is an option that was not applied, and why. Msg never carries a secret. Line is
// the option's position in the reply, 0 when the warning is about a value rather than a line.
type Warning struct {
	Line int
	Msg  string
}

func (w Warning) String() string {
	if w.Line == 0 {
		return "PUSH_REPLY: warning: " + w.Msg
	}
	return fmt.Sprintf("PUSH_REPLY:%d: warning: %s", w.Line, w.Msg)
}

// RejectError is a pushed option that matched a "pull-filter reject" rule: as in OpenVPN, the
// connection attempt ends.
type RejectError struct {
	Line   int
	Option string // redacted canonical text
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("PUSH_REPLY:%d: pushed option %q rejected by pull-filter", e.Line, e.Option)
}

// PingAction is what happens when no packet arrives for the ping timeout.
type PingAction uint8

// Ping timeout actions.
const (
	PingUnset   PingAction = iota
	PingRestart            // ping-restart, keepalive: reconnect
	PingExit               // ping-exit: end the session
)

// Compression is a pushed comp-lzo or compress.
type Compression uint8

// Pushed compression framings. CompNone is comp-lzo no (framing byte, never compresses).
const (
	CompUnset Compression = iota
	CompLZO               // comp-lzo [yes|adaptive|no]: LZO framing
	CompStub              // compress / compress stub
	CompStubV2
	CompLZ4
	CompLZ4V2
	CompLZOCompress // compress lzo
)

// Reneg is a pushed reneg-sec: renegotiate after a time between Min and Max (Min == Max
// unless the server gave both).
type Reneg struct {
	Max, Min time.Duration
}

// Reply is the typed, filtered result of one PUSH_REPLY (continuations joined). Nil pointers
// and zero values mean "not pushed".
type Reply struct {
	// Protocol options, applied by the engine.
	Cipher             string // upper case; the engine checks it against data-ciphers
	PeerID             *uint32
	Ping               *time.Duration
	PingTimeout        *time.Duration
	PingTimeoutAction  PingAction
	Reneg              *Reneg
	ProtocolFlags      []string
	KeyDerivation      string // "tls-ekm" or ""
	AuthToken          string
	AuthTokenUser      string // decoded from base64
	ExplicitExitNotify *int
	Compression        Compression

	// Session options.
	TunMTU        *int
	MSSFix        *int
	RouteDelay    *time.Duration
	RouteDelayWin *time.Duration

	// Net are the accepted network options (route, route-ipv6, route-gateway,
	// route-ipv6-gateway, route-metric, redirect-gateway, redirect-private, ifconfig,
	// ifconfig-ipv6, topology, dhcp-option, dns, block-ipv6) in order, canonical and
	// arity-checked. config.PushedNet reads their values with the profile grammar.
	Net []Option

	// Accepted is every accepted option in order (Net included).
	Accepted []Option
	// Warnings are the options not applied, and why.
	Warnings []Warning
}

// Parse reads a server's option lines (one entry per option, continuations joined, no
// push-continuation needed) under the profile's policy. It returns a *RejectError when a
// "pull-filter reject" rule matches; every other problem is a Warning and the option is not
// applied, since one odd option must not cost the connection.
func Parse(lines []string, pol Policy) (*Reply, error) {
	p := &parser{r: &Reply{}}
	filters := make([]Filter, len(pol.Filters))
	for i, f := range pol.Filters {
		filters[i] = Filter{Action: f.Action, Text: normalizeFilter(f.Text)}
	}
	for i, raw := range lines {
		line := i + 1
		if i >= MaxOptions {
			p.warnf(line, "more than %d pushed options; ignoring the rest", MaxOptions)
			break
		}
		words, err := Words(raw)
		if err != nil {
			p.warnf(line, "ignoring malformed pushed option %q: %v", Redact(raw), err)
			continue
		}
		if len(words) == 0 {
			continue
		}
		text := canonical(words)
		verdict := Accept
		for _, f := range filters {
			if strings.HasPrefix(text, f.Text) {
				verdict = f.Action
				break
			}
		}
		switch verdict {
		case Reject:
			return nil, &RejectError{Line: line, Option: redactWords(words)}
		case Ignore:
			p.warnf(line, "ignoring pushed option %q (pull-filter)", redactWords(words))
			continue
		}
		name := words[0]
		if pol.RouteNoPull && routeNoPull[name] {
			p.warnf(line, "ignoring pushed option %q (route-nopull)", redactWords(words))
			continue
		}
		p.option(line, name, words[1:])
	}
	return p.r, nil
}

// routeNoPull are the pushed options route-nopull discards (OpenVPN's route and DHCP/DNS
// option classes).
var routeNoPull = map[string]bool{
	"route": true, "route-ipv6": true, "redirect-gateway": true, "redirect-private": true,
	"dhcp-option": true, "dns": true, "block-outside-dns": true,
}

// Pushable reports whether a server may push the option name (docs list these).
func Pushable(name string) bool {
	_, ok := handlers[name]
	return ok || name == "push-continuation"
}

type parser struct {
	r *Reply
}

func (p *parser) warnf(line int, format string, args ...any) {
	p.r.Warnings = append(p.r.Warnings, Warning{Line: line, Msg: fmt.Sprintf(format, args...)})
}

// ignored are options servers commonly push that a Linux client has no use for.
var ignored = map[string]string{
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

func (p *parser) option(line int, name string, a []string) {
	if name == "push-continuation" {
		// The engine joins continuations before Parse; the marker itself carries nothing.
		if len(a) != 1 || (a[0] != "1" && a[0] != "2") {
			p.warnf(line, "ignoring malformed push-continuation")
		}
		return
	}
	if why, ok := ignored[name]; ok {
		p.warnf(line, "ignoring pushed option %s: %s", name, why)
		return
	}
	h, ok := handlers[name]
	if !ok {
		p.warnf(line, "ignoring pushed option %q: unknown, or a server may not push it", sanitizeName(name))
		return
	}
	if len(a) > MaxArgs || len(a) < h.min || len(a) > h.max {
		p.warnf(line, "ignoring pushed option %q: wrong number of arguments", redactWords(append([]string{name}, a...)))
		return
	}
	if len(p.r.Net) >= MaxOptions {
		p.warnf(line, "ignoring pushed option %s: too many entries", name)
		return
	}
	if err := h.apply(p.r, a, name); err != nil {
		p.warnf(line, "ignoring pushed option %q: %v", redactWords(append([]string{name}, a...)), err)
		return
	}
	o := Option{Line: line, Name: name, Args: append([]string(nil), a...)}
	if h.net {
		p.r.Net = append(p.r.Net, o)
	}
	p.r.Accepted = append(p.r.Accepted, o)
}

// sanitizeName bounds an unknown option name for a warning.
func sanitizeName(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

type handler struct {
	min, max int
	net      bool // a network option: values read by config.PushedNet
	apply    func(r *Reply, a []string, name string) error
}

// netOption accepts a network option; its values are parsed with the profile grammar.
func netOption(*Reply, []string, string) error { return nil }

func seconds(s string) (time.Duration, error) {
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number of seconds", s)
	}
	return time.Duration(n) * time.Second, nil
}

func number(s string, max uint64) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > max {
		return 0, fmt.Errorf("%q is not a number up to %d", s, max)
	}
	return int(n), nil
}

// optNumber is the optional first argument a as a number up to max, or def when it is absent.
func optNumber(a []string, def int, max uint64) (int, error) {
	if len(a) == 0 {
		return def, nil
	}
	return number(a[0], max)
}

func setSeconds(field func(r *Reply) **time.Duration) func(r *Reply, a []string, name string) error {
	return func(r *Reply, a []string, name string) error {
		d, err := seconds(a[0])
		if err != nil {
			return err
		}
		*field(r) = &d
		return nil
	}
}

// handlers is the push allow-list: every option a server may push, with its arity.
var handlers = map[string]handler{
	"route":              {1, 4, true, netOption},
	"route-ipv6":         {1, 3, true, netOption},
	"route-gateway":      {1, 1, true, netOption},
	"route-ipv6-gateway": {1, 1, true, netOption},
	"route-metric":       {1, 1, true, netOption},
	"redirect-gateway":   {0, 8, true, netOption},
	"redirect-private":   {0, 8, true, netOption},
	"ifconfig":           {2, 2, true, netOption},
	"ifconfig-ipv6":      {1, 2, true, netOption},
	"topology":           {1, 1, true, netOption},
	"dhcp-option":        {1, 3, true, netOption},
	"dns":                {2, MaxArgs, true, netOption},
	"block-ipv6":         {0, 0, true, netOption},
	"ping":               {1, 1, false, setSeconds(func(r *Reply) **time.Duration { return &r.Ping })},
	"reneg-sec": {1, 2, false, func(r *Reply, a []string, name string) error {
		max, err := seconds(a[0])
		if err != nil {
			return err
		}
		min := max
		if len(a) > 1 {
			if min, err = seconds(a[1]); err != nil {
				return err
			}
			if min > max {
				return fmt.Errorf("minimum %s is above maximum %s", a[1], a[0])
			}
		}
		r.Reneg = &Reneg{Max: max, Min: min}
		return nil
	}},
	"ping-restart": {1, 1, false, func(r *Reply, a []string, name string) error {
		r.PingTimeoutAction = PingRestart
		return setSeconds(func(r *Reply) **time.Duration { return &r.PingTimeout })(r, a, name)
	}},
	"ping-exit": {1, 1, false, func(r *Reply, a []string, name string) error {
		r.PingTimeoutAction = PingExit
		return setSeconds(func(r *Reply) **time.Duration { return &r.PingTimeout })(r, a, name)
	}},
	"keepalive": {2, 2, false, func(r *Reply, a []string, name string) error {
		ping, err := seconds(a[0])
		if err != nil {
			return err
		}
		to, err := seconds(a[1])
		if err != nil {
			return err
		}
		// options.c: on a client, keepalive N M is ping N plus ping-restart M.
		r.Ping, r.PingTimeout, r.PingTimeoutAction = &ping, &to, PingRestart
		return nil
	}},
	"tun-mtu": {1, 1, false, func(r *Reply, a []string, name string) error {
		n, err := number(a[0], 65535)
		if err != nil {
			return err
		}
		if n < 576 {
			return fmt.Errorf("tun-mtu %d is below 576", n)
		}
		r.TunMTU = &n
		return nil
	}},
	"mssfix": {0, 2, false, func(r *Reply, a []string, name string) error {
		n, err := optNumber(a, 1492, 65535)
		if err != nil {
			return err
		}
		if len(a) > 1 && a[1] != "mtu" && a[1] != "fixed" {
			return fmt.Errorf("unknown flag %q (want mtu or fixed)", a[1])
		}
		r.MSSFix = &n
		return nil
	}},
	"cipher": {1, 1, false, func(r *Reply, a []string, name string) error {
		if len(a[0]) > 64 {
			return fmt.Errorf("cipher name is longer than 64 bytes")
		}
		r.Cipher = strings.ToUpper(a[0])
		return nil
	}},
	"peer-id": {1, 1, false, func(r *Reply, a []string, name string) error {
		n, err := strconv.ParseUint(a[0], 10, 32)
		if err != nil || n > 0xFFFFFF {
			return fmt.Errorf("peer id %q is not a number below 2^24", a[0])
		}
		id := uint32(n)
		r.PeerID = &id
		return nil
	}},
	"protocol-flags": {1, MaxArgs, false, func(r *Reply, a []string, name string) error {
		r.ProtocolFlags = append(r.ProtocolFlags, a...)
		return nil
	}},
	"key-derivation": {1, 1, false, func(r *Reply, a []string, name string) error {
		if a[0] != "tls-ekm" {
			return fmt.Errorf("unknown method %q", a[0])
		}
		r.KeyDerivation = a[0]
		return nil
	}},
	"auth-token": {1, 1, false, func(r *Reply, a []string, name string) error {
		if a[0] == "" || len(a[0]) >= maxUserPassLen {
			return fmt.Errorf("token is empty or longer than %d bytes", maxUserPassLen-1)
		}
		r.AuthToken = a[0]
		return nil
	}},
	"auth-token-user": {1, 1, false, func(r *Reply, a []string, name string) error {
		u, err := base64.StdEncoding.DecodeString(a[0])
		if err != nil {
			return fmt.Errorf("not base64")
		}
		if len(u) == 0 || len(u) >= maxUserPassLen {
			return fmt.Errorf("user name is empty or longer than %d bytes", maxUserPassLen-1)
		}
		r.AuthTokenUser = string(u)
		return nil
	}},
	"explicit-exit-notify": {0, 1, false, func(r *Reply, a []string, name string) error {
		n, err := optNumber(a, 1, 1000)
		if err != nil {
			return err
		}
		r.ExplicitExitNotify = &n
		return nil
	}},
	"route-delay": {0, 2, false, func(r *Reply, a []string, name string) error {
		var d, w time.Duration
		var err error
		if len(a) > 0 {
			if d, err = seconds(a[0]); err != nil {
				return err
			}
		}
		if len(a) > 1 {
			if w, err = seconds(a[1]); err != nil {
				return err
			}
		}
		r.RouteDelay, r.RouteDelayWin = &d, &w
		return nil
	}},
	"comp-lzo": {0, 1, false, func(r *Reply, a []string, name string) error {
		if len(a) > 0 && a[0] != "yes" && a[0] != "no" && a[0] != "adaptive" {
			return fmt.Errorf("unknown mode %q (want yes, no or adaptive)", a[0])
		}
		r.Compression = CompLZO
		return nil
	}},
	"compress": {0, 1, false, func(r *Reply, a []string, name string) error {
		alg := ""
		if len(a) > 0 {
			alg = a[0]
		}
		switch alg {
		case "", "stub":
			r.Compression = CompStub
		case "stub-v2":
			r.Compression = CompStubV2
		case "lz4":
			r.Compression = CompLZ4
		case "lz4-v2":
			r.Compression = CompLZ4V2
		case "lzo":
			r.Compression = CompLZOCompress
		default:
			return fmt.Errorf("unknown algorithm %q", alg)
		}
		return nil
	}},
}

// Redacted is what Redact puts in place of a secret argument.
const Redacted = "[REDACTED]"

// secret are options whose arguments are credentials. OpenVPN masks auth-token in its logs
// for the same reason: a token logged at any verbosity is a password in the journal.
var secret = map[string]bool{"auth-token": true, "auth-token-user": true}

// Redact returns one option line (pushed or from a profile) safe to log: the arguments of
// auth-token and auth-token-user are replaced by [REDACTED], everything else is unchanged. The
// name is recognised however it is spelled (quotes, backslashes, blanks), since Words unquotes
// it before anything applies the token; a line that does not tokenize is judged by its first
// blank-separated field with quotes and backslashes removed.
func Redact(line string) string {
	s := strings.TrimLeft(line, " \t\r\v\f\n")
	first := s
	if i := strings.IndexAny(s, " \t\r\v\f\n"); i >= 0 {
		first = s[:i]
	}
	name := strings.NewReplacer(`"`, "", "'", "", `\`, "").Replace(first)
	if words, err := Words(s); err == nil && len(words) > 0 && secret[words[0]] {
		name = words[0]
	}
	if !secret[name] {
		return line
	}
	if strings.TrimSpace(s) == first {
		return line // no argument, nothing to hide
	}
	return name + " " + Redacted
}

// redactWords is the canonical text of a tokenized option, redacted.
func redactWords(words []string) string {
	return Option{Name: words[0], Args: words[1:]}.String()
}

// Names lists the options a server may push, sorted.
func Names() []string {
	names := []string{"push-continuation"}
	for n := range handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
