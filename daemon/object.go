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
	// done, when set, is closed when the request is answered (askResponse waits on it).
	done chan struct{}
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

	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned and the final state is published

	mu       sync.Mutex
	state    string // API state; waiting-input overrides the tunnel's while inputs are pending
	reason   string
	finished bool
	runErr   error // what Run returned
	inputs   []*inputRequest
	// webLogin is the web login the server waits for, listed by PendingInput but not
	// answered: the server completes it. nil when none.
	webLogin  *inputRequest
	nextID    uint32
	inputWake chan struct{} // signalled when an input is answered
	ring      []logLine
	ringNext  int
	subs      map[string]struct{}
	lastProps map[string]dbus.Variant
}

func newObject(b *bus, name string, owner uint32, cfg *config.Config, log Logger) *object {
	o := &object{
		bus:       b,
		name:      name,
		owner:     owner,
		path:      dbus.ObjectPath(api.SessionPath(name)),
		log:       log,
		done:      make(chan struct{}),
		state:     api.StateIdle,
		inputWake: make(chan struct{}, 1),
		subs:      map[string]struct{}{},
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

func (o *object) logf(format string, args ...any) {
	o.mu.Lock()
	st := o.state
	o.mu.Unlock()
	o.log.Log(1, o.name, st, fmt.Sprintf(format, args...))
}

// start runs the tunnel until it ends, publishing its events; onDone runs afterwards.
func (o *object) start(ctx context.Context, onDone func(*object)) {
	ctx, o.cancel = context.WithCancel(ctx)
	events, unsubscribe := o.tun.Subscribe()
	stop, evDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(evDone)
		for {
			select {
			case ev := <-events:
				o.handleEvent(ev)
			case <-stop:
				return
			}
		}
	}()
	go func() {
		err := o.tun.Run(ctx)
		// The session never closes the events channel: stop the reader, then handle what
		// was queued before Run returned.
		close(stop)
		<-evDone
		unsubscribe()
		o.drain(events)
		o.mu.Lock()
		o.finished, o.runErr = true, err
		if err != nil {
			o.state, o.reason = api.StateFailed, clipUTF8(err.Error(), api.MaxLogLine)
		} else {
			o.state, o.reason = api.StateDisconnected, ""
		}
		o.inputs = nil
		st, reason := o.state, o.reason
		o.mu.Unlock()
		if err != nil {
			o.log.Log(0, o.name, st, "session ended: "+reason)
		} else {
			o.log.Log(1, o.name, st, "session ended")
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
	case session.EventStateChanged:
		o.mu.Lock()
		if o.finished {
			o.mu.Unlock()
			return
		}
		if len(o.pendingLocked()) == 0 {
			o.state = stateName(ev.State)
		}
		if ev.State != session.StateAuthPending {
			o.webLogin = nil // completed, refused or abandoned with the connection
		}
		o.reason = clipUTF8(ev.Reason, api.MaxLogLine)
		o.mu.Unlock()
		o.publishProps()
	case session.EventLog:
		o.addLog(ev.Time, ev.Level, ev.Message)
	case session.EventAuthPending:
		o.addLog(ev.Time, 1, "authentication pending: "+ev.Message)
	case session.EventPrompt:
		if p := ev.Prompt; p != nil && p.Kind == session.PromptWebLogin {
			o.announceWebLogin(p.URL)
		}
	}
}

// announceWebLogin lists the web login in PendingInput and tells subscribers to open it
// (InputRequired with kind web-login, and OpenURL).
func (o *object) announceWebLogin(url string) {
	o.mu.Lock()
	if o.finished {
		o.mu.Unlock()
		return
	}
	o.nextID++
	r := &inputRequest{id: o.nextID, kind: api.InputWebLogin, prompt: "Log in at " + url, url: clipUTF8(url, api.MaxLogLine)}
	o.webLogin = r
	subs := o.subscribersLocked()
	o.mu.Unlock()
	for _, s := range subs {
		o.bus.signal(s, o.path, api.SessionInterface, "InputRequired", r.id, r.kind, r.prompt, r.secret, r.url)
		o.bus.signal(s, o.path, api.SessionInterface, "OpenURL", r.url)
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
		o.bus.signal(s, o.path, api.SessionInterface, "Log", l.usec, l.level, l.msg)
	}
}

// clipUTF8 bounds s to n bytes without splitting a character and replaces invalid UTF-8: a
// D-Bus string must be valid UTF-8, and the bus daemon drops a connection that sends one that
// is not, which would cut every session off the API.
func clipUTF8(s string, n int) string {
	if len(s) > n {
		i := n
		for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
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
	for _, r := range o.inputs {
		if !r.answered {
			out = append(out, r)
		}
	}
	return out
}

// askCredentials is the session's Credentials callback: it queues the requests, announces
// them with InputRequired, and waits for ProvideInput to answer all of them.
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
	if o.finished {
		o.mu.Unlock()
		return "", "", errors.New("session finished")
	}
	o.inputs = nil
	add := func(kind, prompt string, secret bool) {
		o.nextID++
		o.inputs = append(o.inputs, &inputRequest{id: o.nextID, kind: kind, prompt: prompt, secret: secret})
	}
	if askUser {
		add(api.InputUsername, label+" Username", false)
	}
	add(api.InputPassword, label+" Password", true)
	reqs := append([]*inputRequest(nil), o.inputs...)
	prevState := o.state
	o.state = api.StateWaitingInput
	subs := o.subscribersLocked()
	o.mu.Unlock()
	o.log.Log(1, o.name, api.StateWaitingInput, "waiting for credentials over D-Bus")
	o.publishProps()
	for _, r := range reqs {
		for _, s := range subs {
			o.bus.signal(s, o.path, api.SessionInterface, "InputRequired", r.id, r.kind, r.prompt, r.secret, r.url)
		}
	}
	defer func() {
		o.mu.Lock()
		o.inputs = nil
		if o.state == api.StateWaitingInput {
			o.state = prevState
		}
		o.mu.Unlock()
		o.publishProps()
	}()
	for {
		o.mu.Lock()
		complete := len(o.pendingLocked()) == 0
		var user, pass string
		if complete {
			for _, r := range reqs {
				switch r.kind {
				case api.InputUsername:
					user = r.value
				case api.InputPassword:
					pass = r.value
				}
				r.value = ""
			}
		}
		o.mu.Unlock()
		if complete {
			return user, pass, nil
		}
		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("nobody answered the credential request: %w", ctx.Err())
		case <-o.done:
			return "", "", errors.New("session finished")
		case <-o.inputWake:
		}
	}
}

// inputKinds maps the session's challenge prompts to PendingInput kinds.
var inputKinds = map[session.PromptKind]string{
	session.PromptStaticChallenge: api.InputStaticChallenge,
	session.PromptChallenge:       api.InputChallenge,
	session.PromptCRText:          api.InputCRText,
}

// askResponse is the session's Respond callback: one request for the answer to a challenge,
// announced with InputRequired and answered with ProvideInput. Only the requests it added
// are removed when it returns.
func (o *object) askResponse(ctx context.Context, p session.Prompt) (string, error) {
	kind, ok := inputKinds[p.Kind]
	if !ok {
		return "", fmt.Errorf("no answer can be given to a %v prompt", p.Kind)
	}
	prompt := p.Text
	if prompt == "" {
		prompt = "Challenge response"
	}
	o.mu.Lock()
	if o.finished {
		o.mu.Unlock()
		return "", errors.New("session finished")
	}
	o.nextID++
	r := &inputRequest{id: o.nextID, kind: kind, prompt: clipUTF8(prompt, api.MaxLogLine), secret: !p.Echo, done: make(chan struct{})}
	o.inputs = append(o.inputs, r)
	prevState := o.state
	o.state = api.StateWaitingInput
	subs := o.subscribersLocked()
	o.mu.Unlock()
	o.log.Log(1, o.name, api.StateWaitingInput, "waiting for the answer to a "+kind+" over D-Bus")
	o.publishProps()
	for _, s := range subs {
		o.bus.signal(s, o.path, api.SessionInterface, "InputRequired", r.id, r.kind, r.prompt, r.secret, r.url)
	}
	defer func() {
		o.mu.Lock()
		for i, q := range o.inputs {
			if q == r {
				o.inputs = append(o.inputs[:i], o.inputs[i+1:]...)
				break
			}
		}
		r.value = ""
		if o.state == api.StateWaitingInput && len(o.pendingLocked()) == 0 {
			o.state = prevState
		}
		o.mu.Unlock()
		o.publishProps()
	}()
	select {
	case <-r.done:
		o.mu.Lock()
		defer o.mu.Unlock()
		return r.value, nil
	case <-ctx.Done():
		return "", fmt.Errorf("nobody answered the %s: %w", kind, ctx.Err())
	case <-o.done:
		return "", errors.New("session finished")
	}
}

// props is the current value of every property.
func (o *object) props() map[string]dbus.Variant {
	st := o.tun.Status()
	o.mu.Lock()
	state, reason := o.state, o.reason
	o.mu.Unlock()
	remote := ""
	if st.Remote.IsValid() {
		remote = st.Proto + ":" + st.Remote.String()
	}
	addrs := make([]string, 0, len(st.Addrs))
	for _, a := range st.Addrs {
		addrs = append(addrs, a.String())
	}
	var since uint64
	if state == api.StateConnected && !st.Connected.IsZero() {
		since = uint64(st.Connected.UnixMicro())
	}
	local := ""
	if st.Local.IsValid() {
		local = st.Local.String()
	}
	return map[string]dbus.Variant{
		"Name":            dbus.MakeVariant(o.name),
		"Owner":           dbus.MakeVariant(o.owner),
		"State":           dbus.MakeVariant(state),
		"StateReason":     dbus.MakeVariant(reason),
		"Remote":          dbus.MakeVariant(remote),
		"LocalAddress":    dbus.MakeVariant(local),
		"Cipher":          dbus.MakeVariant(st.Cipher),
		"DNSMode":         dbus.MakeVariant(st.DNSMode),
		"TunnelAddresses": dbus.MakeVariant(addrs),
		"Device":          dbus.MakeVariant(st.Link),
		"ConnectedSince":  dbus.MakeVariant(since),
		"BytesIn":         dbus.MakeVariant(st.Counters.BytesIn),
		"BytesOut":        dbus.MakeVariant(st.Counters.BytesOut),
		"PacketsIn":       dbus.MakeVariant(st.Counters.PacketsIn),
		"PacketsOut":      dbus.MakeVariant(st.Counters.PacketsOut),
	}
}

// counterProps are not announced: they change with every packet.
var counterProps = map[string]bool{"BytesIn": true, "BytesOut": true, "PacketsIn": true, "PacketsOut": true}

// publishProps sends PropertiesChanged with every announced property that changed since
// the last call.
func (o *object) publishProps() {
	cur := o.props()
	o.mu.Lock()
	changed := map[string]dbus.Variant{}
	for k, v := range cur {
		if counterProps[k] {
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
		o.bus.signal(s, o.path, api.PropertiesInterface, "PropertiesChanged", api.SessionInterface, changed, []string{})
	}
}

// mayRead: the owner and root see a session; nobody else learns anything about it.
func (o *object) mayRead(sender dbus.Sender) (uint32, *dbus.Error) {
	uid, err := o.bus.auth.CallerUID(sender)
	if err != nil {
		return 0, errFailed("%v", err)
	}
	if uid != 0 && uid != o.owner {
		// The path says nothing about the session; neither does this.
		return uid, errAccessDenied("this session belongs to another user")
	}
	return uid, nil
}

// mayManage: the owner may always stop and restart their own session, from any login (who
// was allowed to start it may end it), and root may manage every session.
func (o *object) mayManage(sender dbus.Sender) *dbus.Error {
	_, derr := o.mayRead(sender)
	return derr
}

func (o *object) isFinished() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.finished
}

func (o *object) subscribe(sender dbus.Sender) *dbus.Error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.subs[string(sender)]; !ok && len(o.subs) >= api.MaxSubscribers {
		return busError(api.ErrLimitExceeded, "session %s already has %d subscribers", o.name, api.MaxSubscribers)
	}
	o.subs[string(sender)] = struct{}{}
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
	s.o.log.Log(1, s.o.name, "", fmt.Sprintf("disconnect requested by %s", sender))
	s.o.tun.Disconnect()
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
	s.o.log.Log(1, s.o.name, "", fmt.Sprintf("restart requested by %s", sender))
	s.o.tun.Restart()
	return nil
}

