// Package daemon is ovpnd's privileged service: it runs sessions for callers on the D-Bus
// API defined in dbus/net.ovpnd1.xml, decides who may do what from the caller's uid and
// polkit, and reports progress to systemd (sd_notify) and the journal.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/session"
)

// DefaultLinger is how long a finished session stays visible, so that the ovpnctl that
// started it can read why it ended.
const DefaultLinger = 60 * time.Second

// Options configure a Manager.
type Options struct {
	// Conn is the bus connection; the caller requests the bus name after NewManager.
	Conn *dbus.Conn
	// Auth decides callers' identities and polkit actions (a BusAuthorizer on Conn if nil).
	Auth Authorizer
	// Log receives log lines (stderr text if nil).
	Log Logger
	// StateDir is routing's crash-recovery directory ("" = routing's default). With it set,
	// running sessions are also recorded in its "sessions" subdirectory, so that the next
	// daemon brings them back (see persist.go).
	StateDir string
	// ProfileDir keeps users' stored profiles (profiles.go); "" keeps none.
	ProfileDir string
	// Linger overrides DefaultLinger.
	Linger time.Duration
	// NewTunnel makes tunnels (session.New if nil).
	NewTunnel TunnelFactory
}

// Manager serves net.ovpnd1.Manager and the sessions it starts.
type Manager struct {
	bus       *bus
	opts      Options
	newTunnel TunnelFactory
	ctx       context.Context
	stopAll   context.CancelFunc

	// wg counts every goroutine the manager starts (the reaper, each session's two); Shutdown
	// waits for all of them.
	wg   sync.WaitGroup
	quit chan struct{} // closed by Shutdown: the reaper ends

	// recMu serialises the session records' files (persist.go).
	recMu sync.Mutex

	mu       sync.Mutex
	sessions map[sessionKey]*object
	subs     map[string]subscription
	closing  bool
}

// NewManager exports the manager object on opts.Conn. The caller then requests
// api.BusName, which is when clients can reach it.
func NewManager(opts Options) (*Manager, error) {
	if opts.Conn == nil {
		return nil, errors.New("daemon: no bus connection")
	}
	if opts.Auth == nil {
		opts.Auth = &BusAuthorizer{Conn: opts.Conn}
	}
	if opts.Log == nil {
		opts.Log = NewLogger(nil)
	}
	if opts.Linger <= 0 {
		opts.Linger = DefaultLinger
	}
	b, err := newBus(opts.Conn, opts.Auth, opts.Log)
	if err != nil {
		return nil, err
	}
	m := &Manager{bus: b, opts: opts, newTunnel: opts.NewTunnel, sessions: map[sessionKey]*object{}, subs: map[string]subscription{}, quit: make(chan struct{})}
	if m.newTunnel == nil {
		m.newTunnel = newSessionTunnel
	}
	m.ctx, m.stopAll = context.WithCancel(context.Background())
	b.gone = m.forget
	if err := b.listen(); err != nil {
		return nil, err
	}
	if err := b.exportObject(api.ManagerPath, api.ManagerInterface, managerIface{m}, managerProps{}, nil, "session"); err != nil {
		b.close()
		return nil, err
	}
	if err := b.exportSessionTree(m.visibleNames); err != nil {
		b.close()
		return nil, err
	}
	m.wg.Add(1)
	go m.reaper()
	m.restore()
	return m, nil
}

// reaper removes finished sessions once they lingered long enough.
func (m *Manager) reaper() {
	defer m.wg.Done()
	t := time.NewTicker(max(m.opts.Linger/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-m.quit:
			return
		case now := <-t.C:
			m.mu.Lock()
			var old []*object
			for _, o := range m.sessions {
				if fin, at := o.finishedTime(); fin && now.Sub(at) >= m.opts.Linger {
					old = append(old, o)
				}
			}
			m.mu.Unlock()
			for _, o := range old {
				m.remove(o)
			}
		}
	}
}

