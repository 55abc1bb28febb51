// Package engine is the sans-IO OpenVPN 2.x client state machine.
//
// A Client never touches a socket, a clock or the OS: the session feeds it received packets
// and the current time (HandlePacket, HandleTimeout), arms one timer for NextDeadline and
// drains NextEvent for packets to send, data keys, pushed options and state changes. The shape
// follows tls.QUICConn. A Client is not safe for concurrent use.
//
// Pipeline of one connection (OpenVPN ssl.c, ssl_pkt.c, push.c):
//
//	HARD_RESET_CLIENT_V2/V3 ⇄ HARD_RESET_SERVER_V2 (session ids, reliable ids 0)
//	TLS over P_CONTROL_V1 (crypto/tls over tlspipe, chunked to tls-mtu, engine/reliable)
//	key-method 2 records both ways → PUSH_REQUEST ⇄ PUSH_REPLY (NCP, peer-id, tls-ekm)
//	data keys (TLS-EKM or TLS-1.0 PRF) → EventKeys → Connected
//	SOFT_RESET (key id 1..7) with a fresh TLS session per key; the old key retires after
//	tran-window.
package engine

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/engine/fragment"
	"github.com/ovpnd/ovpnd/engine/kdf"
	"github.com/ovpnd/ovpnd/engine/push"
	"github.com/ovpnd/ovpnd/engine/reliable"
	"github.com/ovpnd/ovpnd/engine/statickey"
	"github.com/ovpnd/ovpnd/engine/wire"
	"github.com/ovpnd/ovpnd/engine/wrap"
)

// controlHeaderMax is the largest unwrapped control header: op, session id, ack count, four
// piggybacked acks, remote session id, message id.
const controlHeaderMax = 1 + 8 + 1 + 4*reliable.DefaultMaxAcksPiggyback + 8 + 4

// maxControlMessage bounds one control-channel message (PUSH_REPLY parts are ≤ ~1 KB; OpenVPN's
// TLS plaintext buffer is 2 KB larger than that at most).
const maxControlMessage = 8192

// maxPushOptions bounds the options collected over push continuations.
const maxPushOptions = 4096

// maxPushBytes bounds the bytes of the options collected over push continuations: each part is
// one TLS record (≤ 16 KiB), so without it 4096 options could hold tens of megabytes.
const maxPushBytes = 1 << 20

// maxServerText bounds a server's free text (AUTH_FAILED reason, INFO, AUTH_PENDING method)
// before it becomes an event that ends up in logs and on D-Bus.
const maxServerText = 1024

// ksState is the progress of one key state.
type ksState int

const (
	ksPreStart ksState = iota // our reset is queued or in flight
	ksTLS                     // TLS handshake and key-method 2 running
	ksActive                  // data keys installed (or, for key 0, waiting for the push)
)

// keyState is one TLS session with its own key id and reliability state (OpenVPN key_state).
type keyState struct {
	id      uint8
	state   ksState
	rel     *reliable.Layer
	started time.Time

	tls      *tlsSession
	tlsIn    [][]byte // ciphertext received before TLS started
	pending  []byte   // TLS ciphertext waiting for send-window space
	partial  []byte   // a control message whose NUL terminator has not arrived yet
	km2Sent  bool
	km2Recv  bool
	src      clientKeySource
	server   serverRecord
	keys     *datachannel.Keys
	sent     int       // messages queued so far; the next message id
	mustDie  time.Time // for the retiring key: end of the transition window
	baseByte uint64    // activity totals when the keys were installed, for reneg-bytes/pkts
	basePkt  uint64
	estab    time.Time
	// sending: data goes out under these keys. A renegotiated key waits until the server shows
	// it uses the key too (see switchDue); key 0 sends at once.
	sending bool
	// lastCtl is when the last control packet of this key arrived: once the server has been
	// quiet for a tls-timeout after it, it has had our acks.
	lastCtl time.Time
}

// Client is one OpenVPN client connection's protocol state. Each TLS session runs crypto/tls in
// a goroutine that only works while a Client method waits for it. Like tls.QUICConn, a Client
// must be closed: Close ends those goroutines (and drops the TLS secrets they hold) whatever
// state the connection is in, and the owner calls it on every path that drops the Client.
type Client struct {
	cfg  Config
	rand io.Reader
	now  atomic.Int64 // current step time (UnixNano) for crypto/tls's Config.Time
	ver  verifier

	wrapper wrap.Wrapper
	// renegWrapper wraps renegotiations (key id > 0) once dynamic tls-crypt is negotiated
	// (ssl_pkt.h tls_session_get_tls_wrap); nil until then.
	renegWrapper wrap.Wrapper
	localSID     wire.SessionID
	remoteSID    wire.SessionID
	haveSID      bool
	resendWKc    bool // tls-crypt-v2 early negotiation asked for P_CONTROL_WKC_V1

	started, dead, closed bool
	state                 State
	events                []Event

	primary, retiring *keyState

	// Credentials and auth-token.
	user, pass      string
	askedCreds      bool
	token           string
	tokenUser       string
	usedToken       bool
	authPendingUntl time.Time
	// response answers the static or CRV1 challenge (haveResponse: given, possibly empty);
	// crTextOpen: a CR_TEXT prompt waits for SetResponse.
	response     string
	haveResponse bool
	crTextOpen   bool

	// Push state.
	pushDone     bool
	pushParts    pushParts // PUSH_REPLY options until the last continuation
	pushNext     time.Time
	pushDeadline time.Time
	pushStarted  bool
	updParts     pushParts // PUSH_UPDATE options until the last continuation

	// Negotiated from the push.
	cipher      string
	peerID      uint32
	useEKM      bool
	ccExit      bool
	epochData   bool // protocol-flags aead-epoch: OpenVPN 2.7's epoch data format
	dynTLSCrypt bool // protocol-flags dyn-tls-crypt
	compression datachannel.Compression

	// Keepalive.
	ping, pingRestart, pingExit time.Duration
	lastRecv, lastSent          time.Time
	act                         Activity
	slowBytes, slowPkts         uint64

	// authCtl counts the server's control packets that passed tls-auth or tls-crypt and
	// belong to this session (AuthenticatedControl).
	authCtl uint64

	// Shutdown.
	exiting     bool
	exitStart   time.Time
	exitNextOCC time.Time
	exitCC      *keyState

	scratch []byte
	// With --fragment, the slow path's fragmentation state.
	frag  *fragment.Fragmenter
	reasm *fragment.Reassembler
}

