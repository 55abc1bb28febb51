package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/session"
)

// inputRequest is one credential the session waits for. The value lives here only between
// ProvideInput and the hand-off to the session.
type inputRequest struct {
	id       uint32
	kind     string
	prompt   string
	secret   bool
	url      string // web-login only
	answered bool
	value    string
}

// respRequest is one call of the session's Respond callback: the one challenge answer it
// waits for and its own wake-up channel. A newer call for the same challenge takes over the
// input (id and answer kept), like credRequest.
type respRequest struct {
	input *inputRequest
	wake  chan struct{}
}

// credRequest is one call of the session's Credentials callback: the inputs it waits for and
// its own wake-up channel. A newer call takes over the inputs (same ids, answers kept) so
// that an answer typed for a prompt that a reconnect replaced reaches the live request.
type credRequest struct {
	label  string // "Auth", "HTTP Proxy", ...
	inputs []*inputRequest
	wake   chan struct{} // signalled by ProvideInput; only this request's waiter reads it
}

type logLine struct {
	usec  uint64
	level uint32
	msg   string
}

// object is one session on the bus: the net.ovpnd1.Session interface, its properties and
// signals, the credential queue and the log ring.
type object struct {
	bus   *bus
	name  string
	owner uint32
	path  dbus.ObjectPath
	tun   Tunnel
	log   Logger
	// askUser reports whether the profile leaves the username to be asked for.
	askUser bool
	// applier is the unique bus name that applies an external-mode session's network
	// settings (the caller of Start); "" for other sessions.
	applier string

	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned and the final state is published

	mu sync.Mutex
	// final is the tunnel's last status once Run returned; the tunnel itself (with its
	// profile and buffers) is dropped then, so a finished session costs only this object.
	final      *session.Status
	finishedAt time.Time
	runErr     error // what Run returned
	cred       *credRequest
	resp       *respRequest
	// webLogin is the web login the session waits for (Status.WebLogin), listed by
	// PendingInput but never answered: the server completes it. nil when none.
	webLogin  *inputRequest
	nextID    uint32
	ring      []logLine
	ringNext  int
	subs      map[string]subscription
	lastProps map[string]dbus.Variant
}

// subscription is one subscribed connection and its uid (for the per-uid cap).
type subscription struct{ uid uint32 }

func newObject(b *bus, name string, owner uint32, cfg *config.Config, log Logger) *object {
	o := &object{
		bus:   b,
		name:  name,
		owner: owner,
		path:  dbus.ObjectPath(api.SessionPath(name)),
		log:   log,
		done:  make(chan struct{}),
		subs:  map[string]subscription{},
	}
	if aup := cfg.AuthUserPass; aup != nil {
		o.askUser = aup.Ask || aup.Username == ""
	}
	return o
}

// sessionOptions are the session.Options that connect the tunnel to this object.
func (o *object) sessionOptions(stateDir string) session.Options {
	return session.Options{
		Name:        o.name,
		StateDir:    stateDir,
		Verb:        -1,
		Logf:        o.logf,
		Credentials: o.askCredentials,
		Respond:     o.askResponse,
		// Proxy credentials the profile says to ask for come the same way.
		ProxyCredentials: o.askProxyCredentials,
	}
}

// logf is the session's log callback. The session calls it after its status changed, so
// the state read here is the one the line is about (the journal's OVPND_STATE).
func (o *object) logf(format string, args ...any) {
	o.log.Log(1, o.name, o.status().State.String(), fmt.Sprintf(format, args...))
}

// tunnel is the running tunnel, nil once it finished.
func (o *object) tunnel() Tunnel {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.final != nil {
		return nil
	}
	return o.tun
}

// status is the session's status: the live one, or the last one once it finished. The
// session owns it; the object never keeps a copy of its own.
func (o *object) status() session.Status {
	o.mu.Lock()
	final, tun := o.final, o.tun
	o.mu.Unlock()
	if final != nil {
		return *final
	}
	if tun == nil {
		return session.Status{}
	}
	return tun.Status()
}

