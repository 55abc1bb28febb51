package session

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/ovpnd/ovpnd/config"
	"github.com/ovpnd/ovpnd/engine"
	"github.com/ovpnd/ovpnd/engine/datachannel"
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
	s.setState(StateIdle, "")
	r := &runner{s: s, cfg: s.cfg}
	defer func() {
		if terr := r.teardown(); terr != nil {
			s.logf(0, "teardown: %v", terr)
			if err == nil {
				err = terr
			}
		}
		reason := ""
		if err != nil {
			reason = err.Error()
		}
		s.setState(StateDisconnected, reason)
	}()
	return r.run(ctx)
}

// runner is the state of Run: what outlives a single connection attempt.
type runner struct {
	s   *Session
	cfg *config.Config

	router netRouter
	tun    tunDevice
	link   string
	dp     *dataPath
	txDone chan struct{} // closed when the tun reader returns

	creds credentials
	order []int // connection indexes in try order
}

func (r *runner) run(ctx context.Context) error {
	s := r.s
	newRouter := s.opts.newRouter
	if newRouter == nil {
		newRouter = func(o routing.Options) (netRouter, error) { return routing.New(o) }
	}
	if r.cfg.DevType != config.DevNull {
		rt, err := newRouter(routing.Options{StateDir: s.opts.StateDir, Instance: s.opts.Name, Logf: func(f string, a ...any) { s.logf(2, f, a...) }})
		if err != nil {
			return fmt.Errorf("setting up routing: %w", err)
		}
		r.router = rt
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
		switch out.kind {
		case outExit:
			return nil
		case outFatal:
			return out.err
		}
		if out.connected {
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
		s.setState(StateReconnecting, out.reason)
		if !r.persistTun() {
			r.closeTun()
		}
		if wait > 0 {
			s.logf(1, "restarting in %v", wait)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			case q := <-s.reqs:
				if q.kind == reqDisconnect {
					return nil
				}
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
	addrs, err := r.resolve(ctx, conn)
	if err != nil {
		if ctx.Err() != nil {
			return outcome{kind: outExit}
		}
		s.logf(0, "resolving %s: %v", conn.Remote, err)
		return outcome{kind: outRetry, reason: fmt.Sprintf("resolving %s: %v", conn.Remote, err)}
	}
	var last outcome
	for _, a := range addrs {
		last = r.attempt(ctx, conn, netip.AddrPortFrom(a, conn.Port))
		if last.kind != outRetry || last.connected {
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
	deadline := time.Now().Add(r.cfg.ResolvRetry)
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ips, err := net.DefaultResolver.LookupNetIP(rctx, network, conn.Remote)
		cancel()
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
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Second):
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
	t, link, err := open(name, mtu)
	if err != nil {
		return fmt.Errorf("opening tun device %s: %w", name, err)
	}
	r.tun, r.link = t, link
	r.dp = newDataPath(t, &r.s.cnt, dataPathConfig{Headroom: datachannel.Headroom, Tailroom: datachannel.Tailroom, MTU: mtu},
		func(f string, a ...any) { r.s.logf(4, f, a...) })
	r.txDone = make(chan struct{})
	go func(dp *dataPath, done chan struct{}) {
		defer close(done)
		dp.RoutineTunToSocket()
	}(r.dp, r.txDone)
	r.s.mu.Lock()
	r.s.status.Link = link
	r.s.mu.Unlock()
	r.s.logf(1, "opened tun device %s (mtu %d)", link, mtu)
	return nil
}

func openKernelTun(name string, mtu int) (tunDevice, string, error) {
	d, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, "", err
	}
	link, err := d.Name()
	if err != nil {
		d.Close()
		return nil, "", err
	}
	if err := setLinkUp(link); err != nil {
		d.Close()
		return nil, "", err
	}
	return d, link, nil
}

// closeTun removes the network settings and closes the device.
func (r *runner) closeTun() error {
	var errs []error
	if r.router != nil {
		if err := r.router.Set(nil); err != nil {
			errs = append(errs, fmt.Errorf("removing network settings: %w", err))
		}
	}
	if r.tun != nil {
		r.dp.closing.Store(true)
		if err := r.tun.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing tun device: %w", err))
		}
		<-r.txDone
		r.tun, r.dp, r.link = nil, nil, ""
	}
	return errors.Join(errs...)
}

func (r *runner) teardown() error {
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
	if conn.Proto == config.ProtoTCP {
		return dialTCP(dctx, remote, o)
	}
	return dialUDP(dctx, remote, o)
}

// applyPush merges the pushed network settings over the profile's and hands
// the result to routing. Pushed options the allow-list drops are logged.
func (r *runner) applyPush(options []string, server netip.Addr) error {
	s := r.s
	s.logf(3, "PUSH_REPLY: %s", strings.Join(options, ","))
	p, warns, err := r.cfg.ParsePush(options)
	for _, w := range warns {
		s.logf(2, "%v", w)
	}
	if err != nil {
		return err
	}
	if p.AuthToken != "" {
		r.creds.token = p.AuthToken
		if p.AuthTokenUser != "" {
			r.creds.tokenUser = p.AuthTokenUser
		}
	}
	n := mergeNet(&r.cfg.Net, &p.Net)
	mtu := r.cfg.TunMTU
	if p.TunMTU != nil && *p.TunMTU > 0 {
		mtu = *p.TunMTU
	}
	if r.router == nil {
		return nil
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
	if err := r.router.Set(rc); err != nil {
		return fmt.Errorf("configuring %s: %w", r.link, err)
	}
	var addrs []netip.Prefix
	for _, a := range rc.Addrs {
		addrs = append(addrs, a.Prefix)
	}
	s.mu.Lock()
	s.status.Addrs = addrs
	s.mu.Unlock()
	s.logf(1, "%s: addresses %v, %d routes, redirect-gateway %v, DNS %v", r.link, addrs, len(rc.Routes), rc.Redirect != nil, rc.DNS != nil)
	return nil
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
