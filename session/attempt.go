package session

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine"
	"github.com/ovpnd/ovpnd/internal/memtrim"
)

// attempt is one connection to one server address: the control loop that owns
// the engine, and the socket reader of the data path.
type attempt struct {
	r      *runner
	s      *Session
	conn   *config.Connection
	remote netip.AddrPort
	eng    *engine.Client
	pc     packetConn
	ref    *connRef
	ctrl   chan *ctrlPacket
	errc   chan error
	// moved: the data path moved the float socket's peer (float.go).
	moved chan struct{}

	// ctx ends when the attempt does; everything the attempt starts runs under it and is
	// counted in wg, and attempt waits for wg before it returns.
	ctx context.Context
	wg  sync.WaitGroup
	// The current credential request: its id, its own answer channel and the cancel
	// function of its context. A new request cancels its predecessor, whose answer (if
	// any) lands in a channel nobody reads.
	credID     uint64
	credAnswer chan credAnswer
	credCancel context.CancelFunc
	// crText: the current request answers a CR_TEXT challenge of a pending authentication.
	crText bool

	start      time.Time
	base       Counters // counters when the attempt started; the engine wants its own
	gotPacket  bool     // something came back from the server
	connected  bool
	authFailed string
	usedToken  bool
	shutdown   time.Time // when the exit notification started (zero: not shutting down)

	// dropsLogged are the counters of the last drop report, dropsAt its time: drops are
	// summed up in one line per dropLogInterval at most, never one line per packet.
	dropsLogged Counters
	dropsAt     time.Time

	// Roaming (roam.go): when the transport last moved to a new local address (zero: not
	// since the last check), when the last move was tried, and whether a signal waits for
	// roamMinInterval to pass.
	movedAt, roamTried time.Time
	roamPending        bool
	readerDone         chan struct{} // closed when the current socket reader returns
	// noPathSince is when a move first found no route to the server (zero: it found one).
	noPathSince time.Time
}

