package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/internal/nmvpn"
)

// NetworkManager's VPN plugin interface (nm-vpn-dbus-interface.h).
const (
	pluginPath  = "/org/freedesktop/NetworkManager/VPN/Plugin"
	pluginIface = "org.freedesktop.NetworkManager.VPN.Plugin"
	errPrefix   = "org.freedesktop.NetworkManager.VPN.Error."
	nmBusName   = "org.freedesktop.NetworkManager"
)

// NMVpnServiceState.
const (
	stateInit     uint32 = 1
	stateStarting uint32 = 3
	stateStarted  uint32 = 4
	stateStopping uint32 = 5
	stateStopped  uint32 = 6
)

// NMVpnPluginFailure.
const (
	failureLogin   uint32 = 0
	failureConnect uint32 = 1
	failureBadIP   uint32 = 2
)

// callTimeout bounds each call to ovpnd: NetworkManager gives up on a call of its own
// after 10 s, and Connect calls Start before it answers.
const callTimeout = 8 * time.Second

// stopWait is how long Disconnect waits for the session to end before the plugin reports
// stopped anyway.
const stopWait = 6 * time.Second

const introspection = `<node>
  <interface name="org.freedesktop.NetworkManager.VPN.Plugin">
    <method name="Connect"><arg name="connection" type="a{sa{sv}}" direction="in"/></method>
    <method name="ConnectInteractive"><arg name="connection" type="a{sa{sv}}" direction="in"/><arg name="details" type="a{sv}" direction="in"/></method>
    <method name="NeedSecrets"><arg name="settings" type="a{sa{sv}}" direction="in"/><arg name="setting_name" type="s" direction="out"/></method>
    <method name="Disconnect"/>
    <method name="NewSecrets"><arg name="connection" type="a{sa{sv}}" direction="in"/></method>
    <signal name="StateChanged"><arg name="state" type="u"/></signal>
    <signal name="SecretsRequired"><arg name="message" type="s"/><arg name="secrets" type="as"/></signal>
    <signal name="Config"><arg name="config" type="a{sv}"/></signal>
    <signal name="Ip4Config"><arg name="ip4config" type="a{sv}"/></signal>
    <signal name="Ip6Config"><arg name="ip6config" type="a{sv}"/></signal>
    <signal name="LoginBanner"><arg name="banner" type="s"/></signal>
    <signal name="Failure"><arg name="reason" type="u"/></signal>
    <property name="State" type="u" access="read"/>
  </interface>` + introspect.IntrospectDeclarationString + `</node>`

func nmError(name, format string, args ...any) *dbus.Error {
	return dbus.NewError(errPrefix+name, []any{fmt.Sprintf(format, args...)})
}

// plugin is one NetworkManager VPN connection: NetworkManager runs one process per active
// connection (supports-multiple-connections), which ends after the connection stopped.
type plugin struct {
	conn *dbus.Conn
	logf func(format string, args ...any)
	// callerUID returns the uid behind a bus name (a test seam; the bus asks otherwise).
	callerUID func(sender string) (uint32, error)
	// daemonName is the ovpnd manager's bus name (api.BusName).
	daemonName string

	// done is closed when the connection is over and the process may exit.
	done     chan struct{}
	doneOnce sync.Once

	mu    sync.Mutex
	state uint32
	drv   *driver // the connection, once Connect started it
}

func newPlugin(conn *dbus.Conn, logf func(string, ...any)) *plugin {
	p := &plugin{conn: conn, logf: logf, daemonName: api.BusName, done: make(chan struct{}), state: stateInit}
	p.callerUID = func(sender string) (uint32, error) {
		var uid uint32
		err := conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, sender).Store(&uid)
		return uid, err
	}
	return p
}

// export puts the plugin on the bus at NetworkManager's path.
func (p *plugin) export() error {
	if err := p.conn.Export(pluginMethods{p}, pluginPath, pluginIface); err != nil {
		return err
	}
	if err := p.conn.Export(pluginProps{p}, pluginPath, "org.freedesktop.DBus.Properties"); err != nil {
		return err
	}
	return p.conn.Export(introspect.Introspectable(introspection), pluginPath, "org.freedesktop.DBus.Introspectable")
}

// finish lets the process exit.
func (p *plugin) finish() { p.doneOnce.Do(func() { close(p.done) }) }

// setState records and announces a service state.
func (p *plugin) setState(s uint32) {
	p.mu.Lock()
	changed := p.state != s
	p.state = s
	p.mu.Unlock()
	if changed {
		p.emit("StateChanged", s)
		p.emitProps(s)
	}
}

