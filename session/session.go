// Package session runs one OpenVPN client connection: it resolves and connects to
// the remotes of a profile in turn, drives the sans-IO engine from a control loop,
// moves data packets between the tun device and the socket in a separate pair of
// loops, applies the pushed network settings through routing, and reconnects as
// OpenVPN would.
package session

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"sync"
	"time"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine"
	"github.com/ovpnd/ovpnd/routing"
)

// State is the session's connection state.
type State int

// Session states.
const (
	StateIdle State = iota
	StateResolving
	StateConnecting
	StateTLSHandshake
	StateAuthenticating
	// StateAuthPending: the server waits for out-of-band authentication (AUTH_PENDING): a
	// web login, a CR_TEXT answer, or something the server arranges by itself.
	StateAuthPending
	StateConnected
	StateReconnecting
	StateExiting
	StateDisconnected
	// StateWaitingInput: a credential prompt is outstanding (Options.Credentials runs).
	StateWaitingInput
	// StateFailed: Run returned an error; Reason says which.
	StateFailed
)

// stateNames is the one state vocabulary: the D-Bus State property, sd_notify STATUS= and the
// journal's OVPND_STATE all use these words (daemon's TestStateVocabulary pins them to dbus/).
var stateNames = [...]string{"idle", "resolving", "connecting", "tls-handshake", "authenticating", "auth-pending", "connected", "reconnecting", "exiting", "disconnected", "waiting-input", "failed"}

// States lists every State, for tests that pin the vocabulary.
func States() []State {
	out := make([]State, len(stateNames))
	for i := range out {
		out[i] = State(i)
	}
	return out
}

// Finished reports whether the state is final (Run has returned).
func (s State) Finished() bool { return s == StateDisconnected || s == StateFailed }

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds. State is not an event: it has one owner, the Session, and observers re-read
// Status when Watch wakes them, so a slow observer can miss a transient state but never
// publishes a stale one last.
const (
	// EventLog: Message is a log line at level Level.
	EventLog EventKind = iota + 1
	// EventAuthPending: the server waits for out-of-band authentication;
	// Message names the method.
	EventAuthPending
	// EventPrompt: the connection needs the user: Prompt says for what (a
	// challenge to answer through Options.Respond, or a web login to open).
	EventPrompt
)

// Prompt is one thing the connection asks the user (engine.Prompt).
type Prompt = engine.Prompt

// PromptKind says what a Prompt asks for (engine.PromptKind).
type PromptKind = engine.PromptKind

// Prompt kinds.
const (
	PromptPassword        = engine.PromptPassword
	PromptStaticChallenge = engine.PromptStaticChallenge
	PromptChallenge       = engine.PromptChallenge
	PromptCRText          = engine.PromptCRText
	PromptWebLogin        = engine.PromptWebLogin
)

// Event is a log notification for subscribers; events may be dropped.
type Event struct {
	Kind    EventKind
	Time    time.Time
	State   State // the state when the event was made
	Level   int
	Message string
	// Prompt is set for EventPrompt.
	Prompt *Prompt
}

// Status is a snapshot of the session.
type Status struct {
	State     State
	Reason    string
	Remote    netip.AddrPort // the server in use (zero when not connected)
	Local     netip.AddrPort // the local socket address of the connection (zero when none)
	Proto     string
	Link      string // tun device name
	Addrs     []netip.Prefix
	Connected time.Time // when the current connection came up
	// Cipher is the negotiated data-channel cipher (AES-256-GCM, ...); empty
	// until the server's push reply settled it.
	Cipher string
	// DNSMode is how the tunnel's DNS settings are applied:
	// "systemd-resolved", "resolv.conf" or "none"; empty before routing is set up
	// and for dev null.
	DNSMode string
	// NetConfig is the network configuration of the tunnel for the client
	// that applies it, in external network mode (Options.ExternalNet); nil
	// otherwise and while there is none (before the push reply, between
	// connections). It is never modified once published.
	NetConfig *routing.Config
	// NetGen counts the configurations published in NetConfig, so that a
	// client sees a reconnect's configuration as new even when it is equal.
	NetGen uint64
	// WebLogin is the URL of the web login the server waits for (state auth-pending);
	// empty when none.
	WebLogin string
	Counters Counters
}

