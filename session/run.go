package session

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine"
	"github.com/ovpnd/ovpnd/engine/datachannel"
	"github.com/ovpnd/ovpnd/engine/push"
	"github.com/ovpnd/ovpnd/internal/memtrim"
	"github.com/ovpnd/ovpnd/routing"
)

const (
	// shutdownGrace bounds the exit notification on Disconnect/cancel.
	shutdownGrace = 3 * time.Second
	// defaultConnectRetry and defaultConnectRetryMax are OpenVPN's connect-retry 1 300.
	defaultConnectRetry    = 1 * time.Second
	defaultConnectRetryMax = 300 * time.Second
	// defaultConnectTimeout is OpenVPN's server-poll-timeout/connect-timeout default.
	defaultConnectTimeout = 120 * time.Second
	// ctrlQueue is how many control packets may wait for the control loop.
	ctrlQueue = 256
)

// outcome is how one connection attempt ended.
type outcome struct {
	kind      outcomeKind
	reason    string
	err       error
	connected bool // the attempt reached Connected
	// noAdvance retries the same remote at once, as for a connection that worked: the
	// server sent a challenge that only it can check (OpenVPN's no_advance).
	noAdvance bool
}

type outcomeKind int

const (
	outRetry outcomeKind = iota // try again (same remote if it had connected, else the next)
	outExit                     // clean stop: Disconnect or context cancelled
	outFatal                    // stop with err
)

// Run connects and keeps the tunnel up until ctx is cancelled, Disconnect is
// called (both return nil after the exit notification and teardown), or a
// fatal condition: AUTH_FAILED, HALT, ping-exit, a tun failure, or every
// remote failing connect-retry-max times.
func (s *Session) Run(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	if s.runCancel != nil {
		s.mu.Unlock()
		return errors.New("session: Run called twice")
	}
	s.runCancel = cancel
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		cancel()
	}
	s.setState(StateIdle, "")
	r := &runner{s: s, cfg: s.cfg, underlay: make(chan struct{}, 1)}
	if t := s.opts.AuthToken; t != nil && t.Token != "" {
		r.creds = credentials{user: t.User, token: t.Token, tokenUser: t.TokenUser}
	}
	defer func() {
		// Leave the executable in the page cache, for the next start of the binary.
		defer memtrim.RefillExecutable()
		if terr := r.teardown(); terr != nil {
			s.logf(0, "teardown: %v", terr)
			if err == nil {
				err = terr
			}
		}
		if err != nil {
			s.setState(StateFailed, err.Error())
		} else {
			s.setState(StateDisconnected, "")
		}
	}()
	return r.run(ctx)
}

// runner is the state of Run: what outlives a single connection attempt.
type runner struct {
	s   *Session
	cfg *config.Config
	// underlay is signalled (without blocking) when routes towards the server changed:
	// the attempt then checks whether its UDP socket should move (roam.go).
	underlay chan struct{}

	router netRouter
	tun    tunDevice
	link   string
	dp     *dataPath
	txDone chan struct{} // closed when the tun reader returns
	// maxMTU is the largest tun MTU the data path's buffers hold.
	maxMTU int
	// tunFailed: the tun device failed; the next attempt needs a new one.
	tunFailed bool
	// refused are the pushed settings of the current connection that
	// checkPushed refused; the connected state's reason names them (noteNet).
	// Guarded by netMu.
	refused []string

	// netMu serialises every call into router after Run set it up: the
	// control loop (push replies, teardown), the route-delay timer and the
	// underlay route monitor all reach it.
	netMu sync.Mutex
	// netGen counts network configurations; a route-delay timer whose
	// generation is no longer current has nothing left to do.
	netGen  uint64
	delay   *time.Timer
	delayWG sync.WaitGroup // the route-delay callback that is armed or running
	// pushedNet and pushedTunMTU are the server's network settings of this connection as
	// pushed and since updated (PUSH_UPDATE); owned by the control loop.
	pushedNet    *config.NetSettings
	pushedTunMTU *int
	watcher      *routeWatcher

	creds credentials
	order []int // connection indexes in try order
	// pathRTT is the control channel's round trip that the last connection measured to
	// remote: the next attempt to the same address starts its retransmission timing from it
	// (engine.Config.PathRTT). Owned by the goroutine running attempts.
	pathRTT struct {
		remote       netip.AddrPort
		srtt, rttvar time.Duration
	}
	// proxyCreds are proxy credentials asked for earlier (proxy.go).
	proxyCreds *proxyCreds
}