func (p *plugin) emit(member string, args ...any) {
	if err := p.conn.Emit(pluginPath, pluginIface+"."+member, args...); err != nil {
		p.logf("sending %s: %v", member, err)
	}
}

func (p *plugin) emitProps(s uint32) {
	_ = p.conn.Emit(pluginPath, "org.freedesktop.DBus.Properties.PropertiesChanged", pluginIface,
		map[string]dbus.Variant{"State": dbus.MakeVariant(s)}, []string{})
}

// checkCaller allows root only: NetworkManager runs as root, and the D-Bus policy lets only
// root talk to the plugin; this holds even if the policy is changed.
func (p *plugin) checkCaller(sender dbus.Sender) *dbus.Error {
	uid, err := p.callerUID(string(sender))
	if err != nil {
		return nmError("AccessDenied", "cannot identify the caller %s: %v", sender, err)
	}
	if uid != 0 {
		return nmError("AccessDenied", "only root (NetworkManager) may call the plugin; %s is uid %d", sender, uid)
	}
	return nil
}

// pluginMethods is exported as org.freedesktop.NetworkManager.VPN.Plugin.
type pluginMethods struct{ p *plugin }

// NeedSecrets answers "vpn" when the profile asks for a password that vpn.secrets lacks
// (and password-flags does not say it is not required), so that NetworkManager asks the
// user's agent (the auth-dialog, nmcli --ask, passwd-file); "" otherwise.
func (m pluginMethods) NeedSecrets(sender dbus.Sender, c map[string]map[string]dbus.Variant) (string, *dbus.Error) {
	if e := m.p.checkCaller(sender); e != nil {
		return "", e
	}
	n, err := parseConn(c)
	if err != nil {
		return "", nmError("InvalidConnection", "%v", err)
	}
	const notRequired = 4 // NM_SETTING_SECRET_FLAG_NOT_REQUIRED
	if n.needsPassword() && !n.hasPassword && n.passwordFlags&notRequired == 0 {
		return "vpn", nil
	}
	return "", nil
}

// Connect starts the connection without the chance to ask for secrets mid-connect.
func (m pluginMethods) Connect(sender dbus.Sender, c map[string]map[string]dbus.Variant) *dbus.Error {
	return m.p.connect(sender, c, false)
}

// ConnectInteractive starts the connection; challenges asked mid-connect go to
// NetworkManager's agents through SecretsRequired.
func (m pluginMethods) ConnectInteractive(sender dbus.Sender, c map[string]map[string]dbus.Variant, _ map[string]dbus.Variant) *dbus.Error {
	return m.p.connect(sender, c, true)
}

// NewSecrets carries what SecretsRequired asked for.
func (m pluginMethods) NewSecrets(sender dbus.Sender, c map[string]map[string]dbus.Variant) *dbus.Error {
	if e := m.p.checkCaller(sender); e != nil {
		return e
	}
	n, err := parseConn(c)
	if err != nil {
		return nmError("InvalidConnection", "%v", err)
	}
	m.p.mu.Lock()
	d := m.p.drv
	m.p.mu.Unlock()
	if d == nil {
		return nmError("WrongState", "no connection is waiting for secrets")
	}
	select {
	case d.secrets <- n:
		return nil
	default:
		return nmError("WrongState", "the connection is not waiting for secrets")
	}
}

// Disconnect ends the connection. NetworkManager does not wait for the answer; the session
// is ended in the background and StateChanged(STOPPED) follows.
func (m pluginMethods) Disconnect(sender dbus.Sender) *dbus.Error {
	if e := m.p.checkCaller(sender); e != nil {
		return e
	}
	m.p.mu.Lock()
	d := m.p.drv
	m.p.mu.Unlock()
	if d == nil {
		m.p.setState(stateStopped)
		m.p.finish()
		return nil
	}
	d.stop("NetworkManager asked to disconnect")
	return nil
}

type pluginProps struct{ p *plugin }

func (pp pluginProps) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	if iface != pluginIface || name != "State" {
		return dbus.Variant{}, dbus.MakeFailedError(fmt.Errorf("no property %s.%s", iface, name))
	}
	pp.p.mu.Lock()
	defer pp.p.mu.Unlock()
	return dbus.MakeVariant(pp.p.state), nil
}

func (pp pluginProps) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	if iface != pluginIface {
		return map[string]dbus.Variant{}, nil
	}
	v, _ := pp.Get(iface, "State")
	return map[string]dbus.Variant{"State": v}, nil
}

func (pp pluginProps) Set(iface, name string, _ dbus.Variant) *dbus.Error {
	return dbus.MakeFailedError(errors.New("the plugin's properties are read-only"))
}