// Options configure a Session.
type Options struct {
	// Name identifies the tunnel (routing state file, log prefix); it must be
	// unique among running sessions.
	Name string
	// StateDir is routing's crash-recovery directory (routing.DefaultStateDir if empty).
	StateDir string
	// StateName names the tunnel's state files under StateDir (Name if
	// empty); it tells owners and kinds of tunnel apart, so that two users'
	// sessions or a session and an ovpnd@ instance of the same Name never
	// share them.
	StateName string
	// Owner is the uid the session runs for; with MayOverride it decides
	// what routing lets the session take (routing.Options.Owner).
	Owner       uint32
	MayOverride bool
	// ExternalNet is external network mode: the session creates the tun
	// device and runs the protocol but applies no addresses, routes or DNS;
	// it publishes what it would have applied in Status.NetConfig instead
	// (for NetworkManager, which applies it itself). Only root's sessions
	// may use it: the configuration goes to whoever applies it as root.
	ExternalNet bool
	// NewLinkOnly refuses a dev that names an existing interface: the
	// session may only use a tun device it creates (set for non-root owners,
	// so that nobody attaches to another user's persistent tun).
	NewLinkOnly bool
	// DNSMode forces routing's DNS mechanism ("systemd-resolved",
	// "resolv.conf", "none"); empty detects it.
	DNSMode string
	// ResolvConf is the resolv.conf routing rewrites without systemd-resolved
	// (/etc/resolv.conf if empty); tests and containers point it elsewhere.
	ResolvConf string
	// Verb is the log verbosity, as OpenVPN's --verb (0 silent except errors,
	// 1-2 normal, 3 more, 4+ debug). Negative means use the profile's verb.
	Verb int
	// Logf receives log lines (log.Printf when nil).
	Logf func(format string, args ...any)
	// Credentials, when set, is asked for a username and password when the
	// profile has none. Each call is one request: its ctx ends when the
	// connection attempt that asked ends or a newer request replaces it, and
	// the session waits for the call to return before the next attempt.
	// Without it such a profile cannot connect.
	Credentials func(ctx context.Context) (user, pass string, err error)
	// ProxyCredentials, when set, is asked for a proxy's username and password
	// when the profile says to ask (http-proxy ... stdin or auto without
	// credentials, socks-proxy ... stdin); proxy is "HTTP proxy" or "SOCKS
	// proxy". Without it such a profile cannot connect through its proxy.
	ProxyCredentials func(ctx context.Context, proxy string) (user, pass string, err error)
	// Respond, when set, asks the user to answer a challenge: the profile's
	// static-challenge, a CRV1 challenge from the server, or a CR_TEXT of a
	// pending authentication. Without it a connection that needs an answer
	// cannot complete. What it returns is sent to the server and not kept.
	Respond func(ctx context.Context, p Prompt) (string, error)
	// AuthToken, when set, is an auth-token an earlier run of the same session got from
	// the server (see OnAuthToken): the first attempt logs in with it instead of asking
	// for the password. A rejected token is forgotten as usual.
	AuthToken *AuthToken
	// OnAuthToken, when set, is told each auth-token the server pushes (from the control
	// loop; it must not block), so that a daemon can keep it for its next run.
	OnAuthToken func(AuthToken)

	// Test seams.
	openTun   func(name string, mtu int) (tunDevice, string, error)
	newRouter func(routing.Options) (netRouter, error)
	// watchRoutes subscribes to route changes; nil means netlink.
	watchRoutes routeSubscriber
	// readHost lists the host's networks for the checks of pushed settings;
	// nil means netlink.
	readHost func(server netip.Addr) (hostNet, error)
	now      func() time.Time
	// lookup resolves a remote name (net.DefaultResolver when nil).
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// netRouter is the part of *routing.Router the session uses.
type netRouter interface {
	Set(*routing.Config) error
	Refresh() error
	DNSMode() string
	Close() error
}

// AuthToken is a server's auth-token with the username it goes with.
type AuthToken struct {
	User      string `json:"user"`
	Token     string `json:"token"`
	TokenUser string `json:"token_user,omitempty"`
}

// ErrAuthFailed is returned by Run when the server refused the credentials
// and auth-retry does not allow trying again.
var ErrAuthFailed = errors.New("authentication failed")

// ErrHalted is returned by Run when the server told the client to stop (HALT)
// or ping-exit expired.
var ErrHalted = errors.New("connection halted")

// ErrNoMoreRemotes is returned by Run when connect-retry-max attempts of every
// remote failed.
var ErrNoMoreRemotes = errors.New("all connection attempts failed")

// Session is one client tunnel. Create it with New and run it with Run; the
// other methods are safe for concurrent use.
type Session struct {
	cfg  *config.Config
	opts Options
	verb int
	// crl serves crl-verify's lists to every attempt's engine (nil without crl-verify).
	crl *crlSource

	cnt counters
	// restart carries Restart to the control loop; one pending restart is enough.
	restart chan struct{}

	mu     sync.Mutex
	status Status
	subs   map[chan Event]struct{}
	// watchers are woken (without blocking, coalesced) after every status change.
	watchers map[chan struct{}]struct{}
	// logMu orders log lines and guards limit.
	logMu sync.Mutex
	limit logLimiter
	// stopped is sticky: Disconnect sets it and cancels the running Run's context,
	// which reaches resolve, dial, prompts and the control loop at once.
	stopped   bool
	runCancel context.CancelFunc
	// netReason says what of the network settings was refused or failed
	// (DNS, policy); a connected session shows it as its state reason.
	netReason string
}

// New prepares a session for a loaded profile. It does not touch the network.
func New(cfg *config.Config, opts Options) (*Session, error) {
	if cfg == nil {
		return nil, errors.New("session: nil config")
	}
	if len(cfg.Connections) == 0 {
		return nil, errors.New("session: profile has no remote")
	}
	if opts.Name == "" {
		opts.Name = "ovpnd"
	}
	if opts.Logf == nil {
		opts.Logf = log.Printf
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	verb := opts.Verb
	if verb < 0 {
		verb = cfg.Verb
	}
	crl, err := newCRLSource(cfg.CRL)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return &Session{
		limit:    logLimiter{mute: cfg.Mute},
		cfg:      cfg,
		opts:     opts,
		verb:     verb,
		restart:  make(chan struct{}, 1),
		subs:     map[chan Event]struct{}{},
		watchers: map[chan struct{}]struct{}{},
		crl:      crl,
	}, nil
}

// Status returns a snapshot of the state and counters.
func (s *Session) Status() Status {
	s.mu.Lock()
	st := s.status
	st.Addrs = append([]netip.Prefix(nil), st.Addrs...)
	s.mu.Unlock()
	st.Counters = s.cnt.snapshot()
	return st
}

// State returns the current state.
func (s *Session) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status.State
}

// Stats returns the data-path counters.
func (s *Session) Stats() Counters { return s.cnt.snapshot() }

// Watch returns a channel that receives a value after status changes (coalesced:
// one pending wake-up stands for any number of changes) and a function that ends
// the watch. Watchers re-read Status; the final state is always followed by a
// wake-up.
func (s *Session) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.watchers[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.watchers, ch)
		s.mu.Unlock()
	}
}