func (r *runner) run(ctx context.Context) error {
	s := r.s
	newRouter := s.opts.newRouter
	if newRouter == nil {
		newRouter = func(o routing.Options) (netRouter, error) { return routing.New(o) }
		if s.opts.ExternalNet {
			newRouter = func(o routing.Options) (netRouter, error) {
				o.External = true
				claims, err := routing.New(o)
				if err != nil {
					return nil, err
				}
				return &externalNet{s: s, claims: claims}, nil
			}
		}
	}
	if r.cfg.DevType != config.DevNull {
		stateName := s.opts.StateName
		if stateName == "" {
			stateName = s.opts.Name
		}
		rt, err := newRouter(routing.Options{
			StateDir:    s.opts.StateDir,
			Instance:    stateName,
			Owner:       s.opts.Owner,
			MayOverride: s.opts.MayOverride,
			DNSMode:     s.opts.DNSMode,
			ResolvConf:  s.opts.ResolvConf,
			Logf:        func(f string, a ...any) { s.logf(2, f, a...) },
		})
		if err != nil {
			return fmt.Errorf("setting up routing: %w", err)
		}
		r.router = rt
		mode := rt.DNSMode()
		s.update(func(st *Status) { st.DNSMode = mode })
		r.watcher = newRouteWatcher(r.refreshNet, s.logf)
		if s.opts.watchRoutes != nil {
			r.watcher.subscribe = s.opts.watchRoutes
		}
		if err := r.watcher.start(); err != nil {
			// Without the monitor the tunnel still works; only a change of
			// the underlying default route goes unnoticed.
			s.logf(1, "not following route changes: %v", err)
			r.watcher = nil
		}
	}
	if aup := r.cfg.AuthUserPass; aup != nil && aup.Username != "" && aup.Password != "" && !aup.Ask {
		r.creds.user, r.creds.pass = aup.Username, aup.Password
	}

	r.order = make([]int, len(r.cfg.Connections))
	for i := range r.order {
		r.order[i] = i
	}
	if r.cfg.RemoteRandom {
		rand.Shuffle(len(r.order), func(i, j int) { r.order[i], r.order[j] = r.order[j], r.order[i] })
	}

	failures := make([]int, len(r.order)) // consecutive failed attempts per connection
	pos := 0
	retries := 0 // consecutive failed attempts overall, for the back-off
	for {
		conn := &r.cfg.Connections[r.order[pos]]
		out := r.connectEntry(ctx, conn)
		// A connection that came up ended it already (memtrim.AfterConnect); a first attempt
		// that failed must not leave the process without garbage collection.
		memtrim.EndHold()
		switch out.kind {
		case outExit:
			return nil
		case outFatal:
			return out.err
		}
		if out.connected || out.noAdvance {
			failures[pos], retries = 0, 0
			// A connection that worked is tried again first: the usual cause is
			// a server restart or a network change, not a dead server.
		} else {
			failures[pos]++
			retries++
			if m := conn.ConnectRetryMax; m > 0 && failures[pos] >= m {
				exhausted := true
				for i := range failures {
					if m := r.cfg.Connections[r.order[i]].ConnectRetryMax; m == 0 || failures[i] < m {
						exhausted = false
					}
				}
				if exhausted {
					return fmt.Errorf("%w: %s", ErrNoMoreRemotes, out.reason)
				}
			}
			pos = (pos + 1) % len(r.order)
			for r.cfg.Connections[r.order[pos]].ConnectRetryMax > 0 && failures[pos] >= r.cfg.Connections[r.order[pos]].ConnectRetryMax {
				pos = (pos + 1) % len(r.order)
			}
		}
		wait := r.backoff(conn, retries)
		// The wait runs from the end of the connection, not from the end of the teardown
		// (removing the network settings and closing the tun device takes 10-30 ms, most of
		// it the kernel unregistering the device): the next attempt starts wait after the
		// last one ended, as connect-retry asks, and no later.
		until := time.Now().Add(wait)
		if out.connected {
			// The connection paged the executable out (memtrim.AfterConnect); the next
			// one runs its code again.
			memtrim.RefillExecutable()
		}
		s.setState(StateReconnecting, out.reason)
		if !r.persistTun() || r.tunFailed {
			r.closeTun()
			r.tunFailed = false
		}
		if wait > 0 {
			s.logf(1, "restarting in %v", wait)
			t := time.NewTimer(max(time.Until(until), 0))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			case <-s.restart:
				t.Stop()
			}
		}
	}
}