// start runs the tunnel until it ends, publishing its status and log; onDone runs
// afterwards. The two goroutines it starts are joined before done is closed.
func (o *object) start(ctx context.Context, onDone func(*object)) {
	ctx, o.cancel = context.WithCancel(ctx)
	events, unsubscribe := o.tun.Subscribe()
	wake, unwatch := o.tun.Watch()
	stop, obsDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(obsDone)
		for {
			select {
			case ev := <-events:
				o.handleEvent(ev)
			case <-wake:
				o.publishProps()
				o.syncWebLogin()
			case <-stop:
				return
			}
		}
	}()
	go func() {
		err := o.tun.Run(ctx)
		// The session never closes its channels: stop the observer, then handle what was
		// queued before Run returned.
		close(stop)
		<-obsDone
		unsubscribe()
		unwatch()
		o.drain(events)
		st := o.tun.Status()
		o.mu.Lock()
		o.final, o.finishedAt, o.runErr = &st, time.Now(), err
		o.tun = nil
		o.cred, o.resp, o.webLogin = nil, nil, nil
		o.mu.Unlock()
		if err != nil {
			o.log.Log(0, o.name, st.State.String(), "session ended: "+clipUTF8(err.Error(), api.MaxLogLine))
		} else {
			o.log.Log(1, o.name, st.State.String(), "session ended")
		}
		o.publishProps()
		close(o.done)
		if onDone != nil {
			onDone(o)
		}
	}()
}

// drain handles whatever the session queued before Run returned.
func (o *object) drain(events <-chan session.Event) {
	for {
		select {
		case ev := <-events:
			o.handleEvent(ev)
		default:
			return
		}
	}
}

func (o *object) handleEvent(ev session.Event) {
	switch ev.Kind {
	case session.EventLog:
		o.addLog(ev.Time, ev.Level, ev.Message)
	case session.EventAuthPending:
		o.addLog(ev.Time, 1, "authentication pending: "+ev.Message)
	}
}

func (o *object) addLog(t time.Time, level int, msg string) {
	msg = clipUTF8(msg, api.MaxLogLine)
	if level < 0 {
		level = 0
	}
	l := logLine{usec: uint64(t.UnixMicro()), level: uint32(level), msg: msg}
	o.mu.Lock()
	if len(o.ring) < api.LogHistoryLines {
		o.ring = append(o.ring, l)
	} else {
		o.ring[o.ringNext] = l
		o.ringNext = (o.ringNext + 1) % api.LogHistoryLines
	}
	subs := o.subscribersLocked()
	o.mu.Unlock()
	for _, s := range subs {
		o.bus.signal(s, o.path, api.SessionInterface, api.SignalLog, l.usec, l.level, l.msg)
	}
}

// clipUTF8 bounds s to n bytes without splitting a character and replaces invalid UTF-8: a
// D-Bus string must be valid UTF-8, and the bus daemon drops a connection that sends one that
// is not, which would cut every session off the API.
func clipUTF8(s string, n int) string {
	s = cutAt(s, n)
	if !utf8.ValidString(s) {
		// U+FFFD is three bytes: the repaired text may be longer than n again.
		s = cutAt(strings.ToValidUTF8(s, "\uFFFD"), n)
	}
	return s
}