// NewClient validates cfg and returns a Client ready for Start.
func NewClient(cfg *Config) (*Client, error) {
	n, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:         n,
		rand:        &lockedReader{r: n.Rand},
		peerID:      wire.NoPeerID,
		compression: n.Compression,
		ping:        n.Ping,
		pingRestart: n.PingRestart,
		pingExit:    n.PingExit,
		user:        n.Username,
		pass:        n.Password,
		token:       n.AuthToken,
		tokenUser:   n.AuthTokenUser,
	}
	c.ver = verifier{
		roots:        n.RootCAs,
		x509Type:     n.VerifyX509Type,
		x509Name:     n.VerifyX509Name,
		certTLS:      n.RemoteCertTLSServer,
		nsCertType:   n.NSCertType,
		crls:         n.CRLs,
		crlDir:       n.CRLDirRevoked,
		eku:          n.RemoteCertEKU,
		fingerprints: n.PeerFingerprints,
		ku:           n.RemoteCertKU,
		profile:      n.TLSCertProfile,
		tls13Suites:  n.TLS13CipherSuites,
		now:          c.timeNow,
	}
	switch n.Wrap {
	case WrapNone:
		c.wrapper = wrap.NewNone()
	case WrapTLSAuth:
		c.wrapper, err = wrap.NewTLSAuth(n.WrapKey, n.KeyDirection, n.Auth)
	case WrapTLSCrypt:
		c.wrapper, err = wrap.NewTLSCrypt(n.WrapKey, true)
	case WrapTLSCryptV2:
		c.wrapper, err = wrap.NewTLSCryptV2Client(n.TLSCryptV2)
	}
	if err != nil {
		return nil, fmt.Errorf("engine: setting up control-channel wrapping: %w", err)
	}
	return c, nil
}

// lockedReader serialises reads because the TLS goroutine and the data path may share Rand.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

func (c *Client) setNow(now time.Time) { c.now.Store(now.UnixNano()) }

func (c *Client) timeNow() time.Time { return time.Unix(0, c.now.Load()) }

func (c *Client) emit(e Event) { c.events = append(c.events, e) }

func (c *Client) warn(format string, args ...any) {
	c.emit(EventError{Err: fmt.Errorf(format, args...)})
}

func (c *Client) setState(s State, reason string) {
	c.state = s
	c.emit(EventState{State: s, Reason: reason})
}

// fatal ends the connection: the session reconnects (or exits) after draining the events.
func (c *Client) fatal(next State, reason string, err error) {
	if c.dead {
		return
	}
	if err != nil {
		c.emit(EventError{Err: err, Fatal: true})
	}
	c.dead = true
	c.closeAll()
	c.setState(next, reason)
}

func (c *Client) closeAll() {
	for _, ks := range []*keyState{c.primary, c.retiring} {
		if ks != nil && ks.tls != nil {
			ks.tls.close()
		}
	}
}

// Close releases the Client: every TLS goroutine has returned when it does. It sends nothing (Shutdown is the polite way out) and emits no
// event; after Close every method is a no-op. Calling it again does nothing.
func (c *Client) Close() {
	c.closeAll()
	c.dead, c.closed, c.exiting = true, true, false
	c.events = nil
}

// NextEvent returns the next pending event, or nil.
func (c *Client) NextEvent() Event {
	if len(c.events) == 0 {
		return nil
	}
	e := c.events[0]
	c.events[0] = nil
	c.events = c.events[1:]
	if len(c.events) == 0 {
		c.events = c.events[:0:0]
	}
	return e
}

// Start queues the hard reset that opens the connection.
func (c *Client) Start(now time.Time) {
	if c.started {
		return
	}
	c.started = true
	c.setNow(now)
	if _, err := io.ReadFull(c.rand, c.localSID[:]); err != nil {
		c.fatal(StateExiting, "rng-failure", fmt.Errorf("generating session id: %w", err))
		return
	}
	c.lastRecv, c.lastSent = now, now
	c.setState(StateConnecting, "")
	op := wire.OpHardResetClientV2
	if c.cfg.Wrap == WrapTLSCryptV2 {
		op = wire.OpHardResetClientV3
	}
	ks, err := c.newKeyState(now, 0)
	if err != nil {
		c.fatal(StateExiting, "rng-failure", err)
		return
	}
	c.primary = ks
	if _, err := ks.rel.Send(now, uint8(op), nil); err != nil {
		c.fatal(StateReconnecting, "internal-error", fmt.Errorf("queueing hard reset: %w", err))
		return
	}
	ks.sent++
	c.flush(now)
}

func (c *Client) newKeyState(now time.Time, id uint8) (*keyState, error) {
	rc := reliable.Config{Timeout: c.cfg.TLSTimeout, SRTT: c.cfg.PathRTT, RTTVar: c.cfg.PathRTTVar}
	if c.primary != nil {
		// A renegotiation runs over the same path: start from the round trip measured so far.
		rc.SRTT, rc.RTTVar = c.primary.rel.RTT()
	}
	ks := &keyState{
		id:      id,
		started: now,
		rel:     reliable.New(rc),
	}
	if _, err := io.ReadFull(c.rand, ks.src.preMaster[:]); err != nil {
		return nil, fmt.Errorf("generating key source: %w", err)
	}
	if _, err := io.ReadFull(c.rand, ks.src.random1[:]); err != nil {
		return nil, fmt.Errorf("generating key source: %w", err)
	}
	if _, err := io.ReadFull(c.rand, ks.src.random2[:]); err != nil {
		return nil, fmt.Errorf("generating key source: %w", err)
	}
	return ks, nil
}

// nextKeyID is OpenVPN's key id sequence: 0 only for the first session, then 1..7, 1, ...
func nextKeyID(id uint8) uint8 {
	id = (id + 1) & wire.MaxKeyID
	if id == 0 {
		id = 1
	}
	return id
}

// RTT is the control channel's smoothed round-trip time and its variation, zero until
// measured; a reconnection to the same server passes them on as Config.PathRTT and PathRTTVar.
func (c *Client) RTT() (srtt, rttvar time.Duration) {
	if c.primary == nil {
		return 0, 0
	}
	return c.primary.rel.RTT()
}

// SetCredentials answers EventNeedCredentials.
func (c *Client) SetCredentials(user, pass string) {
	c.user, c.pass = user, pass
	if c.dead || c.closed || !c.started {
		return
	}
	now := c.timeNow()
	c.advanceAll(now)
	c.flush(now)
}

// NoteDataActivity records what the fast data path saw; it feeds keepalive and reneg-bytes.
func (c *Client) NoteDataActivity(now time.Time, a Activity) {
	c.act = a
	if a.NextKeyUsed && c.switchDue(now, true) {
		c.switchKeys()
	}
	if a.LastRecv.After(c.lastRecv) {
		c.lastRecv = a.LastRecv
	}
	if a.LastSent.After(c.lastSent) {
		c.lastSent = a.LastSent
	}
	if c.dead || c.closed || !c.started {
		return
	}
	// reneg-bytes/pkts and packet-id exhaustion depend on these counters, not on a deadline.
	if c.renegDue(now) {
		c.setNow(now)
		if c.softReset(now) {
			c.flush(now)
		}
	}
}

// HandlePacket processes one received OpenVPN packet. Bad packets are dropped with an
// EventError warning; pkt is not retained.
func (c *Client) HandlePacket(now time.Time, pkt []byte) {
	if c.dead || c.closed || !c.started {
		return
	}
	c.setNow(now)
	op, keyID, err := wire.ParseHeader(pkt)
	if err != nil {
		c.warn("dropping packet: %w", err)
		return
	}
	if op.IsData() {
		c.handleData(now, keyID, pkt)
		return
	}
	c.handleControl(now, keyID, pkt)
	if !c.dead {
		c.advanceAll(now)
		if c.exiting {
			c.exitTimers(now)
		}
	}
	if !c.dead && !c.closed {
		c.flush(now)
	}
}