// backoff is OpenVPN's connect-retry wait: the base wait, doubled for every
// full round of remotes beyond the fourth that failed, up to the maximum.
func (r *runner) backoff(conn *config.Connection, retries int) time.Duration {
	base := conn.ConnectRetry
	if base <= 0 {
		base = defaultConnectRetry
	}
	maxWait := conn.ConnectRetryMaxWait
	if maxWait <= 0 {
		maxWait = defaultConnectRetryMax
	}
	if n := retries/len(r.order) - 4; n > 0 {
		base <<= min(n, 15)
	}
	return min(base, maxWait)
}

func (r *runner) persistTun() bool { return r.cfg.PersistTun }

// connectEntry resolves one connection entry and tries its addresses in turn.
func (r *runner) connectEntry(ctx context.Context, conn *config.Connection) outcome {
	s := r.s
	s.setState(StateResolving, conn.Remote)
	// With a proxy, the proxy's addresses (proxy.go).
	addrs, port, err := r.resolveEntry(ctx, conn)
	if err != nil {
		if ctx.Err() != nil {
			return outcome{kind: outExit}
		}
		s.logf(0, "resolving %s: %v", conn.Remote, err)
		return outcome{kind: outRetry, reason: fmt.Sprintf("resolving %s: %v", conn.Remote, err)}
	}
	var last outcome
	for _, a := range addrs {
		last = r.attempt(ctx, conn, netip.AddrPortFrom(a, port))
		if last.kind != outRetry || last.connected || last.noAdvance {
			return last
		}
	}
	return last
}