// cutAt cuts s to at most n bytes, backing off to the start of the character at the cut.
func cutAt(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

func (o *object) subscribersLocked() []string {
	out := make([]string, 0, len(o.subs))
	for s := range o.subs {
		out = append(out, s)
	}
	return out
}

func (o *object) pendingLocked() []*inputRequest {
	var out []*inputRequest
	if o.cred != nil {
		for _, r := range o.cred.inputs {
			if !r.answered {
				out = append(out, r)
			}
		}
	}
	if o.resp != nil && !o.resp.input.answered {
		out = append(out, o.resp.input)
	}
	return out
}

// syncWebLogin follows the session's web login: a new URL is listed in PendingInput and
// announced with InputRequired (kind web-login) and OpenURL; a finished one is dropped.
func (o *object) syncWebLogin() {
	url := o.status().WebLogin
	o.mu.Lock()
	if url == "" || o.final != nil {
		o.webLogin = nil
		o.mu.Unlock()
		return
	}
	if o.webLogin != nil && o.webLogin.url == url {
		o.mu.Unlock()
		return
	}
	o.nextID++
	r := &inputRequest{id: o.nextID, kind: api.InputWebLogin, prompt: clipUTF8("Log in at "+url, api.MaxLogLine), url: clipUTF8(url, api.MaxLogLine)}
	o.webLogin = r
	subs := o.subscribersLocked()
	o.mu.Unlock()
	for _, s := range subs {
		o.bus.signal(s, o.path, api.SessionInterface, api.SignalInputRequired, r.id, r.kind, r.prompt, r.secret, r.url)
		o.bus.signal(s, o.path, api.SessionInterface, api.SignalOpenURL, r.url)
	}
}

// inputKinds maps the session's challenge prompts to PendingInput kinds.
var inputKinds = map[session.PromptKind]string{
	session.PromptStaticChallenge: api.InputStaticChallenge,
	session.PromptChallenge:       api.InputChallenge,
	session.PromptCRText:          api.InputCRText,
}

// askResponse is the session's Respond callback: one request for the answer to a challenge
// (its kind, text and echo flag), announced with InputRequired and answered with
// ProvideInput. Like askPair, each call has its own wake-up channel, and a newer call for the
// same challenge takes over the input.
func (o *object) askResponse(ctx context.Context, p session.Prompt) (string, error) {
	kind, ok := inputKinds[p.Kind]
	if !ok {
		return "", fmt.Errorf("no answer can be given to a %v prompt", p.Kind)
	}
	prompt := clipUTF8(p.Text, api.MaxLogLine)
	if prompt == "" {
		prompt = "Challenge response"
	}
	o.mu.Lock()
	if o.final != nil {
		o.mu.Unlock()
		return "", errors.New("session finished")
	}
	req := &respRequest{wake: make(chan struct{}, 1)}
	if prev := o.resp; prev != nil && prev.input.kind == kind && prev.input.prompt == prompt && prev.input.secret == !p.Echo {
		req.input = prev.input
	} else {
		o.nextID++
		req.input = &inputRequest{id: o.nextID, kind: kind, prompt: prompt, secret: !p.Echo}
	}
	o.resp = req
	r := req.input
	subs := o.subscribersLocked()
	o.mu.Unlock()
	o.log.Log(1, o.name, api.StateWaitingInput, "waiting for the answer to a "+kind+" over D-Bus")
	if !r.answered {
		for _, s := range subs {
			o.bus.signal(s, o.path, api.SessionInterface, api.SignalInputRequired, r.id, r.kind, r.prompt, r.secret, r.url)
		}
	}
	select {
	case req.wake <- struct{}{}:
	default:
	}
	for {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("nobody answered the %s: %w", kind, ctx.Err())
		case <-o.done:
			return "", errors.New("session finished")
		case <-req.wake:
		}
		o.mu.Lock()
		if o.resp != req {
			o.mu.Unlock()
			return "", errors.New("challenge request replaced by a newer one")
		}
		if !r.answered {
			o.mu.Unlock()
			continue
		}
		v := r.value
		r.value = ""
		o.resp = nil
		o.mu.Unlock()
		return v, nil
	}
}

// askCredentials is the session's Credentials callback: it queues the requests, announces
// them with InputRequired, and waits for ProvideInput to answer all of them. Each call is one
// request with its own wake-up channel; the session cancels a call's ctx when a newer one
// replaces it, and the newer call takes over the inputs still asked (ids and answers kept).
func (o *object) askCredentials(ctx context.Context) (string, string, error) {
	return o.askPair(ctx, "Auth", o.askUser)
}

// askProxyCredentials is the session's ProxyCredentials callback ("HTTP proxy",
// "SOCKS proxy"): the same requests, prompted "HTTP Proxy Username" and so on.
func (o *object) askProxyCredentials(ctx context.Context, proxy string) (string, string, error) {
	if proxy != "HTTP proxy" && proxy != "SOCKS proxy" {
		return "", "", fmt.Errorf("unknown proxy kind %q", proxy)
	}
	return o.askPair(ctx, strings.Replace(proxy, "proxy", "Proxy", 1), true)
}