// attempt runs one connection until it ends and reports how.
func (r *runner) attempt(ctx context.Context, conn *config.Connection, remote netip.AddrPort) outcome {
	s := r.s
	s.setState(StateConnecting, fmt.Sprintf("%s:%v", conn.Proto, remote))
	// A new tun device is opened while the transport is dialled and the engine set up:
	// nothing needs the device before the socket reader starts, and opening it (the kernel
	// registering a network device: 0.6-1.8 ms) need not delay the first packet. tunOpened
	// waits for it; every path out of this function passes through it.
	var tunErr chan error
	if r.tun == nil {
		tunErr = make(chan error, 1)
		go func() { tunErr <- r.openTun() }()
	}
	tunOpened := func() error {
		if tunErr == nil {
			return nil
		}
		err := <-tunErr
		tunErr = nil
		return err
	}
	pc, err := r.dial(ctx, conn, remote)
	if err != nil {
		if terr := tunOpened(); terr != nil {
			return outcome{kind: outFatal, err: terr}
		}
		if ctx.Err() != nil {
			return outcome{kind: outExit}
		}
		s.logf(0, "%v", err)
		return outcome{kind: outRetry, reason: err.Error()}
	}
	var creds *credentials
	if r.creds != (credentials{}) {
		c := r.creds
		creds = &c
	}
	// A CRV1 challenge is answered by this attempt only.
	r.creds.challenge = nil
	ec, err := engineConfig(r.cfg, conn, remote.Addr().Is6(), creds, nil)
	if err != nil {
		pc.Close()
		tunOpened()
		return outcome{kind: outFatal, err: fmt.Errorf("building protocol configuration: %w", err)}
	}
	if c := s.crl; c != nil {
		if c.dir != "" {
			ec.CRLDirRevoked = c.revoked
		} else {
			ec.CRLs = c.current
		}
	}
	ec.Fragment = fragmentLink(fragmentFromConfig(r.cfg), transportOf(pc))
	if p := r.pathRTT; p.remote == remote && p.srtt > 0 {
		ec.PathRTT, ec.PathRTTVar = p.srtt, p.rttvar
	}
	eng, err := engine.NewClient(ec)
	if err != nil {
		pc.Close()
		tunOpened()
		return outcome{kind: outFatal, err: fmt.Errorf("starting protocol engine: %w", err)}
	}
	if err := tunOpened(); err != nil {
		pc.Close()
		eng.Close()
		return outcome{kind: outFatal, err: err}
	}
	actx, cancel := context.WithCancel(ctx)
	a := &attempt{
		r: r, s: s, conn: conn, remote: remote, eng: eng, pc: pc,
		ctx:       actx,
		ctrl:      make(chan *ctrlPacket, ctrlQueue),
		errc:      make(chan error, 4),
		moved:     make(chan struct{}, 1),
		start:     s.opts.now(),
		base:      s.cnt.snapshot(),
		usedToken: creds != nil && creds.token != "",
	}
	a.dropsLogged = a.base
	a.ref = a.newRef(pc)
	s.logf(1, "connecting to %s:%v", conn.Proto, remote)
	var local netip.AddrPort
	if la, ok := pc.(interface{ LocalAddr() netip.AddrPort }); ok {
		local = la.LocalAddr()
	}
	s.update(func(st *Status) {
		st.Remote, st.Proto, st.Local = remote, conn.Proto.String(), local
		st.Cipher = "" // until this connection's push reply settles it
	})

	r.dp.setKeys(nil)
	r.dp.conn.Store(a.ref)
	a.startReader(a.ref)

	out := a.loop(ctx)

	// Every exit path ends here: stop what the attempt started and wait for all of it,
	// then close the engine (its TLS goroutines hold the session's secrets).
	cancel()
	a.ref.closing.Store(true)
	r.dp.setKeys(nil)
	r.dp.conn.CompareAndSwap(a.ref, nil)
	a.pc.Close() // the attempt's current transport: roaming may have replaced pc
	a.wg.Wait()
	// Route-delay work of this connection does not outlive it.
	r.stopDelay()
	if srtt, rttvar := eng.RTT(); srtt > 0 {
		r.pathRTT.remote, r.pathRTT.srtt, r.pathRTT.rttvar = remote, srtt, rttvar
	}
	eng.Close()
	for len(a.ctrl) > 0 {
		putCtrl(<-a.ctrl)
	}
	out.connected = out.connected || a.connected
	return out
}

// credAnswer is what a credential request returned: a username and password
// (hasPass), a challenge answer (hasResp), or an error.
type credAnswer struct {
	id         uint64
	user, pass string
	hasPass    bool
	resp       string
	hasResp    bool
	err        error
}