// connect starts the ovpnd session in external network mode and answers NetworkManager
// at once; the driver goroutine does the rest.
func (p *plugin) connect(sender dbus.Sender, c map[string]map[string]dbus.Variant, interactive bool) *dbus.Error {
	if e := p.checkCaller(sender); e != nil {
		return e
	}
	n, err := parseConn(c)
	if err != nil {
		return nmError("InvalidConnection", "%v", err)
	}
	if n.profile == "" {
		return nmError("BadArguments", "vpn.data has no %s: import the profile with ovpnctl import --nm", nmvpn.DataProfile)
	}
	p.mu.Lock()
	if p.drv != nil {
		p.mu.Unlock()
		return nmError("AlreadyStarted", "this plugin process already runs a connection")
	}
	d := newDriver(p, n, string(sender), interactive)
	p.drv = d
	p.mu.Unlock()
	if err := d.start(); err != nil {
		p.logf("%s: %v", n.id, err)
		p.setState(stateStopped)
		p.finish()
		return nmError("LaunchFailed", "%v", err)
	}
	p.setState(stateStarting)
	go d.run()
	return nil
}

// driver follows one ovpnd session for NetworkManager.
type driver struct {
	p           *plugin
	n           *nmConn
	nm          string // NetworkManager's unique name: when it leaves, the session ends
	interactive bool
	name        string

	daemon  string          // the unique name of ovpnd, the only sender believed
	session dbus.ObjectPath // the session object
	sigs    chan *dbus.Signal
	secrets chan *nmConn // NewSecrets, while the driver waits for them
	quit    chan string  // stop requests with their reason
	once    sync.Once
}

func newDriver(p *plugin, n *nmConn, nm string, interactive bool) *driver {
	return &driver{p: p, n: n, nm: nm, interactive: interactive, name: n.sessionName(),
		sigs: make(chan *dbus.Signal, 256), secrets: make(chan *nmConn), quit: make(chan string, 1)}
}

func (d *driver) logf(format string, args ...any) {
	d.p.logf("%s: "+format, append([]any{d.n.id}, args...)...)
}

func (d *driver) stop(reason string) {
	d.once.Do(func() { d.quit <- reason })
}

func (d *driver) call(method string, args ...any) *dbus.Call {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return d.p.conn.Object(d.daemon, d.session).CallWithContext(ctx, api.SessionInterface+"."+method, 0, args...)
}

// start watches the bus names that matter and starts the session.
func (d *driver) start() error {
	conn := d.p.conn
	conn.Signal(d.sigs)
	for _, name := range []string{d.nm, d.p.daemonName} {
		if err := conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, name)); err != nil {
			return fmt.Errorf("watching %s: %w", name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, d.p.daemonName).Store(&d.daemon); err != nil {
		return fmt.Errorf("ovpnd is not running (%s: %v); start ovpnd.service", d.p.daemonName, err)
	}
	// NetworkManager may have left before Connect got here.
	var nmOwner bool
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, d.nm).Store(&nmOwner); err != nil || !nmOwner {
		return fmt.Errorf("the caller %s left the bus", d.nm)
	}
	opts := map[string]dbus.Variant{api.StartOptionExternalNetwork: dbus.MakeVariant(true)}
	err := conn.Object(d.daemon, api.ManagerPath).CallWithContext(ctx, api.ManagerInterface+".Start", 0, d.name, d.n.profile, opts).Store(&d.session)
	if err != nil {
		return fmt.Errorf("ovpnd refused the session: %w", err)
	}
	d.logf("ovpnd session %s (%s) started in external network mode", d.name, d.session)
	return nil
}

// run follows the session until it ends, then lets the process exit.
func (d *driver) run() {
	defer d.p.finish()
	defer d.p.conn.RemoveSignal(d.sigs)
	st := &follow{answered: map[uint32]bool{}}
	// The reply's body is read as decoded: Store would rebuild the nested variants of
	// NetworkConfig with signatures of its own (a(ss) would become aav).
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	reply := d.p.conn.Object(d.daemon, d.session).CallWithContext(ctx, api.PropertiesInterface+".GetAll", 0, api.SessionInterface)
	cancel()
	var props map[string]dbus.Variant
	if reply.Err == nil && len(reply.Body) == 1 {
		props, _ = reply.Body[0].(map[string]dbus.Variant)
	}
	if props == nil {
		d.fail(failureConnect, fmt.Sprintf("reading the session: %v", reply.Err))
		return
	}
	if d.update(st, props) {
		return
	}
	for {
		select {
		case reason := <-d.quit:
			d.disconnect(reason)
			return
		case s, ok := <-d.sigs:
			if !ok {
				d.logf("lost the bus connection")
				return
			}
			if d.busSignal(s) {
				return
			}
			if s.Sender != d.daemon || s.Path != d.session {
				continue
			}
			switch s.Name {
			case api.PropertiesInterface + "." + api.SignalPropertiesChanged:
				if len(s.Body) == 3 {
					if ch, ok := s.Body[1].(map[string]dbus.Variant); ok && d.update(st, ch) {
						return
					}
				}
			case api.SessionInterface + "." + api.SignalInputRequired, api.SessionInterface + "." + api.SignalOpenURL:
				if d.answer(st) {
					return
				}
			}
		}
	}
}