func (c *Client) handleControl(now time.Time, keyID uint8, pkt []byte) {
	p, err := c.wrapperFor(keyID).Unwrap(pkt, now)
	if err != nil {
		c.warn("dropping control packet: %w", err)
		return
	}
	switch p.Opcode {
	case wire.OpHardResetServerV2, wire.OpControlV1, wire.OpAckV1, wire.OpSoftResetV1:
	default:
		c.warn("dropping unexpected %v packet", p.Opcode)
		return
	}
	if !c.haveSID {
		if p.Opcode != wire.OpHardResetServerV2 || p.KeyID != 0 {
			c.warn("dropping %v before the server's reset", p.Opcode)
			return
		}
		if len(p.Acks) > 0 && p.RemoteSessionID != c.localSID {
			c.warn("dropping server reset acking another session")
			return
		}
		c.remoteSID = p.SessionID
		c.haveSID = true
	} else if p.SessionID != c.remoteSID {
		c.warn("dropping %v from unknown session %x", p.Opcode, p.SessionID[:])
		return
	}
	if len(p.Acks) > 0 && p.RemoteSessionID != c.localSID {
		c.warn("dropping %v whose acks name session %x", p.Opcode, p.RemoteSessionID[:])
		return
	}
	// Only now, with the packet known to be the accepted server session's,
	// may its replay id move the window (wrap.Wrapper.Accept).
	c.wrapperFor(keyID).Accept()
	ks := c.keyStateFor(p.KeyID)
	if ks == nil {
		if p.Opcode == wire.OpSoftResetV1 && c.primary != nil && c.primary.state == ksActive &&
			c.primary.keys != nil && p.KeyID == nextKeyID(c.primary.id) && !c.exiting {
			// Server-initiated renegotiation (ssl.c tls_pre_decrypt): start our side.
			if !c.softReset(now) {
				return
			}
			ks = c.primary
		} else {
			c.warn("dropping %v for unknown key id %d", p.Opcode, p.KeyID)
			return
		}
	}
	c.lastRecv = now
	if c.cfg.Wrap != WrapNone {
		c.authCtl++
	}
	if len(p.Acks) > 0 {
		ks.rel.Ack(now, p.Acks)
	}
	if p.Opcode == wire.OpAckV1 {
		return
	}
	ks.lastCtl = now
	if len(p.Payload) > maxControlMessage {
		c.warn("dropping oversized %v (%d bytes)", p.Opcode, len(p.Payload))
		return
	}
	ks.rel.Receive(p.MessageID, uint8(p.Opcode), p.Payload)
	c.drainReliable(now, ks)
}

func (c *Client) keyStateFor(id uint8) *keyState {
	if c.primary != nil && c.primary.id == id {
		return c.primary
	}
	if c.retiring != nil && c.retiring.id == id {
		return c.retiring
	}
	return nil
}

// drainReliable takes the in-order messages of ks and feeds their TLS ciphertext.
func (c *Client) drainReliable(now time.Time, ks *keyState) {
	for {
		m, ok := ks.rel.Next()
		if !ok {
			return
		}
		switch wire.Opcode(m.Opcode) {
		case wire.OpHardResetServerV2:
			if ks.id != 0 {
				c.warn("ignoring server hard reset on key id %d", ks.id)
				continue
			}
			if c.cfg.Wrap == WrapTLSCryptV2 && len(m.Payload) > 0 {
				resend, err := wrap.ParseEarlyNegTLVs(m.Payload)
				if err != nil {
					c.warn("parsing early-negotiation TLVs: %w", err)
				}
				c.resendWKc = resend
			}
		case wire.OpSoftResetV1:
			// The peer's half of a renegotiation; nothing to do beyond acking it.
		case wire.OpControlV1:
			if len(m.Payload) == 0 {
				continue
			}
			if ks.tls == nil {
				ks.tlsIn = append(ks.tlsIn, m.Payload)
				continue
			}
			ks.tls.feed(m.Payload)
		default:
			c.warn("ignoring %v message", wire.Opcode(m.Opcode))
		}
	}
}

// advanceAll moves every key state forward as far as its inputs allow.
func (c *Client) advanceAll(now time.Time) {
	for _, ks := range []*keyState{c.primary, c.retiring} {
		if ks == nil || c.dead {
			continue
		}
		c.advance(now, ks)
	}
}

func (c *Client) advance(now time.Time, ks *keyState) {
	if ks.state == ksPreStart && ks.rel.Unacked() == 0 {
		c.startTLS(ks)
		if ks.id == 0 && c.state == StateConnecting {
			c.setState(StateTLSHandshake, "")
		}
	}
	if ks.tls == nil {
		return
	}
	for {
		progressed := false
		if ks.tls.handshakeDone.Load() && !ks.km2Sent {
			if !c.sendKM2(ks) {
				break
			}
			progressed = true
			if ks.id == 0 && c.state == StateTLSHandshake {
				c.setState(StateAuthenticating, "")
			}
		}
		for _, r := range ks.tls.takeRecords() {
			progressed = true
			c.handleRecord(now, ks, r)
			if c.dead {
				return
			}
		}
		if !progressed {
			break
		}
	}
	ks.pending = append(ks.pending, ks.tls.output()...)
	if err := ks.tls.err(); err != nil {
		if ks == c.primary {
			// ssl.c tls_multi_process: an error on the active session's primary key is a
			// TLS error of the connection.
			c.fatal(StateReconnecting, "tls-error", fmt.Errorf("TLS session (key id %d): %w", ks.id, err))
			return
		}
		// A retiring key's TLS session may end (close_notify); its data keys stay usable
		// until the transition window closes.
		ks.tls.close()
	}
}

func (c *Client) startTLS(ks *keyState) {
	ks.state = ksTLS
	cfg := &tls.Config{
		Rand:               c.rand,
		Time:               c.timeNow,
		MinVersion:         c.cfg.TLSVersionMin,
		MaxVersion:         c.cfg.TLSVersionMax,
		CipherSuites:       c.cfg.TLSCipherSuites, // TLS 1.2 only; TLS 1.3 is checked in VerifyConnection
		CurvePreferences:   c.cfg.TLSGroups,
		InsecureSkipVerify: true, // replaced by OpenVPN's rules in VerifyConnection
		VerifyConnection:   c.ver.verifyConnection,
	}
	if cert := c.cfg.Certificate; cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	ks.tls = startTLS(cfg)
	for _, b := range ks.tlsIn {
		ks.tls.feed(b)
	}
	ks.tlsIn = nil
}

// credentials returns what goes into the key-method 2 record, or the prompts to ask the user
// first.
func (c *Client) credentials() (user, pass string, ask []Prompt) {
	if c.token != "" {
		user = c.user
		if c.tokenUser != "" {
			user = c.tokenUser
		}
		return user, c.token, nil
	}
	// A CRV1 answer names its own username and replaces the password.
	if c.cfg.Challenge == nil && c.user == "" && c.pass == "" {
		ask = append(ask, Prompt{Kind: PromptPassword})
	}
	if p, ok := c.wantResponse(); ok {
		ask = append(ask, p)
	}
	return c.user, c.pass, ask
}