// resolve looks the remote up, honouring the connection's address family and
// resolv-retry.
func (r *runner) resolve(ctx context.Context, conn *config.Connection) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(conn.Remote); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	network := "ip"
	switch conn.Family {
	case config.FamilyIPv4:
		network = "ip4"
	case config.FamilyIPv6:
		network = "ip6"
	}
	lookup := r.s.opts.lookup
	if lookup == nil {
		lookup = net.DefaultResolver.LookupNetIP
	}
	deadline := time.Now().Add(r.cfg.ResolvRetry)
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ips, err := lookup(rctx, network, conn.Remote)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil && len(ips) > 0 {
			out := make([]netip.Addr, 0, len(ips))
			for _, ip := range ips {
				out = append(out, ip.Unmap())
			}
			return out, nil
		}
		if err == nil {
			err = errors.New("no addresses")
		}
		if r.cfg.ResolvRetry != config.ResolvRetryInfinite && time.Now().After(deadline) {
			return nil, err
		}
		r.s.logf(1, "resolving %s: %v; retrying", conn.Remote, err)
		t := time.NewTimer(5 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (r *runner) openTun() error {
	if r.tun != nil {
		return nil
	}
	open := r.s.opts.openTun
	if open == nil {
		open = openKernelTun
	}
	if r.cfg.DevType == config.DevNull {
		open = func(string, int) (tunDevice, string, error) { return newNullTun(), "null", nil }
	}
	name := r.cfg.Dev
	if name == "" || name == "tun" {
		name = "tun%d"
	}
	mtu := r.cfg.TunMTU
	if mtu <= 0 {
		mtu = engine.DefaultTunMTU
	}
	r.maxMTU = maxTunMTU(r.cfg)
	if r.s.opts.NewLinkOnly && r.cfg.DevType != config.DevNull && !strings.Contains(name, "%d") {
		// The kernel would attach us to an existing (persistent) tun of that
		// name; only a new one is ours.
		if _, err := net.InterfaceByName(name); err == nil {
			return fmt.Errorf("opening tun device %s: refused: the interface exists already and this session did not create it", name)
		}
	}
	t, link, err := open(name, mtu)
	if err != nil {
		return fmt.Errorf("opening tun device %s: %w", name, err)
	}
	r.tun, r.link = t, link
	if r.watcher != nil {
		if i, err := linkIndex(link); err == nil {
			r.watcher.setTunIndex(i)
		}
	}
	r.dp = newDataPath(t, &r.s.cnt, dataPathConfig{Headroom: datachannel.Headroom, Tailroom: datachannel.Tailroom, MTU: r.maxMTU,
		RefuseCompressed: r.cfg.Compression.Allow == config.AllowNo, Fragment: fragmentFromConfig(r.cfg),
		Warnf: func(f string, a ...any) { r.s.logf(1, f, a...) }},
		func(f string, a ...any) { r.s.logf(4, f, a...) })
	r.dp.setMSSFix(mssFixFromConfig(r.cfg)) // mssfix hook (session/mss.go)
	r.txDone = make(chan struct{})
	go func(dp *dataPath, done chan struct{}) {
		defer close(done)
		dp.RoutineTunToSocket()
	}(r.dp, r.txDone)
	r.s.update(func(st *Status) { st.Link = link })
	r.s.logf(1, "opened tun device %s (mtu %d)", link, mtu)
	return nil
}

// maxTunMTU is the largest tun MTU a session of this profile may use: the
// profile's tun-max-mtu (default 1600) or its tun-mtu, whichever is larger.
// The engine announces it to the server as IV_MTU, the data path's buffers
// are sized for it, and a pushed tun-mtu above it is clamped, as OpenVPN 2.6
// clamps it to tun-max-mtu.
func maxTunMTU(c *config.Config) int {
	ceil := c.TunMaxMTU
	if ceil <= 0 {
		ceil = engine.DefaultTunMaxMTU
	}
	return max(c.TunMTU, engine.DefaultTunMTU, ceil)
}

// closeTun removes the network settings and closes the device.
func (r *runner) closeTun() error {
	var errs []error
	if r.router != nil {
		r.stopDelay()
		r.netMu.Lock()
		if err := r.router.Set(nil); err != nil {
			errs = append(errs, fmt.Errorf("removing network settings: %w", err))
		}
		r.netMu.Unlock()
	}
	if r.tun != nil {
		r.dp.closing.Store(true)
		if err := r.tun.Close(); err != nil {
			if errors.Is(err, os.ErrClosed) {
				// A device whose descriptor is closed already is gone either way
				// (the tun package's monitored devices closed it from their own
				// netlink listener): a clean stop must not turn into exit status 1.
				r.s.logf(3, "closing tun device: %v", err)
			} else {
				errs = append(errs, fmt.Errorf("closing tun device: %w", err))
			}
		}
		<-r.txDone
		// Every attempt waited for its socket reader before it returned, and the tun
		// reader is done: nothing uses the packet buffers any more.
		r.dp.releaseMem()
		r.tun, r.dp, r.link = nil, nil, ""
	}
	return errors.Join(errs...)
}

func (r *runner) teardown() error {
	// The monitor goes first: a refresh must not re-add what closeTun removes.
	if r.watcher != nil {
		r.watcher.stop()
		r.watcher = nil
	}
	err := r.closeTun()
	if r.router != nil {
		if cerr := r.router.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing routing: %w", cerr))
		}
		r.router = nil
	}
	return err
}