func (a *attempt) loop(ctx context.Context) outcome {
	s := a.s
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	connectTimeout := a.conn.ConnectTimeout
	if connectTimeout <= 0 {
		connectTimeout = defaultConnectTimeout
	}
	ctxDone := ctx.Done()
	a.eng.Start(a.start)
	for {
		if out, done := a.drain(); done {
			return out
		}
		now := s.opts.now()
		next := a.eng.NextDeadline()
		if !a.connected && !a.gotPacket {
			if d := a.start.Add(connectTimeout); next.IsZero() || d.Before(next) {
				next = d
			}
		}
		if !a.shutdown.IsZero() {
			if d := a.shutdown.Add(shutdownGrace); next.IsZero() || d.Before(next) {
				next = d
			}
		}
		if d := a.roamDeadline(); !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(now), 0)
		}
		timer.Reset(wait)

		select {
		case p := <-a.ctrl:
			now = s.opts.now()
			a.noteActivity(now)
			a.handleCtrl(now, p)
			putCtrl(p)
			// Handle whatever else is queued before draining events, so a burst
			// of control packets costs one event drain.
			for more := true; more; {
				select {
				case p := <-a.ctrl:
					a.handleCtrl(now, p)
					putCtrl(p)
				default:
					more = false
				}
			}
		case <-a.moved:
			a.floated()
		case <-a.r.underlay:
			now = s.opts.now()
			if out, done := a.roam(ctx, now); done {
				return out
			}
		case <-a.r.dp.keyUsed:
			now = s.opts.now()
			a.noteActivity(now)
		case <-timer.C:
			now = s.opts.now()
			if !a.shutdown.IsZero() && !now.Before(a.shutdown.Add(shutdownGrace)) {
				return outcome{kind: outExit}
			}
			if !a.connected && !a.gotPacket && !now.Before(a.start.Add(connectTimeout)) {
				reason := fmt.Sprintf("no answer from %v within %v", a.remote, connectTimeout)
				s.logf(1, "%s", reason)
				return outcome{kind: outRetry, reason: reason}
			}
			if out, failed := a.checkRoam(ctx, now); failed {
				return out
			}
			a.noteActivity(now)
			a.eng.HandleTimeout(now)
		case err := <-a.errc:
			if !a.shutdown.IsZero() {
				return outcome{kind: outExit}
			}
			var te *tunError
			if errors.As(err, &te) {
				// Ending the session would remove its routes and let a full
				// tunnel's traffic out in the clear: reconnect with a new
				// device instead, and say so.
				s.logf(0, "%v; reconnecting with a new tun device", err)
				a.r.tunFailed = true
				return outcome{kind: outRetry, reason: err.Error()}
			}
			s.logf(1, "connection to %v lost: %v", a.remote, err)
			return outcome{kind: outRetry, reason: err.Error()}
		case <-ctxDone:
			ctxDone = nil
			if s.disconnected() {
				a.beginShutdown("disconnect requested")
			} else {
				a.beginShutdown("shutting down")
			}
		case <-s.restart:
			return outcome{kind: outRetry, reason: "restart requested", connected: true}
		case ans := <-a.credAnswer:
			if ans.id != a.credID {
				continue // cannot happen: each request has its own channel
			}
			a.credAnswer, a.credCancel = nil, nil
			if ans.err != nil {
				if ctx.Err() == nil {
					s.logf(0, "%v", ans.err)
				}
				continue
			}
			if st := s.State(); st == StateWaitingInput {
				if a.crText {
					// A CR_TEXT answer goes to a server that still waits.
					s.setState(StateAuthPending, "waiting for the server to check the answer")
				} else {
					s.setState(StateAuthenticating, "")
				}
			}
			a.crText = false
			if ans.hasPass {
				a.setCredentials(ans.user, ans.pass)
			}
			if ans.hasResp {
				a.eng.SetResponse(ans.resp)
			}
		}
	}
}

func (a *attempt) beginShutdown(reason string) {
	if !a.shutdown.IsZero() {
		return
	}
	now := a.s.opts.now()
	a.shutdown = now
	a.s.setState(StateExiting, reason)
	a.noteActivity(now)
	a.eng.Shutdown(now)
}

func (a *attempt) setCredentials(user, pass string) {
	if !a.r.cfg.AuthNoCache {
		a.r.creds.user, a.r.creds.pass = user, pass
	}
	a.eng.SetCredentials(user, pass)
}

// dropLogInterval is the least time between two lines reporting dropped packets.
const dropLogInterval = 10 * time.Second

// reportDrops logs the packets dropped since the last report, at most once per
// dropLogInterval: a flood of spoofed or replayed packets costs one line.
func (a *attempt) reportDrops(now time.Time, c Counters) {
	last := a.dropsLogged
	if c.drops() == last.drops() || (!a.dropsAt.IsZero() && now.Sub(a.dropsAt) < dropLogInterval) {
		return
	}
	a.s.logf(1, "dropped %d data packets: %d replayed, %d failed to decrypt, %d oversized, %d without a key",
		c.drops()-last.drops(), c.Replayed-last.Replayed, c.DecryptFailed-last.DecryptFailed,
		c.Oversized-last.Oversized, c.NoKey-last.NoKey)
	a.dropsLogged, a.dropsAt = c, now
}