// sendKM2 writes our key-method 2 record; false means it waits for credentials.
func (c *Client) sendKM2(ks *keyState) bool {
	var user, pass string
	auth := c.cfg.AuthUserPass || c.token != ""
	if auth {
		var ask []Prompt
		user, pass, ask = c.credentials()
		if len(ask) > 0 {
			if !c.askedCreds {
				c.askedCreds = true
				c.emit(EventNeedCredentials{Prompts: ask})
			}
			return false
		}
		c.usedToken = c.token != ""
		if len(user) >= maxUserPassLen {
			c.fatal(StateExiting, "auth-failure", errors.New("username longer than 127 bytes"))
			return false
		}
		var err error
		if user, pass, err = c.packCredentials(user, pass); err != nil {
			c.fatal(StateExiting, "auth-failure", err)
			return false
		}
	}
	rec := buildClientRecord(&ks.src, c.cfg.optionsString(), auth, user, pass, c.cfg.peerInfo())
	err := ks.tls.write(rec)
	clear(rec)
	if err != nil {
		c.fatal(StateReconnecting, "tls-error", fmt.Errorf("writing key-method 2 record: %w", err))
		return false
	}
	ks.km2Sent = true
	if c.cfg.AuthNoCache && c.token == "" {
		c.pass = ""
		c.response, c.haveResponse = "", false
		c.askedCreds = false
	}
	return true
}

// handleRecord handles one decrypted TLS record: the server's key-method 2 record first, then
// NUL-terminated control messages.
func (c *Client) handleRecord(now time.Time, ks *keyState, r []byte) {
	if !ks.km2Recv {
		if !ks.km2Sent {
			c.warn("ignoring TLS data before our key-method 2 record")
			return
		}
		sr, err := parseServerRecord(r)
		if err != nil {
			c.fatal(StateReconnecting, "tls-error", fmt.Errorf("parsing server key-method 2 record: %w", err))
			return
		}
		ks.server = sr
		ks.km2Recv = true
		c.onServerKM2(now, ks)
		return
	}
	// Control messages end with a NUL. OpenVPN sends each in one TLS record, but a TLS stack
	// may split a message across records, so a message is only handled once complete.
	ks.partial = append(ks.partial, r...)
	for {
		end := bytes.IndexByte(ks.partial, 0)
		if end < 0 {
			break
		}
		msg := string(ks.partial[:end])
		ks.partial = ks.partial[end+1:]
		if msg == "" {
			continue
		}
		c.handleControlMessage(now, ks, msg)
		if c.dead {
			return
		}
	}
	if len(ks.partial) > maxControlMessage {
		c.fatal(StateReconnecting, "tls-error", fmt.Errorf("server sent a control message over %d bytes without a terminator", maxControlMessage))
		return
	}
	if len(ks.partial) == 0 {
		ks.partial = nil // let the consumed buffer go
	}
}

func (c *Client) onServerKM2(now time.Time, ks *keyState) {
	if ks.id == 0 && !c.pushDone {
		// Key 0 waits for the push, which decides the cipher and the key derivation.
		ks.state = ksActive
		ks.estab = now
		if !c.pushStarted {
			c.pushStarted = true
			c.pushDeadline = now.Add(c.cfg.HandWindow)
			c.sendPushRequest(now)
		}
		return
	}
	c.installKeys(now, ks)
}

func (c *Client) sendPushRequest(now time.Time) {
	c.pushNext = now.Add(c.cfg.PushRequestInterval)
	c.sendControlMessage(c.primary, "PUSH_REQUEST")
}

// sendControlMessage sends one NUL-terminated control message on the key's TLS session.
func (c *Client) sendControlMessage(ks *keyState, msg string) {
	if ks == nil || ks.tls == nil || !ks.tls.handshakeDone.Load() {
		return
	}
	if err := ks.tls.write(append([]byte(msg), 0)); err != nil {
		c.warn("sending %s: %w", msg, err)
		return
	}
	ks.pending = append(ks.pending, ks.tls.output()...)
}

// installKeys derives the data keys of ks and makes it the sending key.
func (c *Client) installKeys(now time.Time, ks *keyState) {
	keys, err := c.deriveKeys(ks)
	if err != nil {
		c.fatal(StateReconnecting, "key-derivation-failed", err)
		return
	}
	ks.keys = keys
	ks.state = ksActive
	ks.estab = now
	ks.baseByte = c.totalBytes()
	ks.basePkt = c.totalPackets()
	if ks.id == 0 && c.dynTLSCrypt && c.renegWrapper == nil {
		if err := c.setupDynamicTLSCrypt(ks); err != nil {
			c.fatal(StateReconnecting, "key-derivation-failed", err)
			return
		}
	}
	// Key 0 carries no data before the push reply, which the server sends after its keys.
	ks.sending = ks.id == 0
	if ks.id != 0 {
		// OpenVPN's server generates and accepts a renegotiated key only once our ack of its
		// key-method 2 record arrived (ssl.c: S_SENT_KEY → S_ACTIVE when its send window is
		// empty) and drops data under the key before that. Queue the ack now, and keep
		// sending under the old key, which the server accepts for the whole transition
		// window, until switchDue: a lost ack then costs nothing instead of a tls-timeout of
		// dropped data.
		c.flush(now)
	}
	c.emitKeys()
}

// switchDue reports whether the renegotiated primary key may start carrying data: the server
// sent data under it (it selects a key for sending only once the key is active: ssl.c
// tls_select_encryption_key, S_GENERATED_KEYS), or it has sent no control packet on it for a
// tls-timeout, so it is not retransmitting for lack of our ack.
func (c *Client) switchDue(now time.Time, seen bool) bool {
	ks := c.primary
	if ks == nil || ks.keys == nil || ks.sending {
		return false
	}
	return seen || !now.Before(ks.lastCtl.Add(c.cfg.TLSTimeout))
}

// switchKeys makes the renegotiated primary key the sending key.
func (c *Client) switchKeys() {
	c.primary.sending = true
	c.emitKeys()
}

// setupDynamicTLSCrypt derives the tls-crypt key that wraps every renegotiation from the first
// TLS session, XORed with the configured tls-auth/tls-crypt key or tls-crypt-v2 Kc
// (tls_crypt.c tls_session_generate_dynamic_tls_crypt_key, called for key id 0).
func (c *Client) setupDynamicTLSCrypt(ks *keyState) error {
	ekm, err := ks.tls.exportKeys(kdf.LabelDynamicTLSCrypt, statickey.KeySize)
	if err != nil {
		return fmt.Errorf("exporting the dynamic tls-crypt key: %w", err)
	}
	defer clear(ekm)
	var original *statickey.Key
	switch c.cfg.Wrap {
	case WrapTLSAuth, WrapTLSCrypt:
		original = c.cfg.WrapKey
	case WrapTLSCryptV2:
		original = &c.cfg.TLSCryptV2.Key
	}
	w, err := wrap.NewDynamicTLSCrypt(ekm, original, true)
	if err != nil {
		return err
	}
	c.renegWrapper = w
	return nil
}