// dial opens the transport of one attempt.
func (r *runner) dial(ctx context.Context, conn *config.Connection, remote netip.AddrPort) (packetConn, error) {
	o := udpDialOptions{}
	if conn.Bind {
		var local netip.Addr
		if conn.Local != "" {
			a, err := netip.ParseAddr(conn.Local)
			if err != nil {
				ips, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", conn.Local)
				if lerr != nil || len(ips) == 0 {
					return nil, fmt.Errorf("resolving local address %q: %w", conn.Local, errors.Join(err, lerr))
				}
				a = ips[0]
			}
			local = a.Unmap()
		}
		o.Local = netip.AddrPortFrom(local, conn.LocalPort)
	}
	timeout := conn.ConnectTimeout
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if r.cfg.Proxy != nil {
		return r.dialProxy(dctx, conn, remote, o)
	}
	if conn.Proto == config.ProtoTCP {
		return dialTCP(dctx, remote, o)
	}
	o.OnUnreachable = r.underlayChanged
	o.Float = conn.Float
	o.OnICMP = func(err error) {
		r.s.logf(0, "udp:%v: %v (no server there?); retrying until the handshake times out", remote, err)
	}
	return dialUDP(dctx, remote, o)
}

// applyPush merges the pushed network settings over the profile's and hands
// the result to routing. The engine has parsed the push once (push.Parse: the
// profile's pull-filter and route-nopull, then the grammar) and applied the
// protocol options; what it did not apply is in reply.Warnings and is logged
// here. Network settings routing refuses (bounds, bad prefixes, a missing
// net_gateway) are logged and the connection is kept: the tunnel itself works
// without them.
func (r *runner) applyPush(reply *push.Reply, server netip.Addr) error {
	s := r.s
	if s.verb >= 3 {
		opts := make([]string, len(reply.Accepted))
		for i, o := range reply.Accepted {
			opts[i] = o.String()
		}
		s.logf(3, "PUSH_REPLY: %s", strings.Join(opts, ","))
	}
	for _, w := range reply.Warnings {
		s.logf(2, "%v", w)
	}
	pn, warns := config.PushedNet(reply.Net)
	for _, w := range warns {
		s.logf(2, "%v", w)
	}
	for _, why := range notApplied(pn) {
		s.logf(1, "warning: ignoring pushed %s", why)
	}
	var refused []string
	if r.router != nil {
		readHost := s.opts.readHost
		if readHost == nil {
			readHost = readHostNet
		}
		topo := pn.Topology
		if topo == config.TopologyUnset {
			topo = r.cfg.Net.Topology
		}
		host, err := readHost(server)
		if err != nil {
			// Without the host's networks a pushed address cannot be checked;
			// the checks that need none (loopback, the server) still run.
			s.logf(1, "checking pushed settings against this host: %v", err)
		}
		refused = checkPushed(pn, topo, host)
		for _, why := range refused {
			s.logf(0, "refusing pushed %s", why)
		}
	}
	p := reply
	if r.dp != nil {
		r.dp.setPushedMSSFix(p.MSSFix) // mssfix hook (session/mss.go)
	}
	if p.AuthToken != "" {
		r.creds.token = p.AuthToken
		if p.AuthTokenUser != "" {
			r.creds.tokenUser = p.AuthTokenUser
		}
		if s.opts.OnAuthToken != nil {
			s.opts.OnAuthToken(AuthToken{User: r.creds.user, Token: r.creds.token, TokenUser: r.creds.tokenUser})
		}
	}
	r.pushedNet, r.pushedTunMTU = pn, p.TunMTU
	r.syncBlockIPv6()
	if r.router == nil {
		return nil
	}
	rc, addrs := r.netConfig(server)

	r.netMu.Lock()
	defer r.netMu.Unlock()
	r.refused = refused
	r.cancelDelayLocked()
	delay, window := r.cfg.RouteDelay, r.cfg.RouteDelayWin
	if p.RouteDelay != nil {
		// A pushed route-delay overrides the profile's, as in OpenVPN.
		delay, window = *p.RouteDelay, *p.RouteDelayWin
	}
	if d := delay; d > 0 && hasRoutes(rc) {
		// route-delay: the address now, routes and DNS (whose servers sit
		// behind those routes) once the delay is over.
		err := r.router.Set(addressOnly(rc))
		if err != nil {
			s.logf(1, "network settings of %s: %v", r.link, err)
		}
		s.noteNet(r.withRefusals(err))
		if window <= 0 {
			window = defaultRouteDelayWindow
		}
		gen := r.netGen
		deadline := time.Now().Add(d + window)
		s.logf(1, "route-delay: adding routes in %v", d)
		r.armDelayLocked(d, func() { r.delayedRoutes(gen, rc, deadline) })
		return nil
	}
	err := r.router.Set(rc)
	if err != nil {
		s.logf(1, "network settings of %s: %v", r.link, err)
	}
	s.noteNet(r.withRefusals(err))
	r.logNet(rc, addrs)
	return nil
}