// busSignal handles NameOwnerChanged: NetworkManager leaving ends the session (no one
// would remove its settings); ovpnd leaving ends the connection. It reports the end.
func (d *driver) busSignal(s *dbus.Signal) bool {
	if s.Sender != "org.freedesktop.DBus" || s.Name != "org.freedesktop.DBus.NameOwnerChanged" || len(s.Body) != 3 {
		return false
	}
	name, _ := s.Body[0].(string)
	newOwner, _ := s.Body[2].(string)
	switch {
	case name == d.nm && newOwner == "":
		d.logf("NetworkManager (%s) left the bus; ending the session", d.nm)
		d.disconnect("NetworkManager went away")
		return true
	case name == d.p.daemonName && newOwner != d.daemon:
		d.fail(failureConnect, "ovpnd left the bus")
		return true
	}
	return false
}

// follow is what the driver has told NetworkManager so far.
type follow struct {
	state    string
	reason   string
	netGen   uint64
	started  bool
	answered map[uint32]bool
	// asked counts the answers of each kind from NetworkManager's secrets: the same
	// stored password is given once, a second request needs a new one.
	asked map[string]int
	// banner is the last login banner sent.
	banner string
}

// update applies changed session properties; it reports the end of the connection.
func (d *driver) update(st *follow, ch map[string]dbus.Variant) bool {
	if v, ok := ch[api.PropState]; ok {
		_ = v.Store(&st.state)
	}
	if v, ok := ch[api.PropStateReason]; ok {
		_ = v.Store(&st.reason)
	}
	switch st.state {
	case api.StateFailed:
		reason := failureConnect
		if strings.Contains(st.reason, "authentication failed") || strings.Contains(st.reason, "AUTH_FAILED") {
			reason = failureLogin
		}
		d.fail(reason, st.reason)
		return true
	case api.StateDisconnected:
		d.logf("the session ended: %s", api.Printable(st.reason))
		d.p.setState(stateStopped)
		return true
	case api.StateWaitingInput, api.StateAuthPending:
		if d.answer(st) {
			return true
		}
	case api.StateConnected:
	default:
		if st.started {
			// A reconnect: NetworkManager shows the connection activating again.
			d.logf("reconnecting (%s)", st.state)
			st.started = false
			d.p.setState(stateStarting)
		}
	}
	if v, ok := ch[api.PropNetworkConfig]; ok {
		m, _ := v.Value().(map[string]dbus.Variant)
		c, err := api.ParseNetConfig(m)
		if err != nil {
			d.fail(failureBadIP, fmt.Sprintf("ovpnd sent a configuration the plugin cannot read: %v", err))
			return true
		}
		if c != nil && c.Generation != st.netGen {
			st.netGen = c.Generation
			nc, err := mapConfig(c, d.logf)
			if err != nil {
				d.fail(failureBadIP, err.Error())
				return true
			}
			d.logf("configuration for NetworkManager: %s", nc.describe(c))
			d.p.emit("Config", nc.config)
			if nc.ip4 != nil {
				d.p.emit("Ip4Config", nc.ip4)
			}
			if nc.ip6 != nil {
				d.p.emit("Ip6Config", nc.ip6)
			}
			st.started = true
			d.p.setState(stateStarted)
		}
	}
	return false
}