// wrapperFor is the control-channel wrapping of packets with key id keyID.
func (c *Client) wrapperFor(keyID uint8) wrap.Wrapper {
	if keyID > 0 && c.renegWrapper != nil {
		return c.renegWrapper
	}
	return c.wrapper
}

func (c *Client) emitKeys() {
	ev := EventKeys{}
	if c.primary != nil {
		ev.Primary = c.primary.keys
	}
	if c.retiring != nil {
		ev.Retiring = c.retiring.keys
	}
	if ev.Primary != nil && !c.primary.sending && ev.Retiring != nil {
		ev.Primary, ev.Next, ev.Retiring = ev.Retiring, ev.Primary, nil
	}
	if ev.Primary == nil {
		ev.Primary, ev.Retiring = ev.Retiring, nil
	}
	c.emit(ev)
}

func (c *Client) deriveKeys(ks *keyState) (*datachannel.Keys, error) {
	var kb kdf.KeyBlock
	if c.useEKM {
		ekm, err := ks.tls.exportKeys(kdf.LabelDataKeys, len(kb))
		if err != nil {
			return nil, fmt.Errorf("exporting data keys (tls-ekm): %w", err)
		}
		copy(kb[:], ekm)
		clear(ekm)
	} else {
		kb = kdf.ExpandPRF(ks.src.preMaster[:], ks.src.random1[:], ks.server.random1[:],
			ks.src.random2[:], ks.server.random2[:], c.localSID, c.remoteSID)
	}
	defer clear(kb[:])
	keys, err := datachannel.NewKeys(datachannel.KeyParams{
		Cipher:       c.cipher,
		Digest:       c.cfg.Auth,
		Block:        &kb,
		Client:       true,
		KeyID:        ks.id,
		PeerID:       c.peerID,
		Compression:  c.compression,
		ReplayWindow: c.cfg.ReplayWindow,
		Epoch:        c.epochData,
		Rand:         c.rand,
	})
	if err != nil {
		return nil, fmt.Errorf("creating data keys for %s: %w", c.cipher, err)
	}
	return keys, nil
}

func (c *Client) totalBytes() uint64   { return c.act.BytesIn + c.act.BytesOut + c.slowBytes }
func (c *Client) totalPackets() uint64 { return c.act.PacketsIn + c.act.PacketsOut + c.slowPkts }

// handleControlMessage handles one control-channel message (push.c incoming_push_message and
// friends). Prefix matching follows OpenVPN's buf_string_match_head_str.
func (c *Client) handleControlMessage(now time.Time, ks *keyState, msg string) {
	switch {
	case strings.HasPrefix(msg, "PUSH_REPLY"):
		c.handlePushReply(now, msg)
	case strings.HasPrefix(msg, "PUSH_UPDATE"):
		c.handlePushUpdate(now, msg)
	case strings.HasPrefix(msg, "AUTH_FAILED"):
		m := strings.TrimPrefix(strings.TrimPrefix(msg, "AUTH_FAILED"), ",")
		if strings.HasPrefix(m, "CRV1:") {
			c.handleChallenge(m)
			return
		}
		c.emit(EventAuthFailed{Message: serverText(m)})
		switch {
		case c.usedToken:
			// ssl_clean_auth_token: the token expired; reconnect with the real credentials.
			c.token, c.tokenUser = "", ""
			c.fatal(StateReconnecting, "auth-failure (auth-token)", nil)
		case strings.HasPrefix(m, "TEMP"):
			c.fatal(StateReconnecting, "auth-failure (temporary)", nil)
		default:
			c.fatal(StateExiting, "auth-failure", nil)
		}
	case strings.HasPrefix(msg, "AUTH_PENDING"):
		c.handleAuthPending(now, msg)
	case strings.HasPrefix(msg, "RESTART"):
		// The whole message goes to the session: its flags ("[P]" keep credentials, "[N]"
		// next server) steer the reconnect.
		c.emit(EventInfo{Message: serverText(msg)})
		c.fatal(StateReconnecting, "server-pushed-connection-reset", nil)
	case strings.HasPrefix(msg, "HALT"):
		c.emit(EventInfo{Message: serverText(msg)})
		c.fatal(StateExiting, "server-pushed-halt", nil)
	case msg == "EXIT" || strings.HasPrefix(msg, "EXIT,"):
		c.fatal(StateReconnecting, "remote-exit", nil)
	case strings.HasPrefix(msg, "INFO_PRE,"):
		c.handleInfo(strings.TrimPrefix(msg, "INFO_PRE,"))
	case strings.HasPrefix(msg, "INFO,"):
		c.handleInfo(strings.TrimPrefix(msg, "INFO,"))
	case strings.HasPrefix(msg, "CR_RESPONSE"):
		// Only servers act on challenge responses.
	default:
		c.warn("ignoring unknown control message %q", truncate(msg, 64))
	}
}

// serverText bounds a server's free text and makes it printable: control characters (C0, DEL,
// C1) become spaces and invalid UTF-8 becomes U+FFFD, so a server can neither forge log lines
// nor send terminal escapes, and D-Bus (which requires valid UTF-8) can carry it.
func serverText(s string) string {
	if len(s) > maxServerText {
		s = s[:maxServerText]
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func (c *Client) handleAuthPending(now time.Time, msg string) {
	timeout := c.cfg.HandWindow
	method := ""
	rest := strings.TrimPrefix(strings.TrimPrefix(msg, "AUTH_PENDING"), ",")
	for _, kw := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kw), " ")
		switch k {
		case "timeout":
			if n, ok := atoiBounded(v, 1<<20); ok && n > 0 {
				timeout = time.Duration(n) * time.Second
			}
		case "":
		default:
			method = kw
		}
	}
	// push.c receive_auth_pending: keep asking for the push until the key's establishment
	// plus the server's timeout, capped at the larger of hand-window and half reneg-sec (and
	// shortened too when the server says so).
	maxTimeout := c.cfg.HandWindow
	if c.cfg.RenegInterval > 0 && c.cfg.RenegInterval/2 > maxTimeout {
		maxTimeout = c.cfg.RenegInterval / 2
	}
	timeout = min(timeout, maxTimeout)
	if c.pushStarted && !c.pushDone && c.primary != nil {
		c.pushDeadline = c.primary.estab.Add(timeout)
	}
	if c.primary != nil && c.primary.id == 0 {
		if d := now.Add(timeout); d.After(c.authPendingUntl) {
			c.authPendingUntl = d
		}
	}
	c.emit(EventAuthPending{Timeout: timeout, Method: serverText(method)})
}