// askPair asks for LABEL Username (when askUser) and LABEL Password.
func (o *object) askPair(ctx context.Context, label string, askUser bool) (string, string, error) {
	o.mu.Lock()
	if o.final != nil {
		o.mu.Unlock()
		return "", "", errors.New("session finished")
	}
	req := &credRequest{label: label, wake: make(chan struct{}, 1)}
	if prev := o.cred; prev != nil && prev.label == label {
		req.inputs = prev.inputs
	} else {
		add := func(kind, prompt string, secret bool) {
			o.nextID++
			req.inputs = append(req.inputs, &inputRequest{id: o.nextID, kind: kind, prompt: prompt, secret: secret})
		}
		if askUser {
			add(api.InputUsername, label+" Username", false)
		}
		add(api.InputPassword, label+" Password", true)
	}
	o.cred = req
	var announce []*inputRequest
	for _, r := range req.inputs {
		if !r.answered {
			announce = append(announce, r)
		}
	}
	subs := o.subscribersLocked()
	o.mu.Unlock()
	o.log.Log(1, o.name, api.StateWaitingInput, "waiting for credentials over D-Bus")
	for _, r := range announce {
		for _, s := range subs {
			o.bus.signal(s, o.path, api.SessionInterface, api.SignalInputRequired, r.id, r.kind, r.prompt, r.secret, r.url)
		}
	}
	// Wake once at the start: the inputs taken over may all be answered already.
	select {
	case req.wake <- struct{}{}:
	default:
	}
	for {
		select {
		case <-ctx.Done():
			// The inputs stay listed: the session's next request takes them over, with
			// whatever was answered meanwhile.
			return "", "", fmt.Errorf("nobody answered the credential request: %w", ctx.Err())
		case <-o.done:
			return "", "", errors.New("session finished")
		case <-req.wake:
		}
		o.mu.Lock()
		if o.cred != req {
			o.mu.Unlock()
			return "", "", errors.New("credential request replaced by a newer one")
		}
		if len(o.pendingLocked()) > 0 {
			o.mu.Unlock()
			continue
		}
		var user, pass string
		for _, r := range req.inputs {
			switch r.kind {
			case api.InputUsername:
				user = r.value
			case api.InputPassword:
				pass = r.value
			}
			r.value = ""
		}
		o.cred = nil
		o.mu.Unlock()
		return user, pass, nil
	}
}

// props is the current value of every property, read from the session (the one owner of
// state, reason and counters).
func (o *object) props() map[string]dbus.Variant {
	st := o.status()
	p := api.SessionProps{
		Name:        o.name,
		Owner:       o.owner,
		State:       stateName(st.State),
		StateReason: clipUTF8(st.Reason, api.MaxLogLine),
		Cipher:      st.Cipher,
		DNSMode:     st.DNSMode,
		Device:      st.Link,
		BytesIn:     st.Counters.BytesIn,
		BytesOut:    st.Counters.BytesOut,
		PacketsIn:   st.Counters.PacketsIn,
		PacketsOut:  st.Counters.PacketsOut,

		DroppedReplayed:      st.Counters.Replayed,
		DroppedDecryptFailed: st.Counters.DecryptFailed,
		DroppedOversized:     st.Counters.Oversized,
		DroppedNoKey:         st.Counters.NoKey,
	}
	if st.Remote.IsValid() {
		p.Remote = st.Proto + ":" + st.Remote.String()
	}
	for _, a := range st.Addrs {
		p.TunnelAddresses = append(p.TunnelAddresses, a.String())
	}
	if st.State == session.StateConnected && !st.Connected.IsZero() {
		p.ConnectedSince = uint64(st.Connected.UnixMicro())
	}
	if st.Local.IsValid() {
		p.LocalAddress = st.Local.String()
	}
	v := p.Variants()
	v[api.PropNetworkConfig] = dbus.MakeVariant(netConfigOf(st))
	return v
}

// publishProps sends PropertiesChanged with every announced property that changed since
// the last call. It runs on the observer goroutine (and once more after Run returned), so
// what it sends is always the session's latest status, never an older one.
func (o *object) publishProps() {
	cur := o.props()
	o.mu.Lock()
	changed := map[string]dbus.Variant{}
	for k, v := range cur {
		if api.CounterProps[k] {
			continue
		}
		if old, ok := o.lastProps[k]; !ok || old.String() != v.String() {
			changed[k] = v
		}
	}
	o.lastProps = cur
	subs := o.subscribersLocked()
	o.mu.Unlock()
	if len(changed) == 0 {
		return
	}
	for _, s := range subs {
		o.bus.signal(s, o.path, api.PropertiesInterface, api.SignalPropertiesChanged, api.SessionInterface, changed, []string{})
	}
}