func (a *attempt) noteActivity(now time.Time) {
	c := a.s.cnt.snapshot()
	a.reportDrops(now, c)
	act := engine.Activity{
		BytesIn:    c.BytesIn - a.base.BytesIn,
		BytesOut:   c.BytesOut - a.base.BytesOut,
		PacketsIn:  c.PacketsIn - a.base.PacketsIn,
		PacketsOut: c.PacketsOut - a.base.PacketsOut,

		NextKeyUsed: a.r.dp.nextKeyUsed(),
	}
	if c.LastRecv.After(a.start) {
		act.LastRecv = c.LastRecv
	}
	if c.LastSent.After(a.start) {
		act.LastSent = c.LastSent
	}
	a.eng.NoteDataActivity(now, act)
}

// drain handles every pending engine event; done reports that the attempt is over.
func (a *attempt) drain() (outcome, bool) {
	s := a.s
	for ev := a.eng.NextEvent(); ev != nil; ev = a.eng.NextEvent() {
		switch e := ev.(type) {
		case engine.EventSend:
			if err := a.pc.WritePacket(e.Packet); err != nil {
				if !a.shutdown.IsZero() {
					return outcome{kind: outExit}, true
				}
				s.logf(1, "sending to %v: %v", a.remote, err)
				return outcome{kind: outRetry, reason: err.Error()}, true
			}
		case engine.EventTunPacket:
			a.writeTun(e.Packet)
		case engine.EventKeys:
			ks := &keySet{}
			if e.Primary != nil {
				ks.primary = e.Primary
			}
			if e.Retiring != nil {
				ks.retiring = e.Retiring
			}
			if e.Next != nil {
				ks.retiring, ks.nextUsed = e.Next, new(atomic.Bool)
			}
			a.r.dp.setKeys(ks)
			if a.connected {
				memtrim.AfterRekey()
			}
			if e.Primary != nil {
				s.logf(3, "data channel keys: primary key id %d", e.Primary.KeyID())
				cipher := e.Primary.Cipher()
				s.update(func(st *Status) { st.Cipher = cipher })
			}
		case engine.EventPushReply:
			if err := a.r.applyPush(e.Reply, a.remote.Addr()); err != nil {
				s.logf(0, "applying pushed options: %v", err)
				return outcome{kind: outFatal, err: fmt.Errorf("applying pushed options: %w", err)}, true
			}
		case engine.EventPushUpdate:
			a.r.applyPushUpdate(e.Update, a.remote.Addr())
		case engine.EventState:
			if out, done := a.onState(e); done {
				return out, true
			}
		case engine.EventNeedCredentials:
			a.askCredentials(e.Prompts)
		case engine.EventAuthChallenge:
			// Answered by the next connection, to the same server.
			a.r.creds.challenge = e.Challenge
			a.r.creds.token, a.r.creds.tokenUser = "", ""
			s.logf(1, "the server asks a challenge: %s", e.Challenge.Text)
		case engine.EventAuthPrompt:
			a.onAuthPrompt(e)
		case engine.EventAuthFailed:
			// In words, once: the bare AUTH_FAILED carries no reason.
			a.authFailed = "the server refused the credentials"
			if e.Message != "" {
				a.authFailed = "the server said: " + e.Message
			}
			s.logf(0, "authentication failed: %s", a.authFailed)
		case engine.EventAuthPending:
			s.logf(1, "authentication pending%s, waiting up to %v", parenthesized(e.Method), e.Timeout)
			s.setState(StateAuthPending, fmt.Sprintf("the server waits up to %v for authentication", e.Timeout))
			s.publish(Event{Kind: EventAuthPending, Message: e.Method, State: s.State()})
		case engine.EventInfo:
			s.logf(1, "server info: %s", e.Message)
		case engine.EventError:
			if e.Fatal {
				s.logf(0, "protocol error: %v", e.Err)
			} else {
				s.logf(3, "warning: %v", e.Err)
			}
		}
	}
	return outcome{}, false
}