// visibleNames are the element names under the session path that uid may see (introspection
// of /net/ovpnd1/session lists only the caller's own sessions).
func (m *Manager) visibleNames(uid uint32) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, o := range m.sessions {
		if uid == 0 || o.owner == uid {
			out = append(out, strings.TrimPrefix(string(o.path), api.SessionPathPrefix))
		}
	}
	sort.Strings(out)
	return out
}

// forget ends every subscription of a connection that left the bus.
func (m *Manager) forget(name string) {
	m.mu.Lock()
	delete(m.subs, name)
	objs := make([]*object, 0, len(m.sessions))
	for _, o := range m.sessions {
		objs = append(objs, o)
	}
	m.mu.Unlock()
	for _, o := range objs {
		o.unsubscribe(name)
		o.applierGone(name)
	}
}

// RestartAll asks every running session to reconnect (SIGHUP).
func (m *Manager) RestartAll() {
	m.mu.Lock()
	objs := m.running()
	m.mu.Unlock()
	for _, o := range objs {
		if tun := o.tunnel(); tun != nil {
			o.log.Log(1, o.name, "", "restart requested by SIGHUP")
			tun.Restart()
		}
	}
}

func (m *Manager) running() []*object {
	var out []*object
	for _, o := range m.sessions {
		if !o.isFinished() {
			out = append(out, o)
		}
	}
	return out
}

// Shutdown disconnects every session (each notifies its server and removes its network
// settings) and waits for them until ctx ends; then it cancels whatever is left. It returns
// when every goroutine the manager started has returned.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	alreadyClosing := m.closing
	m.closing = true
	objs := m.running()
	m.mu.Unlock()
	if alreadyClosing {
		m.wg.Wait()
		return nil
	}
	for _, o := range objs {
		if tun := o.tunnel(); tun != nil {
			tun.Disconnect()
		}
	}
	for _, o := range objs {
		select {
		case <-o.done:
		case <-ctx.Done():
			m.stopAll()
			<-o.done
		}
	}
	m.stopAll()
	close(m.quit)
	m.wg.Wait()
	m.bus.close()
	return nil
}

// remove unexports a finished session (unless a new one took its name meanwhile).
func (m *Manager) remove(o *object) {
	m.mu.Lock()
	key := sessionKey{o.owner, o.name}
	if m.sessions[key] != o {
		m.mu.Unlock()
		return
	}
	delete(m.sessions, key)
	subs := m.visibleSubs(o.owner)
	m.mu.Unlock()
	m.bus.unexport(o.path, api.SessionInterface)
	for _, s := range subs {
		m.bus.signal(s, api.ManagerPath, api.ManagerInterface, api.SignalSessionRemoved, o.path, o.name)
	}
}

// visibleSubs are the manager subscribers allowed to hear about owner's sessions; m.mu is
// held.
func (m *Manager) visibleSubs(owner uint32) []string {
	var out []string
	for s, sub := range m.subs {
		if sub.uid == 0 || sub.uid == owner {
			out = append(out, s)
		}
	}
	return out
}

// managerIface is exported as net.ovpnd1.Manager.
type managerIface struct{ m *Manager }