// netConfig builds the routing configuration of the pushed settings over the profile's and
// publishes the tunnel addresses and server addresses it names.
func (r *runner) netConfig(server netip.Addr) (*routing.Config, []netip.Prefix) {
	s := r.s
	pn := r.pushedNet
	if pn == nil {
		pn = &config.NetSettings{}
	}
	n := mergeNet(&r.cfg.Net, pn)
	mtu := r.cfg.TunMTU
	if p := r.pushedTunMTU; p != nil && *p > 0 {
		mtu = *p
		if ceil := maxTunMTU(r.cfg); mtu > ceil {
			s.logf(1, "warning: server pushed tun-mtu %d, above the %d this client allows (tun-max-mtu, announced as IV_MTU); using tun-mtu %d", mtu, ceil, ceil)
			mtu = ceil
		}
	}
	rc, rwarns := routingConfig(netInput{
		Net:            n,
		Link:           r.link,
		MTU:            mtu,
		Server:         server,
		RouteNoExec:    r.cfg.RouteNoExec,
		IfconfigNoExec: r.cfg.IfconfigNoExec,
	})
	for _, w := range rwarns {
		s.logf(1, "%s", w)
	}
	var addrs []netip.Prefix
	for _, a := range rc.Addrs {
		addrs = append(addrs, a.Prefix)
	}
	s.update(func(st *Status) { st.Addrs = addrs })
	if r.watcher != nil {
		r.watcher.setServers(rc.ServerAddrs)
	}
	return rc, addrs
}

// applyPushUpdate applies a PUSH_UPDATE (OpenVPN 2.7) to the live tunnel: every option kind
// the update names replaces (or, with "-", removes) that kind of the earlier push, and routing
// moves the kernel and resolver from the old state to the new one as a diff, so the tunnel
// and everything the update leaves alone stay as they are. Unlike OpenVPN, which closes and
// reopens its tun device for an update, nothing else is touched.
func (r *runner) applyPushUpdate(u *push.Update, server netip.Addr) {
	s := r.s
	opts := make([]string, len(u.Reply.Accepted))
	for i, o := range u.Reply.Accepted {
		opts[i] = o.String()
	}
	s.logf(1, "PUSH_UPDATE: %s%s", strings.Join(opts, ","), removedText(u.Removed))
	for _, w := range u.Reply.Warnings {
		s.logf(2, "%v", w)
	}
	upd, warns := config.PushedNet(u.Reply.Net)
	for _, w := range warns {
		s.logf(2, "%v", w)
	}
	cur := r.pushedNet
	if cur == nil {
		cur = &config.NetSettings{}
	}
	r.pushedNet = updateNet(cur, upd, u)
	r.syncBlockIPv6()
	if u.Has("tun-mtu") {
		r.pushedTunMTU = u.Reply.TunMTU
	}
	if r.router == nil {
		return
	}
	rc, addrs := r.netConfig(server)
	r.netMu.Lock()
	defer r.netMu.Unlock()
	// A route-delay still pending would install the old settings later.
	r.cancelDelayLocked()
	err := r.router.Set(rc)
	if err != nil {
		s.logf(1, "network settings of %s after PUSH_UPDATE: %v", r.link, err)
	}
	s.noteNet(err)
	r.logNet(rc, addrs)
}

func removedText(kinds []string) string {
	if len(kinds) == 0 {
		return ""
	}
	return " (removed: " + strings.Join(kinds, ", ") + ")"
}