// update changes the status under the lock and wakes the watchers.
func (s *Session) update(f func(st *Status)) {
	s.mu.Lock()
	f(&s.status)
	s.wakeLocked()
	s.mu.Unlock()
}

func (s *Session) wakeLocked() {
	for ch := range s.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Subscribe returns a channel of log events and a function that ends the
// subscription. Slow subscribers miss events rather than stall the session.
func (s *Session) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, 64)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

// Disconnect asks Run to notify the server, tear down and return nil. It is
// sticky: it stops a name lookup, a dial, a credential prompt or a back-off wait
// at once, and a Run that starts afterwards returns at once.
func (s *Session) Disconnect() {
	s.mu.Lock()
	s.stopped = true
	cancel := s.runCancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// disconnected reports whether Disconnect was called.
func (s *Session) disconnected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// Restart asks the session to drop the connection and connect again (SIGUSR1).
func (s *Session) Restart() {
	select {
	case s.restart <- struct{}{}:
	default:
	}
}

func (s *Session) publish(e Event) {
	if e.Time.IsZero() {
		e.Time = s.opts.now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

func (s *Session) setState(st State, reason string) {
	reason = safeText(reason)
	s.mu.Lock()
	changed := s.status.State != st || s.status.Reason != reason
	s.status.State, s.status.Reason = st, reason
	if st != StateAuthPending && st != StateWaitingInput {
		// The web login ended with the pending authentication (completed, refused, or
		// abandoned with the connection).
		s.status.WebLogin = ""
	}
	if changed {
		s.wakeLocked()
	}
	s.mu.Unlock()
	if changed {
		if reason != "" {
			s.logf(1, "state %v: %s", st, reason)
		} else {
			s.logf(2, "state %v", st)
		}
	}
}

// logf logs at a verbosity level: 0 errors, 1 normal, 3 details, 4+ debug. Lines pass
// the profile's mute and the rate limit (loglimit.go) first.
func (s *Session) logf(level int, format string, args ...any) {
	if level > s.verb {
		return
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	ok, notes := s.limit.allow(format, s.opts.now())
	for _, n := range notes {
		s.emitLog(1, n)
	}
	if ok {
		s.emitLog(level, safeText(fmt.Sprintf(format, args...)))
	}
}

// emitLog hands one line to Logf and the subscribers; logMu is held, so lines keep their
// order.
func (s *Session) emitLog(level int, msg string) {
	s.opts.Logf("%s", msg)
	s.mu.Lock()
	hasSubs := len(s.subs) > 0
	s.mu.Unlock()
	if hasSubs {
		s.publish(Event{Kind: EventLog, Level: level, Message: msg, State: s.State()})
	}
}