// Start runs a new session from a self-contained profile.
// msg is the call itself: its ALLOW_INTERACTIVE_AUTHORIZATION flag lets polkit ask the
// caller's agent for a password.
func (mi managerIface) Start(sender dbus.Sender, msg dbus.Message, name, profile string, options map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	m := mi.m
	if !api.ValidName(name) {
		return "", errInvalidArg("session name %q is not 1-%d characters of [A-Za-z0-9_.@-]", truncate(name, 80), api.MaxNameLen)
	}
	if len(profile) > api.MaxProfileSize {
		return "", busError(api.ErrLimitExceeded, "profile is %d bytes; the limit is %d", len(profile), api.MaxProfileSize)
	}
	uid, err := m.bus.auth.CallerUID(sender)
	if err != nil {
		return "", errFailed("%v", err)
	}
	sopts, derr := parseStartOptions(options, uid)
	if derr != nil {
		return "", derr
	}
	if err := checkAction(m.bus.auth, &msg, sender, uid, api.ActionStart); err != nil {
		if errors.Is(err, ErrNotAuthorized) {
			return "", errAccessDenied("%v", err)
		}
		return "", errFailed("%v", err)
	}
	// The profile was read by ovpnctl as the user; the daemon parses it without any file
	// access, so a profile naming /etc/shadow is refused, never read.
	cfg, _, err := config.ParseInline(name, []byte(profile))
	if err != nil {
		// A megabyte of bad lines makes thousands of errors: only what fits the reply is
		// ever formatted.
		var b strings.Builder
		errs := config.Errors(err)
		for i, e := range errs {
			if b.Len() >= maxErrorText {
				fmt.Fprintf(&b, "\n(%d more errors)", len(errs)-i)
				break
			}
			if i > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(clipUTF8(e.Error(), maxErrorText))
		}
		return "", busError(api.ErrInvalidProfile, "%s", b.String())
	}
	if err := checkOwnerProfile(cfg, uid); err != nil {
		return "", busError(api.ErrInvalidProfile, "%v", err)
	}
	if uid == 0 {
		// Root's sessions and root's ovpnd@ instances share ovpnctl's name space. Users'
		// names are their own: their state is apart from the instances'.
		if owned, err := m.instanceRunning(name); err != nil {
			return "", errFailed("%v", err)
		} else if owned {
			return "", busError(api.ErrExists, "ovpnd@%s.service is running a session called %s", name, name)
		}
	}
	override := m.mayOverride(sender, uid)
	return m.launch(uid, name, profile, cfg, sopts, override, string(sender), nil)
}

// launch exports and starts a session that was authorized: from Start (sender is the caller,
// who is subscribed) or, after a daemon restart, from its record (sender ""). Sessions in
// external network mode are not recorded: their applier is gone with the old daemon.
// token is the auth-token a restored session's record kept.
func (m *Manager) launch(uid uint32, name, profile string, cfg *config.Config, sopts startOptions, override bool, sender string, token *session.AuthToken) (dbus.ObjectPath, *dbus.Error) {
	path, err := newSessionPath()
	if err != nil {
		return "", errFailed("%v", err)
	}

	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return "", errFailed("ovpnd is shutting down")
	}
	var evicted []*object
	key := sessionKey{uid, name}
	if old, ok := m.sessions[key]; ok {
		if !old.isFinished() {
			m.mu.Unlock()
			return "", busError(api.ErrExists, "you have a session called %s running", name)
		}
		// A finished session's name is free again.
		delete(m.sessions, key)
		evicted = append(evicted, old)
	}
	running := m.running()
	if len(running) >= api.MaxSessions {
		m.mu.Unlock()
		return "", busError(api.ErrLimitExceeded, "%d sessions are running; the limit is %d", len(running), api.MaxSessions)
	}
	if uid != 0 {
		n := 0
		for _, o := range running {
			if o.owner == uid {
				n++
			}
		}
		if n >= api.MaxSessionsPerUser {
			m.mu.Unlock()
			return "", busError(api.ErrLimitExceeded, "uid %d runs %d sessions; the limit is %d", uid, n, api.MaxSessionsPerUser)
		}
	}
	// Finished sessions count too: a user's oldest ones are forgotten to stay within
	// MaxFinishedPerUser (and everyone's within MaxFinished), so failing Starts cannot pile
	// up objects.
	evicted = append(evicted, m.evictFinishedLocked(uid)...)
	o := newObject(m.bus, name, uid, cfg, m.opts.Log)
	o.path = path
	so := ownerOptions(o.sessionOptions(m.opts.StateDir), uid, name, override)
	so.ExternalNet = sopts.external
	rec := sessionRecord{Owner: uid, Name: name, Profile: profile, Override: override, Token: token}
	if !sopts.external {
		so.AuthToken = token
		// The server's auth-token lets the next daemon reconnect without asking the owner.
		so.OnAuthToken = func(t session.AuthToken) {
			r := rec
			r.Token = &t
			if err := m.saveRecord(r); err != nil {
				m.opts.Log.Log(0, name, "", fmt.Sprintf("keeping the auth-token for a daemon restart: %v", err))
			}
		}
	}
	tun, err := m.newTunnel(cfg, so)
	if err != nil {
		m.mu.Unlock()
		return "", busError(api.ErrInvalidProfile, "%v", err)
	}
	o.tun = tun
	if sopts.external {
		o.applier = sender
	}
	if err := m.bus.exportObject(o.path, api.SessionInterface, sessionIface{o}, sessionProps{o}, o.mayIntrospect); err != nil {
		m.mu.Unlock()
		return "", errFailed("%v", err)
	}
	m.sessions[key] = o
	subs := m.visibleSubs(uid)
	m.wg.Add(1)
	m.mu.Unlock()
	for _, old := range evicted {
		m.forgetObject(old)
	}

	note := ""
	if override && uid != 0 {
		note = "; polkit lets it override the network policy"
	}
	if sender != "" {
		// The caller hears everything from the first state change on.
		_ = o.subscribe(dbus.Sender(sender), uid)
		m.bus.watch(sender)
		m.opts.Log.Log(1, name, "", fmt.Sprintf("session started by uid %d (%s)%s%s", uid, sender, note, externalNote(sopts)))
	} else {
		m.opts.Log.Log(1, name, "", fmt.Sprintf("session of uid %d restored after a daemon restart%s", uid, note))
	}
	if !sopts.external {
		if err := m.saveRecord(rec); err != nil {
			m.opts.Log.Log(0, name, "", fmt.Sprintf("the session will not come back after a daemon restart: %v", err))
		}
	}
	for _, s := range subs {
		m.bus.signal(s, api.ManagerPath, api.ManagerInterface, api.SignalSessionAdded, o.path, name, uid)
	}
	o.start(m.ctx, func(o *object) {
		m.sessionEnded(o)
		m.wg.Done()
	})
	return o.path, nil
}