// updateNet returns cur with every kind the update names taken from upd (zero when removed):
// options.c update_option replaces all options of a kind at its first occurrence in an update,
// remove_option clears them.
func updateNet(cur, upd *config.NetSettings, u *push.Update) *config.NetSettings {
	n := *cur
	for _, kind := range append(append([]string(nil), u.Replaced...), u.Removed...) {
		switch kind {
		case "route":
			n.Routes = upd.Routes
		case "route-ipv6":
			n.RoutesIPv6 = upd.RoutesIPv6
		case "redirect-gateway":
			n.RedirectGateway, n.RedirectPrivate = upd.RedirectGateway, upd.RedirectPrivate
		case "dns":
			n.DNS = upd.DNS
		case "dhcp-option":
			n.DHCPOptions = upd.DHCPOptions
		case "block-ipv6":
			n.BlockIPv6 = upd.BlockIPv6
		case "route-gateway":
			n.RouteGateway = upd.RouteGateway
		case "route-metric":
			n.RouteMetric = upd.RouteMetric
		case "topology":
			n.Topology = upd.Topology
		case "ifconfig":
			n.Ifconfig = upd.Ifconfig
		case "ifconfig-ipv6":
			n.IfconfigIPv6 = upd.IfconfigIPv6
		}
	}
	return &n
}

// defaultRouteDelayWindow is OpenVPN's route-delay window default.
const defaultRouteDelayWindow = 30 * time.Second

// routeDelayRetry is how often failed routes are retried inside the route-delay window.
const routeDelayRetry = time.Second

// cancelDelayLocked forgets a pending route-delay; netMu is held.
func (r *runner) cancelDelayLocked() {
	r.netGen++
	if r.delay != nil {
		if r.delay.Stop() {
			r.delayWG.Done() // the callback will never run
		}
		r.delay = nil
	}
}

// armDelayLocked schedules route-delay work; netMu is held. delayWG counts the callback
// until it has run or was stopped, so stopDelay can wait for it.
func (r *runner) armDelayLocked(d time.Duration, f func()) {
	r.delayWG.Add(1)
	r.delay = time.AfterFunc(d, func() {
		defer r.delayWG.Done()
		f()
	})
}

// stopDelay cancels pending route-delay work and waits for a callback that already started.
func (r *runner) stopDelay() {
	r.netMu.Lock()
	r.cancelDelayLocked()
	r.netMu.Unlock()
	r.delayWG.Wait()
}

// delayedRoutes applies the full configuration once route-delay is over. On
// Linux the device is ready at once, so OpenVPN's window (how long to wait
// for the adapter) becomes how long failed routes are retried.
func (r *runner) delayedRoutes(gen uint64, rc *routing.Config, deadline time.Time) {
	s := r.s
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if gen != r.netGen || r.router == nil {
		return
	}
	err := r.router.Set(rc)
	if err != nil && time.Now().Add(routeDelayRetry).Before(deadline) {
		s.logf(3, "route-delay: %v; retrying", err)
		r.armDelayLocked(routeDelayRetry, func() { r.delayedRoutes(gen, rc, deadline) })
		return
	}
	if err != nil {
		s.logf(1, "network settings of %s: %v", rc.Link, err)
	}
	s.noteNet(r.withRefusals(err))
	var addrs []netip.Prefix
	for _, a := range rc.Addrs {
		addrs = append(addrs, a.Prefix)
	}
	r.logNet(rc, addrs)
}

// refreshNet re-plans the routes after the underlay changed, so that host
// routes via net_gateway follow a new default gateway and a redirect that
// had no gateway at connect time is applied once one appears.
func (r *runner) refreshNet() {
	r.underlayChanged()
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if r.router == nil {
		return
	}
	err := r.router.Refresh()
	if err != nil {
		r.s.logf(1, "re-applying network settings: %v", err)
	}
	r.s.noteNet(r.withRefusals(err))
}

// withRefusals adds the pushed settings checkPushed refused to what routing
// reported, so that the connected state's reason names them too; netMu is held.
func (r *runner) withRefusals(err error) error {
	errs := []error{err}
	for _, why := range r.refused {
		errs = append(errs, &routing.PolicyError{What: "pushed " + why})
	}
	return errors.Join(errs...)
}