// mayRead: the owner and root see a session; nobody else learns anything about it.
func (o *object) mayRead(sender dbus.Sender) (uint32, *dbus.Error) {
	uid, err := o.bus.auth.CallerUID(sender)
	if err != nil {
		return 0, errFailed("%v", err)
	}
	if uid != 0 && uid != o.owner {
		// The same answer as for a path with no session: another user's session names
		// do not leak (docs/dbus.md).
		return uid, errNoObject(o.path)
	}
	return uid, nil
}

func (o *object) mayIntrospect(sender dbus.Sender) *dbus.Error {
	_, derr := o.mayRead(sender)
	return derr
}

// mayManage: the owner may always stop and restart their own session, from any login (who
// was allowed to start it may end it), and root may manage every session.
func (o *object) mayManage(sender dbus.Sender) *dbus.Error {
	_, derr := o.mayRead(sender)
	return derr
}

// finishedTime reports whether the session finished, and when.
func (o *object) finishedTime() (bool, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.final != nil, o.finishedAt
}

func (o *object) isFinished() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.final != nil
}

func (o *object) subscribe(sender dbus.Sender, uid uint32) *dbus.Error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.subs[string(sender)]; ok {
		return nil
	}
	if len(o.subs) >= api.MaxSubscribers {
		return busError(api.ErrLimitExceeded, "session %s already has %d subscribers", o.name, api.MaxSubscribers)
	}
	if uid != 0 {
		n := 0
		for _, s := range o.subs {
			if s.uid == uid {
				n++
			}
		}
		if n >= api.MaxSubscriptionsPerUser {
			return busError(api.ErrLimitExceeded, "uid %d has %d subscriptions to session %s; the limit is %d", uid, n, o.name, api.MaxSubscriptionsPerUser)
		}
	}
	o.subs[string(sender)] = subscription{uid: uid}
	return nil
}

func (o *object) unsubscribe(name string) {
	o.mu.Lock()
	delete(o.subs, name)
	o.mu.Unlock()
}

// sessionIface is what is exported as net.ovpnd1.Session.
type sessionIface struct{ o *object }

// Disconnect stops the session.
func (s sessionIface) Disconnect(sender dbus.Sender) *dbus.Error {
	if derr := s.o.mayManage(sender); derr != nil {
		return derr
	}
	if s.o.isFinished() {
		return busError(api.ErrNotFound, "session %s is not running", s.o.name)
	}
	tun := s.o.tunnel()
	if tun == nil {
		return busError(api.ErrNotFound, "session %s is not running", s.o.name)
	}
	s.o.log.Log(1, s.o.name, "", fmt.Sprintf("disconnect requested by %s", sender))
	tun.Disconnect()
	return nil
}

// Restart reconnects the session.
func (s sessionIface) Restart(sender dbus.Sender) *dbus.Error {
	if derr := s.o.mayManage(sender); derr != nil {
		return derr
	}
	if s.o.isFinished() {
		return busError(api.ErrNotFound, "session %s is not running", s.o.name)
	}
	tun := s.o.tunnel()
	if tun == nil {
		return busError(api.ErrNotFound, "session %s is not running", s.o.name)
	}
	s.o.log.Log(1, s.o.name, "", fmt.Sprintf("restart requested by %s", sender))
	tun.Restart()
	return nil
}

// PendingInput lists the credentials the session waits for.
func (s sessionIface) PendingInput(sender dbus.Sender) ([]api.InputEntry, *dbus.Error) {
	if _, derr := s.o.mayRead(sender); derr != nil {
		return nil, derr
	}
	// The session's status decides whether a web login is still open: the observer that
	// drops the entry may not have run yet.
	webURL := s.o.status().WebLogin
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	out := []api.InputEntry{}
	for _, r := range s.o.pendingLocked() {
		out = append(out, api.InputEntry{ID: r.id, Kind: r.kind, Prompt: r.prompt, Secret: r.secret, URL: r.url})
	}
	if r := s.o.webLogin; r != nil && webURL != "" && r.url == clipUTF8(webURL, api.MaxLogLine) {
		out = append(out, api.InputEntry{ID: r.id, Kind: r.kind, Prompt: r.prompt, Secret: r.secret, URL: r.url})
	}
	return out, nil
}