// answer gives the session what it waits for: the username from vpn.data, the password
// from vpn.secrets (once: a second request means it was refused), anything else from
// NetworkManager's agents through SecretsRequired when Connect was interactive. A web login
// becomes the connection's login banner. It reports the end of the connection.
func (d *driver) answer(st *follow) bool {
	var reqs []api.InputEntry
	if err := d.call("PendingInput").Store(&reqs); err != nil {
		d.fail(failureConnect, fmt.Sprintf("reading the session's requests: %v", err))
		return true
	}
	if st.asked == nil {
		st.asked = map[string]int{}
	}
	for _, r := range reqs {
		if st.answered[r.ID] {
			continue
		}
		var value string
		switch {
		case r.Kind == api.InputWebLogin:
			st.answered[r.ID] = true
			if r.URL != st.banner {
				st.banner = r.URL
				d.logf("the server waits for a web login at %s", api.Printable(r.URL))
				d.p.emit("LoginBanner", "Log in at "+api.Printable(r.URL))
			}
			continue
		case r.Kind == api.InputUsername:
			if d.n.username == "" {
				d.fail(failureLogin, "the profile asks for a username, and vpn.data has none (nmcli connection modify ID +vpn.data username=NAME)")
				return true
			}
			value = d.n.username
		case r.Kind == api.InputPassword && d.n.hasPassword && st.asked[r.Kind] == 0:
			value = d.n.password
		default:
			v, ok := d.ask(r, st)
			if !ok {
				return true
			}
			value = v
		}
		st.asked[r.Kind]++
		st.answered[r.ID] = true
		if err := d.call("ProvideInput", r.ID, value).Err; err != nil {
			d.fail(failureConnect, fmt.Sprintf("answering the session: %v", err))
			return true
		}
	}
	return false
}

// ask gets one answer from NetworkManager's agents: SecretsRequired with the prompt, then
// NewSecrets. Without interaction, or when the request ends otherwise, the connection fails.
func (d *driver) ask(r api.InputEntry, st *follow) (string, bool) {
	key := nmvpn.SecretChallenge
	if r.Kind == api.InputPassword {
		key = nmvpn.SecretPassword
	}
	if !d.interactive {
		d.fail(failureLogin, fmt.Sprintf("the server asks for %s (%q) and NetworkManager did not allow interaction", r.Kind, api.Printable(r.Prompt)))
		return "", false
	}
	hints := []string{key, "x-vpn-message:" + api.Printable(r.Prompt)}
	if !r.Secret && r.Kind != api.InputPassword {
		hints = append(hints, "x-echo")
	}
	d.logf("asking NetworkManager's agents for %s", key)
	d.p.emit("SecretsRequired", api.Printable(r.Prompt), hints)
	for {
		select {
		case reason := <-d.quit:
			d.disconnect(reason)
			return "", false
		case s, ok := <-d.sigs:
			if !ok {
				d.logf("lost the bus connection")
				return "", false
			}
			if d.busSignal(s) {
				return "", false
			}
			if s.Sender == d.daemon && s.Path == d.session && s.Name == api.PropertiesInterface+"."+api.SignalPropertiesChanged && len(s.Body) == 3 {
				if ch, ok := s.Body[1].(map[string]dbus.Variant); ok {
					if v, ok := ch[api.PropState]; ok {
						var state string
						_ = v.Store(&state)
						if api.StateFinished(state) {
							return "", !d.update(st, ch)
						}
					}
				}
			}
		case n := <-d.secrets:
			v, ok := n.challenge, n.hasChallenge
			if key == nmvpn.SecretPassword {
				v, ok = n.password, n.hasPassword
			}
			if !ok {
				d.fail(failureLogin, fmt.Sprintf("NetworkManager's answer carries no %s", key))
				return "", false
			}
			return v, true
		}
	}
}

// fail reports a failure to NetworkManager and ends the session.
func (d *driver) fail(reason uint32, msg string) {
	d.logf("failed: %s", api.Printable(msg))
	d.p.emit("Failure", reason)
	_ = d.call("Disconnect").Err
	d.p.setState(stateStopped)
}

// disconnect ends the session and waits (bounded) until ovpnd reports it ended, so that
// the tun device is gone when NetworkManager hears STOPPED.
func (d *driver) disconnect(reason string) {
	d.logf("disconnecting: %s", reason)
	d.p.setState(stateStopping)
	if err := d.call("Disconnect").Err; err != nil {
		d.logf("disconnecting the session: %v", err)
		d.p.setState(stateStopped)
		return
	}
	deadline := time.After(stopWait)
	for {
		select {
		case s, ok := <-d.sigs:
			if !ok {
				return
			}
			if s.Sender != d.daemon || s.Path != d.session || s.Name != api.PropertiesInterface+"."+api.SignalPropertiesChanged || len(s.Body) != 3 {
				continue
			}
			ch, _ := s.Body[1].(map[string]dbus.Variant)
			var state string
			if v, ok := ch[api.PropState]; ok && v.Store(&state) == nil && api.StateFinished(state) {
				d.p.setState(stateStopped)
				return
			}
		case <-deadline:
			d.logf("the session did not end within %v", stopWait)
			d.p.setState(stateStopped)
			return
		}
	}
}