// handlePushReply collects one PUSH_REPLY part; the last part is parsed (push.Parse: the
// profile's pull-filter and route-nopull, then the grammar) and applied.
func (c *Client) handlePushReply(now time.Time, msg string) {
	if c.pushDone {
		return // OpenVPN ignores repeated replies to one push request
	}
	body := strings.TrimPrefix(msg, "PUSH_REPLY")
	more, err := c.pushParts.add(body)
	if err != nil {
		c.fatal(StateReconnecting, "push-failed", fmt.Errorf("PUSH_REPLY %w", err))
		return
	}
	if more {
		return
	}
	c.pushDone = true
	reply, err := push.Parse(c.pushParts.take(), c.cfg.PushPolicy)
	if err != nil {
		// pull-filter reject: OpenVPN restarts the connection (options.c apply_pull_filter).
		c.fatal(StateReconnecting, "push-rejected", err)
		return
	}
	if err := c.applyPush(reply); err != nil {
		c.fatal(StateReconnecting, "push-failed", fmt.Errorf("applying pushed options: %w", err))
		return
	}
	c.emit(EventPushReply{Reply: reply})
	if c.primary != nil && c.primary.id == 0 && c.primary.km2Recv && c.primary.keys == nil {
		c.installKeys(now, c.primary)
		if c.dead {
			return
		}
	}
	// Pushed timers restart from now (init.c do_init_timers after the push).
	c.lastRecv = now
	c.setState(StateConnected, "")
}

// handlePushUpdate collects a PUSH_UPDATE (OpenVPN 2.7 push.c process_push_update, with
// push-continuation like a reply) and, once complete, applies its keepalive and hands it to the
// session. An update that may not be applied restarts the connection, as in OpenVPN.
func (c *Client) handlePushUpdate(now time.Time, msg string) {
	if !c.pushDone {
		c.warn("ignoring PUSH_UPDATE before the PUSH_REPLY")
		return
	}
	body := strings.TrimPrefix(msg, "PUSH_UPDATE")
	if body != "" && body[0] != ',' {
		c.warn("ignoring malformed PUSH_UPDATE")
		return
	}
	more, err := c.updParts.add(body)
	if err != nil {
		c.fatal(StateReconnecting, "push-update-failed", fmt.Errorf("PUSH_UPDATE %w", err))
		return
	}
	if more {
		return
	}
	lines := c.updParts.take()
	u, err := push.ParseUpdate(lines, c.cfg.PushPolicy)
	if err != nil {
		c.fatal(StateReconnecting, "push-update-failed", err)
		return
	}
	c.applyPingTimers(u.Reply)
	// New timers count from now, as after the first push.
	c.lastRecv = now
	c.emit(EventPushUpdate{Update: u})
}

// applyPingTimers applies pushed ping and ping-restart/ping-exit, for the first push and for
// PUSH_UPDATE alike.
func (c *Client) applyPingTimers(r *push.Reply) {
	if r.Ping != nil {
		c.ping = *r.Ping
	}
	if r.PingTimeout != nil {
		// ping-restart and ping-exit are exclusive in OpenVPN; the last one pushed wins.
		switch r.PingTimeoutAction {
		case push.PingRestart:
			c.pingRestart, c.pingExit = *r.PingTimeout, 0
		case push.PingExit:
			c.pingExit, c.pingRestart = *r.PingTimeout, 0
		}
	}
}

// applyPush applies the protocol options of a parsed push (options.c,
// OPT_P_NCP/TIMER/PEER_ID/...). A value the engine cannot use is added to r.Warnings, so that
// nothing accepted by the grammar is dropped silently.
func (c *Client) applyPush(r *push.Reply) error {
	warn := func(format string, args ...any) {
		r.Warnings = append(r.Warnings, push.Warning{Msg: fmt.Sprintf(format, args...)})
	}
	if r.PeerID != nil {
		c.peerID = *r.PeerID
	}
	c.applyPingTimers(r)
	if r.Reneg != nil {
		d := r.Reneg.Max
		if span := r.Reneg.Max - r.Reneg.Min; span > 0 {
			// ssl.c tls_session_init: a random point between min and max, so that a
			// server's clients do not all renegotiate at once.
			var b [8]byte
			if _, err := io.ReadFull(c.rand, b[:]); err == nil {
				d = r.Reneg.Min + time.Duration(binary.BigEndian.Uint64(b[:])%uint64(span))
			}
		}
		if d == 0 {
			d = -1 // reneg-sec 0 disables time-based renegotiation
		}
		c.cfg.RenegInterval = d
	}
	for _, f := range r.ProtocolFlags {
		switch f {
		case "cc-exit":
			c.ccExit = true
		case "tls-ekm":
			c.useEKM = true
		case "dyn-tls-crypt":
			c.dynTLSCrypt = true
		case "aead-epoch":
			c.epochData = true
		default:
			warn("ignoring unknown protocol-flags word %q", f)
		}
	}
	if r.KeyDerivation == "tls-ekm" {
		c.useEKM = true
	}
	if r.AuthToken != "" {
		c.token = r.AuthToken
	}
	if r.AuthTokenUser != "" {
		c.tokenUser = r.AuthTokenUser
	}
	if r.ExplicitExitNotify != nil {
		c.cfg.ExplicitExitNotify = *r.ExplicitExitNotify
	}
	switch r.Compression {
	case push.CompLZO:
		c.compression = datachannel.CompLZO
	case push.CompStub:
		c.compression = datachannel.CompressStub
	case push.CompStubV2:
		c.compression = datachannel.CompressStubV2
	case push.CompLZ4:
		c.compression = datachannel.CompressLZ4
	case push.CompLZ4V2:
		c.compression = datachannel.CompressLZ4V2
	case push.CompLZOCompress:
		c.compression = datachannel.CompressLZO
	}
	cipher, err := c.negotiateCipher(r.Cipher)
	if err != nil {
		return err
	}
	c.cipher = cipher
	if c.epochData {
		// init.c do_deferred_options / ssl.c init_key_contexts: the epoch format needs an
		// AEAD cipher and P_DATA_V2.
		if !datachannel.IsAEAD(cipher) {
			return fmt.Errorf("server asked for epoch data keys with the non-AEAD cipher %s", cipher)
		}
		if c.peerID == wire.NoPeerID {
			return errors.New("server asked for epoch data keys without a peer-id (they require P_DATA_V2)")
		}
	}
	return nil
}

// negotiateCipher follows ssl_ncp.c check_pull_client_ncp: a pushed cipher must be one of
// data-ciphers; without one, data-ciphers-fallback, else the server's OCC cipher if allowed.
func (c *Client) negotiateCipher(pushed string) (string, error) {
	if pushed != "" {
		if !c.cfg.hasCipher(pushed) {
			return "", fmt.Errorf("server pushed cipher %s, not in data-ciphers %s", pushed, strings.Join(c.cfg.DataCiphers, ":"))
		}
		return pushed, nil
	}
	if c.cfg.DataCiphersFallback != "" {
		return c.cfg.DataCiphersFallback, nil
	}
	if c.primary != nil {
		remote := strings.ToUpper(occOption(c.primary.server.options, "cipher"))
		if remote == "[NULL-CIPHER]" {
			remote = "NONE" // OCC writes cipher none as [null-cipher]
		}
		if remote != "" && c.cfg.hasCipher(remote) {
			return remote, nil
		}
		if remote != "" {
			return "", fmt.Errorf("failed to negotiate cipher with server: add the server's cipher (%s) to data-ciphers (%s)", remote, strings.Join(c.cfg.DataCiphers, ":"))
		}
	}
	return "", errors.New("failed to negotiate cipher with server: none pushed and no data-ciphers-fallback")
}