func (a *attempt) onState(e engine.EventState) (outcome, bool) {
	s := a.s
	switch e.State {
	case engine.StateConnecting, engine.StateTLSHandshake, engine.StateAuthenticating:
		st, _ := fromEngine(e.State)
		s.setState(st, e.Reason)
	case engine.StateConnected:
		a.connected = true
		now := s.opts.now()
		var reason string
		s.update(func(st *Status) {
			st.Connected = now
			reason = s.netReason
		})
		s.setState(StateConnected, reason)
		s.logf(1, "Initialization Sequence Completed (%v after start)", s.opts.now().Sub(a.start).Round(time.Millisecond))
		memtrim.AfterConnect()
	case engine.StateReconnecting:
		if !a.shutdown.IsZero() {
			return outcome{kind: outExit}, true
		}
		if a.authFailed != "" && a.usedToken {
			// The server refused the auth-token and asked for a reconnect (it restarted
			// and lost its token key): the next attempt logs in with the password, else
			// every attempt would send the dead token again.
			a.r.creds.token, a.r.creds.tokenUser = "", ""
		}
		return outcome{kind: outRetry, reason: e.Reason, noAdvance: a.r.creds.challenge != nil}, true
	case engine.StateExiting:
		if !a.shutdown.IsZero() {
			return outcome{kind: outExit}, true
		}
		if a.authFailed != "" {
			if a.usedToken {
				// An expired auth-token: forget it and log in with the password again.
				a.r.creds.token, a.r.creds.tokenUser = "", ""
				return outcome{kind: outRetry, reason: "auth-token rejected"}, true
			}
			if a.r.cfg.AuthRetry != config.AuthRetryNone {
				return outcome{kind: outRetry, reason: "authentication failed: " + a.authFailed}, true
			}
			return outcome{kind: outFatal, err: fmt.Errorf("%w: %s", ErrAuthFailed, a.authFailed)}, true
		}
		return outcome{kind: outFatal, err: fmt.Errorf("%w: %s", ErrHalted, e.Reason)}, true
	case engine.StateClosed:
		return outcome{kind: outExit}, true
	}
	return outcome{}, false
}

// fromEngine maps the engine's states onto the session's (one vocabulary: the session's
// words are the engine's where both have the state). ok is false for the engine states
// that the session turns into an action instead (Reconnecting, Exiting, Closed).
func fromEngine(st engine.State) (State, bool) {
	switch st {
	case engine.StateConnecting:
		return StateConnecting, true
	case engine.StateTLSHandshake:
		return StateTLSHandshake, true
	case engine.StateAuthenticating:
		return StateAuthenticating, true
	case engine.StateConnected:
		return StateConnected, true
	case engine.StateReconnecting:
		return StateReconnecting, false
	case engine.StateExiting:
		return StateExiting, false
	}
	return StateDisconnected, false
}