// ProvideInput answers one pending request.
func (s sessionIface) ProvideInput(sender dbus.Sender, id uint32, value string) *dbus.Error {
	if _, derr := s.o.mayRead(sender); derr != nil {
		return derr
	}
	if len(value) > api.MaxInputLen {
		return busError(api.ErrLimitExceeded, "input is longer than %d bytes", api.MaxInputLen)
	}
	if strings.ContainsAny(value, "\x00\n") {
		return errInvalidArg("input contains a NUL or newline")
	}
	return s.o.provide(id, value)
}

// provide answers input id of the current credential request and wakes that request's
// waiter (only that one: each request has its own channel).
func (o *object) provide(id uint32, value string) *dbus.Error {
	o.mu.Lock()
	var found *inputRequest
	for _, r := range o.pendingLocked() {
		if r.id == id {
			found = r
		}
	}
	if found == nil {
		web := o.webLogin != nil && o.webLogin.id == id
		o.mu.Unlock()
		if web {
			return errInvalidArg("input %d is a web login: it is completed in the browser, not answered", id)
		}
		return busError(api.ErrNotWaiting, "session %s is not waiting for input %d", o.name, id)
	}
	found.value, found.answered = value, true
	var wake chan struct{}
	if o.resp != nil && o.resp.input == found {
		wake = o.resp.wake
	} else {
		wake = o.cred.wake
	}
	o.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
	return nil
}

// LogHistory returns the kept log lines, oldest first.
func (s sessionIface) LogHistory(sender dbus.Sender) ([]api.LogEntry, *dbus.Error) {
	if _, derr := s.o.mayRead(sender); derr != nil {
		return nil, derr
	}
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	out := make([]api.LogEntry, 0, len(s.o.ring))
	n := len(s.o.ring)
	for i := range n {
		l := s.o.ring[(s.o.ringNext+i)%n]
		out = append(out, api.LogEntry{TimeUsec: l.usec, Level: l.level, Message: l.msg})
	}
	return out, nil
}

// Subscribe sends this session's signals to the caller.
func (s sessionIface) Subscribe(sender dbus.Sender) *dbus.Error {
	uid, derr := s.o.mayRead(sender)
	if derr != nil {
		return derr
	}
	if derr := s.o.subscribe(sender, uid); derr != nil {
		return derr
	}
	s.o.bus.watch(string(sender))
	return nil
}

// Unsubscribe stops the signals.
func (s sessionIface) Unsubscribe(sender dbus.Sender) *dbus.Error {
	if _, derr := s.o.mayRead(sender); derr != nil {
		return derr
	}
	s.o.unsubscribe(string(sender))
	return nil
}

// sessionProps is the session's org.freedesktop.DBus.Properties.
type sessionProps struct{ o *object }

// Get returns one property.
func (p sessionProps) Get(sender dbus.Sender, iface, name string) (dbus.Variant, *dbus.Error) {
	if _, derr := p.o.mayRead(sender); derr != nil {
		return dbus.Variant{}, derr
	}
	if iface != api.SessionInterface && iface != "" {
		return dbus.Variant{}, busError("org.freedesktop.DBus.Error.UnknownInterface", "no interface %q", truncate(iface, 256))
	}
	v, ok := p.o.props()[name]
	if !ok {
		return dbus.Variant{}, busError("org.freedesktop.DBus.Error.UnknownProperty", "no property %q", truncate(name, 256))
	}
	return v, nil
}

// GetAll returns every property.
func (p sessionProps) GetAll(sender dbus.Sender, iface string) (map[string]dbus.Variant, *dbus.Error) {
	if _, derr := p.o.mayRead(sender); derr != nil {
		return nil, derr
	}
	if iface != api.SessionInterface && iface != "" {
		return nil, busError("org.freedesktop.DBus.Error.UnknownInterface", "no interface %q", truncate(iface, 256))
	}
	return p.o.props(), nil
}

// Set refuses: every property is read-only.
func (p sessionProps) Set(sender dbus.Sender, iface, name string, _ dbus.Variant) *dbus.Error {
	if _, derr := p.o.mayRead(sender); derr != nil {
		return derr
	}
	return busError("org.freedesktop.DBus.Error.PropertyReadOnly", "property %q is read-only", truncate(name, 256))
}