// softReset starts a renegotiation: a new key state with the next key id sends
// P_CONTROL_SOFT_RESET_V1 and runs a fresh TLS session; the current key retires (ssl.c
// key_state_soft_reset).
func (c *Client) softReset(now time.Time) bool {
	id := nextKeyID(c.primary.id)
	ks, err := c.newKeyState(now, id)
	if err != nil {
		c.fatal(StateReconnecting, "rng-failure", err)
		return false
	}
	if _, err := ks.rel.Send(now, uint8(wire.OpSoftResetV1), nil); err != nil {
		c.fatal(StateReconnecting, "internal-error", fmt.Errorf("queueing soft reset: %w", err))
		return false
	}
	ks.sent++
	if c.retiring != nil && c.retiring.tls != nil {
		c.retiring.tls.close()
	}
	old := c.primary
	old.mustDie = now.Add(c.cfg.TranWindow)
	c.retiring = old
	c.primary = ks
	return true
}

// flush turns queued TLS ciphertext into control packets and sends what is due.
func (c *Client) flush(now time.Time) {
	for _, ks := range []*keyState{c.retiring, c.primary} {
		if ks == nil || c.dead {
			continue
		}
		c.fillWindow(now, ks)
		if c.haveSID && ks.rel.HasPendingAcks() && c.needsWKc(ks) && ks.rel.SendWindowFree() > 0 {
			// ssl.c tls_process: instead of a P_ACK_V1 that could be lost without a
			// retransmission, the ack rides on an empty P_CONTROL_WKC_V1.
			if _, err := ks.rel.Send(now, uint8(wire.OpControlWKCV1), nil); err == nil {
				ks.sent++
			}
		}
		for _, m := range ks.rel.Due(now) {
			p := wire.ControlPacket{
				Opcode:          wire.Opcode(m.Opcode),
				KeyID:           ks.id,
				SessionID:       c.localSID,
				RemoteSessionID: c.remoteSID,
				MessageID:       m.ID,
				Payload:         m.Payload,
			}
			if c.haveSID {
				p.Acks = ks.rel.TakeAcks(reliable.DefaultMaxAcksPiggyback)
			}
			c.sendControl(now, &p)
		}
		if c.haveSID && ks.rel.HasPendingAcks() {
			p := wire.ControlPacket{
				Opcode:          wire.OpAckV1,
				KeyID:           ks.id,
				SessionID:       c.localSID,
				RemoteSessionID: c.remoteSID,
				Acks:            ks.rel.TakeAcks(reliable.DefaultMaxAcksStandalone),
			}
			c.sendControl(now, &p)
		}
		if !c.haveSID {
			continue
		}
		// A message of the server missing from a gap that outlasts reordering: ack what came
		// after it again, so that OpenVPN resends it now instead of after its tls-timeout.
		if acks, n := ks.rel.RetransmitRequest(now); n > 0 {
			for range n {
				c.sendControl(now, &wire.ControlPacket{
					Opcode:          wire.OpAckV1,
					KeyID:           ks.id,
					SessionID:       c.localSID,
					RemoteSessionID: c.remoteSID,
					Acks:            acks,
				})
			}
		}
	}
}

// needsWKc reports whether the next message of ks must be P_CONTROL_WKC_V1: a tls-crypt-v2
// server that asked for it in its reset keeps no state until our message id 1 brings the WKc
// again (ssl.c control_packet_needs_wkc).
func (c *Client) needsWKc(ks *keyState) bool {
	return c.resendWKc && ks.id == 0 && ks.sent == 1
}

// maxChunk is the TLS ciphertext one control packet carries so that it fits tls-mtu. The
// tls-crypt-v2 wrapper's overhead includes the WKc, which only some opcodes carry.
func (c *Client) maxChunk(op wire.Opcode, keyID uint8) int {
	w := c.wrapperFor(keyID)
	o := w.Overhead()
	if w == c.wrapper && c.cfg.Wrap == WrapTLSCryptV2 && op != wire.OpControlWKCV1 {
		o -= len(c.cfg.TLSCryptV2.WKc)
	}
	return max(c.cfg.TLSMTU-controlHeaderMax-o, 16)
}

func (c *Client) fillWindow(now time.Time, ks *keyState) {
	for len(ks.pending) > 0 && ks.rel.SendWindowFree() > 0 {
		op := wire.OpControlV1
		if c.needsWKc(ks) {
			op = wire.OpControlWKCV1
		}
		n := min(len(ks.pending), c.maxChunk(op, ks.id))
		if _, err := ks.rel.Send(now, uint8(op), ks.pending[:n]); err != nil {
			return
		}
		ks.sent++
		ks.pending = ks.pending[n:]
	}
	if len(ks.pending) == 0 {
		ks.pending = nil
	}
}

func (c *Client) sendControl(now time.Time, p *wire.ControlPacket) {
	b, err := c.wrapperFor(p.KeyID).Wrap(nil, p, now)
	if err != nil {
		c.fatal(StateReconnecting, "internal-error", fmt.Errorf("wrapping %v: %w", p.Opcode, err))
		return
	}
	c.lastSent = now
	c.emit(EventSend{Packet: b})
}

// sendKeys is the key that encrypts outgoing data: the newest installed one the server is
// known to accept (see switchDue).
func (c *Client) sendKeys() *datachannel.Keys {
	p := c.primary
	if p != nil && p.keys != nil && (p.sending || c.retiring == nil || c.retiring.keys == nil) {
		return p.keys
	}
	if c.retiring != nil && c.retiring.keys != nil {
		return c.retiring.keys
	}
	if p != nil {
		return p.keys
	}
	return nil
}

// sealData encrypts one data-channel payload with the current keys.
func (c *Client) sealData(now time.Time, payload []byte) bool {
	k := c.sendKeys()
	if k == nil {
		return false
	}
	if c.cfg.Fragment > 0 {
		return c.sealFragments(now, k, payload)
	}
	buf := make([]byte, datachannel.Headroom+len(payload)+datachannel.Tailroom)
	copy(buf[datachannel.Headroom:], payload)
	pkt, err := k.Seal(buf, datachannel.Headroom, len(payload))
	if err != nil {
		c.warn("sealing data packet: %w", err)
		return false
	}
	c.lastSent = now
	c.slowBytes += uint64(len(payload))
	c.slowPkts++
	c.emit(EventSend{Packet: pkt})
	return true
}