// evictFinishedLocked takes the oldest finished sessions out of the table until uid has
// fewer than MaxFinishedPerUser and everyone fewer than MaxFinished; m.mu is held. The
// caller unexports them (forgetObject) after unlocking.
func (m *Manager) evictFinishedLocked(uid uint32) []*object {
	var mine, all []*object
	for _, o := range m.sessions {
		if fin, _ := o.finishedTime(); fin {
			all = append(all, o)
			if o.owner == uid {
				mine = append(mine, o)
			}
		}
	}
	byAge := func(l []*object) {
		sort.Slice(l, func(i, j int) bool {
			_, a := l[i].finishedTime()
			_, b := l[j].finishedTime()
			return a.Before(b)
		})
	}
	byAge(mine)
	byAge(all)
	var out []*object
	gone := map[*object]bool{}
	for len(mine) >= api.MaxFinishedPerUser {
		out, gone[mine[0]] = append(out, mine[0]), true
		delete(m.sessions, sessionKey{mine[0].owner, mine[0].name})
		mine = mine[1:]
	}
	n := len(all) - len(out)
	for _, o := range all {
		if n < api.MaxFinished {
			break
		}
		if !gone[o] {
			out = append(out, o)
			delete(m.sessions, sessionKey{o.owner, o.name})
			n--
		}
	}
	return out
}

// forgetObject unexports a session taken out of the table and tells its subscribers.
func (m *Manager) forgetObject(o *object) {
	m.mu.Lock()
	subs := m.visibleSubs(o.owner)
	m.mu.Unlock()
	m.bus.unexport(o.path, api.SessionInterface)
	for _, s := range subs {
		m.bus.signal(s, api.ManagerPath, api.ManagerInterface, api.SignalSessionRemoved, o.path, o.name)
	}
}

func (m *Manager) instanceRunning(name string) (bool, error) {
	var has bool
	if err := m.bus.conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, api.InstanceBusName(name)).Store(&has); err != nil {
		return false, fmt.Errorf("looking for an ovpnd@%s instance: %w", name, err)
	}
	return has, nil
}