// inputEntry is one element of PendingInput's a(ussbs).
type inputEntry struct {
	ID     uint32
	Kind   string
	Prompt string
	Secret bool
	URL    string
}

// PendingInput lists the credentials the session waits for.
func (s sessionIface) PendingInput(sender dbus.Sender) ([]inputEntry, *dbus.Error) {
	if _, derr := s.o.mayRead(sender); derr != nil {
		return nil, derr
	}
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	out := []inputEntry{}
	for _, r := range s.o.pendingLocked() {
		out = append(out, inputEntry{r.id, r.kind, r.prompt, r.secret, r.url})
	}
	if r := s.o.webLogin; r != nil {
		out = append(out, inputEntry{r.id, r.kind, r.prompt, r.secret, r.url})
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
	s.o.mu.Lock()
	var found *inputRequest
	for _, r := range s.o.pendingLocked() {
		if r.id == id {
			found = r
		}
	}
	if found == nil {
		web := s.o.webLogin != nil && s.o.webLogin.id == id
		s.o.mu.Unlock()
		if web {
			return errInvalidArg("input %d is a web login: it is completed in the browser, not answered", id)
		}
		return busError(api.ErrNotWaiting, "session %s is not waiting for input %d", s.o.name, id)
	}
	found.value, found.answered = value, true
	if found.done != nil {
		close(found.done)
	}
	s.o.mu.Unlock()
	select {
	case s.o.inputWake <- struct{}{}:
	default:
	}
	return nil
}

// logEntry is one element of LogHistory's a(tus).
type logEntry struct {
	TimeUsec uint64
	Level    uint32
	Message  string
}

// LogHistory returns the kept log lines, oldest first.
func (s sessionIface) LogHistory(sender dbus.Sender) ([]logEntry, *dbus.Error) {
	if _, derr := s.o.mayRead(sender); derr != nil {
		return nil, derr
	}
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	out := make([]logEntry, 0, len(s.o.ring))
	n := len(s.o.ring)
	for i := range n {
		l := s.o.ring[(s.o.ringNext+i)%n]
		out = append(out, logEntry{l.usec, l.level, l.msg})
	}
	return out, nil
}

// Subscribe sends this session's signals to the caller.
func (s sessionIface) Subscribe(sender dbus.Sender) *dbus.Error {
	if _, derr := s.o.mayRead(sender); derr != nil {
		return derr
	}
	if derr := s.o.subscribe(sender); derr != nil {
		return derr
	}
	s.o.bus.watch(string(sender))
	return nil
}

// Unsubscribe stops the signals.
func (s sessionIface) Unsubscribe(sender dbus.Sender) *dbus.Error {
	s.o.unsubscribe(string(sender))
	return nil
}

// sessionProps is the session's org.freedesktop.DBus.Properties.
type sessionProps struct{ o *object }

// Get returns one property.
func (p sessionProps) Get(sender dbus.Sender, iface, name string) (dbus.Variant, *dbus.Error) {
	if iface != api.SessionInterface && iface != "" {
		return dbus.Variant{}, busError("org.freedesktop.DBus.Error.UnknownInterface", "no interface %q", iface)
	}
	if _, derr := p.o.mayRead(sender); derr != nil {
		return dbus.Variant{}, derr
	}
	v, ok := p.o.props()[name]
	if !ok {
		return dbus.Variant{}, busError("org.freedesktop.DBus.Error.UnknownProperty", "no property %q", name)
	}
	return v, nil
}

// GetAll returns every property.
func (p sessionProps) GetAll(sender dbus.Sender, iface string) (map[string]dbus.Variant, *dbus.Error) {
	if iface != api.SessionInterface && iface != "" {
		return nil, busError("org.freedesktop.DBus.Error.UnknownInterface", "no interface %q", iface)
	}
	if _, derr := p.o.mayRead(sender); derr != nil {
		return nil, derr
	}
	return p.o.props(), nil
}

// Set refuses: every property is read-only.
func (p sessionProps) Set(iface, name string, _ dbus.Variant) *dbus.Error {
	return busError("org.freedesktop.DBus.Error.PropertyReadOnly", "property %q is read-only", name)
}