// sealFragments is sealData with --fragment: OpenVPN frames for compression,
// then fragments, then encrypts, so every payload (pings and OCC messages
// too) carries a fragment header, and one too large for a datagram goes out
// in pieces.
func (c *Client) sealFragments(now time.Time, k *datachannel.Keys, payload []byte) bool {
	// The fragment header goes between the framing and the encryption.
	const off = datachannel.Headroom + fragment.HeaderSize
	buf := make([]byte, off+len(payload)+datachannel.Tailroom)
	copy(buf[off:], payload)
	start, end := k.Frame(buf, off, len(payload))
	framed := buf[start:end]
	maxPiece := fragmentPiece(c.cfg.Fragment, k)
	var pkts [][]byte
	if len(framed) <= maxPiece {
		fragment.PutWhole(buf[start-fragment.HeaderSize:])
		pkt, err := k.SealFramed(buf, start-fragment.HeaderSize, len(framed)+fragment.HeaderSize)
		if err != nil {
			c.warn("sealing data packet: %w", err)
			return false
		}
		pkts = append(pkts, pkt)
	} else {
		if c.frag == nil {
			var seed [1]byte
			_, _ = io.ReadFull(c.rand, seed[:])
			c.frag = fragment.NewFragmenter(seed[0])
		}
		sp, err := c.frag.Split(len(framed), maxPiece)
		if err != nil {
			c.warn("dropping %d-byte data packet: %w", len(payload), err)
			return false
		}
		for i := 0; i < sp.Count; i++ {
			o, n := sp.Piece(i)
			pb := make([]byte, off+fragment.HeaderSize+n+datachannel.Tailroom)
			sp.PutHeader(pb[off:], i)
			copy(pb[off+fragment.HeaderSize:], framed[o:o+n])
			pkt, err := k.SealFramed(pb, off, fragment.HeaderSize+n)
			if err != nil {
				c.warn("sealing data packet: %w", err)
				return false
			}
			pkts = append(pkts, pkt)
		}
	}
	c.lastSent = now
	c.slowBytes += uint64(len(payload))
	c.slowPkts++
	for _, p := range pkts {
		c.emit(EventSend{Packet: p})
	}
	return true
}

// fragmentPiece is the largest piece of a payload for these keys with the
// fragment limit link (OpenVPN's max_fragment_size).
func fragmentPiece(link int, k *datachannel.Keys) int {
	fo := k.FrameOverhead()
	id := 0
	if fo.Block > 0 {
		id = datachannel.PacketIDSize
	}
	return fragment.MaxPiece(link, fo.Header, fo.Block, id)
}

// AuthenticatedControl counts the control packets from the server that passed the control
// channel's authentication (the tls-auth HMAC or tls-crypt) and belong to this session. Without
// tls-auth or tls-crypt nothing authenticates a control packet, so it stays zero. The session
// compares it around HandlePacket to decide whether a packet from a new server address may move
// the connection there (--float).
func (c *Client) AuthenticatedControl() uint64 { return c.authCtl }

// SendPing sends a keepalive ping now if data keys exist. After the session moved its transport
// to a new local address, an authenticated data packet with the peer-id is what makes an
// OpenVPN 2.6 server follow the client to that address (multi_process_float).
func (c *Client) SendPing(now time.Time) {
	if c.dead || c.closed || !c.started || c.sendKeys() == nil {
		return
	}
	c.setNow(now)
	c.sealData(now, datachannel.PingPayload[:])
}

// SendTunPacket encrypts one IP packet on the slow path (tests and tools; the session's data
// path seals packets itself).
func (c *Client) SendTunPacket(now time.Time, ip []byte) {
	if c.dead || c.closed || !c.started {
		return
	}
	c.setNow(now)
	if len(ip) > datachannel.MaxPayload {
		c.warn("dropping oversized tun packet (%d bytes)", len(ip))
		return
	}
	if !c.sealData(now, ip) {
		c.warn("dropping tun packet: no data keys yet")
	}
}

func (c *Client) handleData(now time.Time, keyID uint8, pkt []byte) {
	var k *datachannel.Keys
	if c.primary != nil && c.primary.id == keyID {
		k = c.primary.keys
	}
	if k == nil && c.retiring != nil && c.retiring.id == keyID {
		k = c.retiring.keys
	}
	if k == nil {
		c.warn("dropping data packet for key id %d without keys", keyID)
		return
	}
	if c.scratch == nil {
		c.scratch = make([]byte, datachannel.MaxPayload)
	}
	buf := append([]byte(nil), pkt...)
	var p []byte
	var err error
	if c.cfg.Fragment > 0 {
		p, err = c.openFragment(now, k, buf)
		if p == nil && err == nil {
			c.lastRecv = now // an authentic piece of a larger packet
			return
		}
	} else {
		p, err = k.OpenTo(buf, c.scratch)
	}
	if err != nil {
		c.warn("dropping data packet: %w", err)
		return
	}
	if c.primary != nil && k == c.primary.keys && c.switchDue(now, true) {
		c.switchKeys()
	}
	c.lastRecv = now
	c.slowBytes += uint64(len(p))
	c.slowPkts++
	if datachannel.IsPing(p) {
		return
	}
	if op, _, ok := datachannel.ParseOCC(p); ok {
		if op == datachannel.OCCExit {
			// occ.c: OCC_EXIT from the peer restarts the connection.
			c.fatal(StateReconnecting, "remote-exit", nil)
		}
		return
	}
	c.emit(EventTunPacket{Packet: append([]byte(nil), p...)})
}

// openFragment decrypts a data packet with --fragment: it returns the
// payload once its last piece is in, nil without error while pieces are
// missing.
func (c *Client) openFragment(now time.Time, k *datachannel.Keys, pkt []byte) ([]byte, error) {
	p, err := k.OpenFramed(pkt)
	if err != nil {
		return nil, err
	}
	if c.reasm == nil {
		// Room for the largest tun-mtu a server may push (IV_MTU).
		c.reasm = fragment.NewReassembler(c.cfg.TunMaxMTU + fragmentSlack)
	}
	whole, err := c.reasm.Incoming(now, p)
	if err != nil || whole == nil {
		return nil, err
	}
	return k.Unframe(append([]byte(nil), whole...), c.scratch)
}

// fragmentSlack is what a reassembled payload may carry beyond the tun MTU:
// compression framing, with room to spare. OpenVPN sizes its reassembly
// buffers from its own frame the same way and drops larger packets.
const fragmentSlack = 64

// AuthToken returns the auth-token (and auth-token-user, if pushed) the server gave this
// connection, for the session to put into the Config of the next connection, as OpenVPN keeps
// the token across restarts. Both are empty when there is none or AUTH_FAILED invalidated it.
func (c *Client) AuthToken() (user, token string) { return c.tokenUser, c.token }

// pushParts collects the options of a PUSH_REPLY or PUSH_UPDATE sent in several messages
// (push-continuation), bounded in count and bytes so a server cannot make us hoard.
type pushParts struct {
	opts  []string
	bytes int
}

// add takes one message's options (after the command word); more reports that the server
// said another part follows. The continuation marker is read with the same tokenizer as every
// option, so a quoted marker counts too; push.Parse skips it.
func (p *pushParts) add(body string) (more bool, err error) {
	for _, o := range strings.Split(body, ",") {
		if strings.TrimSpace(o) == "" {
			continue
		}
		if w, err := push.Words(o); err == nil && len(w) > 0 && w[0] == "push-continuation" {
			more = len(w) > 1 && w[1] == "2"
			continue
		}
		if len(p.opts) >= maxPushOptions {
			return false, fmt.Errorf("has more than %d options", maxPushOptions)
		}
		if p.bytes += len(o); p.bytes > maxPushBytes {
			return false, fmt.Errorf("is larger than %d bytes", maxPushBytes)
		}
		p.opts = append(p.opts, o)
	}
	return more, nil
}

// take returns the collected options and starts over.
func (p *pushParts) take() []string {
	opts := p.opts
	*p = pushParts{}
	return opts
}