// List returns the sessions the caller may see.
func (mi managerIface) List(sender dbus.Sender) ([]dbus.ObjectPath, *dbus.Error) {
	uid, err := mi.m.bus.auth.CallerUID(sender)
	if err != nil {
		return nil, errFailed("%v", err)
	}
	mi.m.mu.Lock()
	defer mi.m.mu.Unlock()
	out := []dbus.ObjectPath{}
	for _, o := range mi.m.sessions {
		if uid == 0 || o.owner == uid {
			out = append(out, o.path)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Lookup finds a session by name. Another user's session is reported as not found, so
// names of other users' sessions do not leak.
func (mi managerIface) Lookup(sender dbus.Sender, name string) (dbus.ObjectPath, *dbus.Error) {
	if !api.ValidName(name) {
		return "", errInvalidArg("session name %q is not 1-%d characters of [A-Za-z0-9_.@-]", truncate(name, 80), api.MaxNameLen)
	}
	uid, err := mi.m.bus.auth.CallerUID(sender)
	if err != nil {
		return "", errFailed("%v", err)
	}
	mi.m.mu.Lock()
	defer mi.m.mu.Unlock()
	o, ok := mi.m.sessions[sessionKey{uid, name}]
	if !ok && uid == 0 {
		// Root sees every user's sessions: its own first, else the lowest uid's.
		for k, so := range mi.m.sessions {
			if k.name == name && (o == nil || so.owner < o.owner) {
				o, ok = so, true
			}
		}
	}
	if !ok {
		return "", busError(api.ErrNotFound, "no session called %s", name)
	}
	return o.path, nil
}

// Subscribe sends SessionAdded and SessionRemoved to the caller.
func (mi managerIface) Subscribe(sender dbus.Sender) *dbus.Error {
	uid, err := mi.m.bus.auth.CallerUID(sender)
	if err != nil {
		return errFailed("%v", err)
	}
	mi.m.mu.Lock()
	defer mi.m.mu.Unlock()
	if _, ok := mi.m.subs[string(sender)]; ok {
		return nil
	}
	if len(mi.m.subs) >= api.MaxSubscribers*4 {
		return busError(api.ErrLimitExceeded, "too many subscribers")
	}
	if uid != 0 {
		n := 0
		for _, s := range mi.m.subs {
			if s.uid == uid {
				n++
			}
		}
		if n >= api.MaxSubscriptionsPerUser {
			return busError(api.ErrLimitExceeded, "uid %d has %d subscriptions; the limit is %d", uid, n, api.MaxSubscriptionsPerUser)
		}
	}
	mi.m.subs[string(sender)] = subscription{uid: uid}
	mi.m.bus.watch(string(sender))
	return nil
}

// Unsubscribe stops SessionAdded and SessionRemoved.
func (mi managerIface) Unsubscribe(sender dbus.Sender) *dbus.Error {
	mi.m.mu.Lock()
	delete(mi.m.subs, string(sender))
	mi.m.mu.Unlock()
	return nil
}

// managerProps is the manager's org.freedesktop.DBus.Properties.
type managerProps struct{}

func (managerProps) all() map[string]dbus.Variant {
	return map[string]dbus.Variant{"Version": dbus.MakeVariant(api.Version)}
}

// Get returns one property.
func (p managerProps) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	if iface != api.ManagerInterface && iface != "" {
		return dbus.Variant{}, busError("org.freedesktop.DBus.Error.UnknownInterface", "no interface %q", iface)
	}
	v, ok := p.all()[name]
	if !ok {
		return dbus.Variant{}, busError("org.freedesktop.DBus.Error.UnknownProperty", "no property %q", name)
	}
	return v, nil
}

// GetAll returns every property.
func (p managerProps) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	if iface != api.ManagerInterface && iface != "" {
		return nil, busError("org.freedesktop.DBus.Error.UnknownInterface", "no interface %q", iface)
	}
	return p.all(), nil
}

// Set refuses: every property is read-only.
func (managerProps) Set(iface, name string, _ dbus.Variant) *dbus.Error {
	return busError("org.freedesktop.DBus.Error.PropertyReadOnly", "property %q is read-only", name)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