func hasRoutes(rc *routing.Config) bool {
	return len(rc.Routes) > 0 || rc.Redirect != nil || rc.DNS != nil
}

// addressOnly is rc without what route-delay holds back.
func addressOnly(rc *routing.Config) *routing.Config {
	c := *rc
	c.Routes, c.Redirect, c.DNS = nil, nil, nil
	return &c
}

// logNet reports what a configuration asked for, the DNS part in the words
// of the mode that applies it.
func (r *runner) logNet(rc *routing.Config, addrs []netip.Prefix) {
	s := r.s
	redirect := "no"
	if rd := rc.Redirect; rd != nil {
		var fl []string
		if !rd.NoIPv4 {
			if rd.Def1 {
				fl = append(fl, "ipv4 def1")
			} else {
				fl = append(fl, "ipv4")
			}
		}
		if rd.IPv6 {
			fl = append(fl, "ipv6")
		}
		redirect = strings.Join(fl, "+")
	}
	s.logf(1, "%s: addresses %v, %d routes, redirect-gateway %s", rc.Link, addrs, len(rc.Routes), redirect)
	rconf := s.opts.ResolvConf
	if rconf == "" {
		rconf = "/etc/resolv.conf"
	}
	s.logf(1, "%s", dnsText(r.router.DNSMode(), rconf, rc))
}

// dnsText is the DNS line logged at connect.
func dnsText(mode, resolvConf string, rc *routing.Config) string {
	d := rc.DNS
	if d == nil {
		return fmt.Sprintf("DNS: %s; no DNS servers pushed or configured, resolver left alone", mode)
	}
	servers := make([]string, 0, len(d.Servers))
	for _, a := range d.Servers {
		servers = append(servers, a.String())
	}
	domains := append(append([]string(nil), d.Search...), d.RoutingDomains...)
	scope := "split"
	if d.FullTunnel {
		scope = "all names"
	}
	where := ""
	switch mode {
	case routing.ModeResolved:
		where = " on " + rc.Link
	case routing.ModeResolvConf:
		where = " " + resolvConf
	case routing.ModeNone:
		return fmt.Sprintf("DNS: none; servers %s, domains %s not applied", orNone(servers), orNone(domains))
	}
	return fmt.Sprintf("DNS: %s%s: servers %s, domains %s (%s)", mode, where, orNone(servers), orNone(domains), scope)
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, " ")
}

// mergeNet lays pushed network settings over the profile's as OpenVPN does:
// routes and DHCP options add up, everything else pushed replaces the profile's.
func mergeNet(base, pushed *config.NetSettings) *config.NetSettings {
	n := *base
	n.Routes = append(append([]config.Route(nil), base.Routes...), pushed.Routes...)
	n.RoutesIPv6 = append(append([]config.RouteIPv6(nil), base.RoutesIPv6...), pushed.RoutesIPv6...)
	n.DHCPOptions = append(append([]config.DHCPOption(nil), base.DHCPOptions...), pushed.DHCPOptions...)
	if pushed.RouteMetric != 0 {
		n.RouteMetric = pushed.RouteMetric
	}
	if pushed.RouteGateway != nil {
		n.RouteGateway = pushed.RouteGateway
	}
	if pushed.RouteIPv6Gateway.IsValid() {
		n.RouteIPv6Gateway = pushed.RouteIPv6Gateway
	}
	if pushed.RedirectGateway != nil {
		n.RedirectGateway = pushed.RedirectGateway
	}
	if pushed.RedirectPrivate != nil {
		n.RedirectPrivate = pushed.RedirectPrivate
	}
	if pushed.Ifconfig != nil {
		n.Ifconfig = pushed.Ifconfig
	}
	if pushed.IfconfigIPv6 != nil {
		n.IfconfigIPv6 = pushed.IfconfigIPv6
	}
	if pushed.Topology != config.TopologyUnset {
		n.Topology = pushed.Topology
	}
	if pushed.DNS != nil {
		n.DNS = pushed.DNS
	}
	if pushed.BlockIPv6 {
		n.BlockIPv6 = true
	}
	return &n
}
