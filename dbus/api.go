// Package dbus holds ovpnd's D-Bus API contract, shared by the daemon and ovpnctl: the
// introspection XML (net.ovpnd1.xml, version 1), bus names, object paths, error names,
// the session-state vocabulary and the input limits the daemon enforces.
package dbus

import (
	_ "embed" // the introspection XML is the contract
	"strings"
)

// Introspection is dbus/net.ovpnd1.xml: the versioned API definition. The daemon serves
// these interfaces; a test compares what a live daemon exports with this text.
//
//go:embed net.ovpnd1.xml
var Introspection string

// Names and paths of the API.
const (
	// Version is the API version reported by the Manager's Version property.
	Version = "1"
	// BusName is the manager's well-known name on the system bus.
	BusName = "net.ovpnd1"
	// InstanceBusPrefix starts the name an ovpnd@NAME instance owns: the prefix followed
	// by EscapeLabel(NAME).
	InstanceBusPrefix = "net.ovpnd1.instance."
	// ManagerPath is the manager object.
	ManagerPath = "/net/ovpnd1"
	// SessionPathPrefix starts every session object's path.
	SessionPathPrefix = "/net/ovpnd1/session/"
	// ManagerInterface and SessionInterface are the API's interfaces.
	ManagerInterface = "net.ovpnd1.Manager"
	SessionInterface = "net.ovpnd1.Session"
	// PropertiesInterface is the standard properties interface (PropertiesChanged).
	PropertiesInterface = "org.freedesktop.DBus.Properties"
)

// Polkit actions the daemon checks.
const (
	ActionStart = "net.ovpnd1.start"
	// ActionOverride lets a non-root owner's session take routes and
	// addresses that belong to another user's session or to the host's own
	// links (docs/networking.md); auth_admin by default, never granted by
	// the no-polkit group fallback.
	ActionOverride = "net.ovpnd1.override"
)

// Error names. Every D-Bus error the daemon returns is one of these, with a message that
// names the culprit.
const (
	ErrNotFound        = "net.ovpnd1.Error.NotFound"
	ErrAccessDenied    = "net.ovpnd1.Error.AccessDenied"
	ErrInvalidProfile  = "net.ovpnd1.Error.InvalidProfile"
	ErrInvalidArgument = "net.ovpnd1.Error.InvalidArgument"
	ErrExists          = "net.ovpnd1.Error.Exists"
	ErrLimitExceeded   = "net.ovpnd1.Error.LimitExceeded"
	ErrNotWaiting      = "net.ovpnd1.Error.NotWaiting"
	ErrFailed          = "net.ovpnd1.Error.Failed"
)

// Limits on what callers send.
const (
	// MaxProfileSize is the largest profile Start accepts (the same as config.MaxConfigSize).
	MaxProfileSize = 1 << 20
	// MaxNameLen is the longest session name.
	MaxNameLen = 64
	// MaxInputLen bounds a ProvideInput value; OpenVPN's own buffers for a username or
	// password are no larger.
	MaxInputLen = 4096
	// MaxSessions bounds concurrently running sessions per daemon.
	MaxSessions = 64
	// MaxSessionsPerUser bounds the sessions one non-root user may run.
	MaxSessionsPerUser = 8
	// MaxSubscribers bounds the connections subscribed to one object's signals.
	MaxSubscribers = 32
	// MaxSubscriptionsPerUser bounds the connections of one non-root uid subscribed to one
	// object, so one user cannot fill an object's table (the manager's or a session's).
	MaxSubscriptionsPerUser = 4
	// MaxFinishedPerUser bounds the finished sessions kept for one uid (and MaxFinished
	// for all): a Start beyond it forgets that user's oldest finished session.
	MaxFinishedPerUser = 4
	MaxFinished        = 64
	// MaxLogLine bounds one log line kept or sent.
	MaxLogLine = 2048
	// LogHistoryLines is how many log lines a session keeps for LogHistory.
	LogHistoryLines = 512
)

// Session states, the values of the State property.
const (
	StateIdle           = "idle"
	StateResolving      = "resolving"
	StateConnecting     = "connecting"
	StateTLSHandshake   = "tls-handshake"
	StateAuthenticating = "authenticating"
	// StateAuthPending: the server waits for out-of-band authentication (a web login, a
	// CR_TEXT answer, or an approval it arranges itself); StateReason says what for.
	StateAuthPending  = "auth-pending"
	StateWaitingInput = "waiting-input"
	StateConnected    = "connected"
	StateReconnecting = "reconnecting"
	StateExiting      = "exiting"
	StateDisconnected = "disconnected"
	StateFailed       = "failed"
)

// Input kinds of PendingInput and InputRequired.
const (
	InputUsername = "username"
	InputPassword = "password"
	// InputStaticChallenge is the code the profile's static-challenge asks for.
	InputStaticChallenge = "static-challenge"
	// InputChallenge answers a server's CRV1 challenge.
	InputChallenge = "challenge"
	// InputCRText answers a CR_TEXT challenge of a pending authentication.
	InputCRText = "cr-text"
	// InputWebLogin is a web login at the entry's URL: listed, never answered (ProvideInput
	// refuses it); it disappears when the server completes or refuses the login.
	InputWebLogin = "web-login"
)

// ValidName reports whether s may name a session: 1-64 characters of [A-Za-z0-9_.@-].
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '.', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}

// EscapeLabel escapes s for use as one object-path element or bus-name element, as
// systemd does: bytes other than [A-Za-z0-9], and a leading digit, become _xx (lower-case
// hex). The empty string becomes "_".
func EscapeLabel(s string) string {
	if s == "" {
		return "_"
	}
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		digit := c >= '0' && c <= '9'
		if alpha || digit && i > 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// UnescapeLabel reverses EscapeLabel; ok is false for text EscapeLabel cannot produce.
func UnescapeLabel(s string) (string, bool) {
	if s == "_" {
		return "", true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	out := b.String()
	if EscapeLabel(out) != s {
		return "", false
	}
	return out, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// SessionPath is the object path of the session called name.
func SessionPath(name string) string { return SessionPathPrefix + EscapeLabel(name) }

// InstanceBusName is the bus name the ovpnd@NAME instance owns.
func InstanceBusName(name string) string { return InstanceBusPrefix + EscapeLabel(name) }