// askCredentials gets what the engine asks for before it can log in: a
// username and password (from the Credentials callback or a SetCredentials
// call) and a challenge answer (from the Respond callback), in that order.
func (a *attempt) askCredentials(prompts []engine.Prompt) {
	s := a.s
	needPass := false
	var challenge *Prompt
	for i := range prompts {
		if prompts[i].Kind == engine.PromptPassword {
			needPass = true
		} else {
			p := prompts[i]
			challenge = &p
		}
	}
	if needPass && a.r.creds.user != "" && a.r.creds.pass != "" {
		a.eng.SetCredentials(a.r.creds.user, a.r.creds.pass)
		needPass = false
	}
	if !needPass && challenge == nil {
		return
	}
	if needPass || challenge != nil {
		s.setState(StateWaitingInput, "")
	}
	if challenge != nil {
		s.publish(Event{Kind: EventPrompt, Message: challenge.Text, Prompt: challenge, State: s.State()})
	}
	cb, respond := s.opts.Credentials, s.opts.Respond
	if needPass && cb == nil {
		s.logf(0, "the server wants a username and password, and nothing here can ask for them")
		if challenge == nil {
			return
		}
	}
	if challenge != nil && respond == nil {
		s.logf(0, "the server needs an answer to %q (%v), but nothing here can ask for it", challenge.Text, challenge.Kind)
		return
	}
	a.crText = false
	a.startRequest(func(ctx context.Context) credAnswer {
		var ans credAnswer
		if needPass && cb != nil {
			u, p, err := cb(ctx)
			if err != nil {
				return credAnswer{err: fmt.Errorf("asking for credentials: %w", err)}
			}
			ans.user, ans.pass, ans.hasPass = u, p, true
		}
		if challenge != nil {
			r, err := respond(ctx, *challenge)
			if err != nil {
				return credAnswer{err: fmt.Errorf("asking for the %v answer: %w", challenge.Kind, err)}
			}
			ans.resp, ans.hasResp = r, true
		}
		return ans
	})
}

// startRequest runs one credential request in a goroutine the attempt owns. The
// request has its own id, answer channel and context; it cancels its predecessor,
// whose late answer lands in the predecessor's channel, which nobody reads. The
// context ends with the attempt, which waits for the goroutine.
func (a *attempt) startRequest(ask func(ctx context.Context) credAnswer) {
	if a.credCancel != nil {
		a.credCancel()
	}
	a.credID++
	ctx, cancel := context.WithCancel(a.ctx)
	ch := make(chan credAnswer, 1)
	a.credAnswer, a.credCancel = ch, cancel
	id := a.credID
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer cancel()
		ans := ask(ctx)
		ans.id = id
		ch <- ans
	}()
}

// onAuthPrompt presents what a pending authentication wants: a web login is
// logged and published; a CR_TEXT challenge is asked through Respond and its
// answer sent to the server as CR_RESPONSE.
func (a *attempt) onAuthPrompt(e engine.EventAuthPrompt) {
	s := a.s
	p := e.Prompt
	switch p.Kind {
	case engine.PromptWebLogin:
		s.logf(1, "web login required: open %s", p.URL)
		s.setState(StateAuthPending, "waiting for web login at "+p.URL)
		s.update(func(st *Status) { st.WebLogin = p.URL })
	default:
		s.logf(1, "the server asks: %s", p.Text)
		s.setState(StateWaitingInput, "waiting for an answer to: "+p.Text)
	}
	s.publish(Event{Kind: EventPrompt, Message: p.Text, Prompt: &p, State: s.State()})
	if p.Kind != engine.PromptCRText {
		return
	}
	respond := s.opts.Respond
	if respond == nil {
		s.logf(0, "the server needs an answer to %q, but nothing here can ask for it", p.Text)
		return
	}
	a.crText = true
	a.startRequest(func(ctx context.Context) credAnswer {
		r, err := respond(ctx, p)
		if err != nil {
			return credAnswer{err: fmt.Errorf("asking for the challenge answer: %w", err)}
		}
		return credAnswer{resp: r, hasResp: true}
	})
}

func parenthesized(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// writeTun writes one packet from the engine's slow path.
func (a *attempt) writeTun(p []byte) {
	if a.r.tun == nil {
		return
	}
	buf := make([]byte, tunWriteOffset+len(p))
	copy(buf[tunWriteOffset:], p)
	if _, err := a.r.tun.Write([][]byte{buf}, tunWriteOffset); err != nil && !errors.Is(err, os.ErrClosed) {
		a.s.logf(3, "writing to tun: %v", err)
	}
}
