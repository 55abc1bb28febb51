package routing

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultStateDir is where crash-recovery records live unless Options says otherwise.
const DefaultStateDir = "/run/ovpnd"

// Options configures a Router.
type Options struct {
	// StateDir holds the crash-recovery record; DefaultStateDir if empty.
	StateDir string
	// Instance names the tunnel; it must be unique among running tunnels
	// and is used as the state file name.
	Instance string
	// Logf receives log lines; log.Printf if nil.
	Logf func(format string, args ...any)
	// DNSMode forces a DNS mechanism: "systemd-resolved", "resolv.conf" or
	// "none". Empty detects it at run time.
	DNSMode string
	// ResolvConf is the resolv.conf to rewrite without systemd-resolved;
	// /etc/resolv.conf if empty.
	ResolvConf string
	// Owner is the uid the tunnel runs for (0 for root's tunnels). Unless
	// it is root or MayOverride is set, the tunnel may not take routes or
	// addresses that belong to another owner's tunnel or to the host's own
	// links; see docs/networking.md.
	Owner uint32
	// MayOverride lets a non-root Owner take them anyway (polkit action
	// net.ovpnd1.override).
	MayOverride bool
	// External records the tunnel's network settings in the host ledger as
	// claims without applying them: another program applies them (ovpnd's
	// external network mode, for NetworkManager). Set records, Close and
	// crash cleanup release, and none of them touches the kernel or the
	// resolver. Only root's tunnels (Owner 0) may use it.
	External bool

	// Test seams; nil means the real kernel, bus and files.
	kernel     kernel
	dialBus    func() (resolvedBus, error)
	bypassFunc func(dhcp, dns bool, linkIndex int) []netip.Addr
	pid        int
}

// Router applies Configs of one tunnel. Its methods are safe for concurrent use.
type Router struct {
	k        kernel
	logf     func(string, ...any)
	path     string // state file
	stateDir string
	instance string
	owner    uint32
	// privileged tunnels may take what belongs to other owners.
	privileged bool
	bypass     func(dhcp, dns bool, linkIndex int) []netip.Addr
	preDNS     []netip.Addr

	// external only records claims (Options.External).
	external bool

	mu     sync.Mutex
	st     state
	saved  []byte // the content saveState last wrote to path
	dns    dnsBackend
	last   *Config
	closed bool
}

// New returns a Router for one tunnel. It cleans up a stale record of the
// same instance left by a dead process, and refuses to run beside a live one.
func New(opts Options) (*Router, error) {
	if opts.Instance == "" || !validInstance(opts.Instance) {
		return nil, fmt.Errorf("routing: invalid instance name %q", opts.Instance)
	}
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if opts.ResolvConf == "" {
		opts.ResolvConf = "/etc/resolv.conf"
	}
	if opts.External && opts.Owner != 0 {
		return nil, fmt.Errorf("routing: tunnel %q: only root's tunnels may leave their settings to another program", opts.Instance)
	}
	logf := opts.Logf
	if logf == nil {
		logf = log.Printf
	}
	prefixed := func(format string, args ...any) { logf("routing["+opts.Instance+"]: "+format, args...) }
	k := opts.kernel
	if k == nil {
		nk, err := newNetlinkKernel()
		if err != nil {
			return nil, err
		}
		k = nk
	}
	if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	if err := checkStateDir(opts.StateDir); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	r := &Router{
		k:          k,
		logf:       prefixed,
		path:       filepath.Join(opts.StateDir, opts.Instance+stateSuffix),
		stateDir:   opts.StateDir,
		instance:   opts.Instance,
		owner:      opts.Owner,
		privileged: opts.Owner == 0 || opts.MayOverride,
		bypass:     opts.bypassFunc,
	}
	if r.bypass == nil {
		r.bypass = systemBypassAddrs
	}
	l, err := lockLedger(opts.StateDir, prefixed)
	if err != nil {
		return nil, fmt.Errorf("routing: %w", err)
	}
	if old, err := readState(r.path); err == nil {
		if old.alive() && old.PID != os.Getpid() {
			l.release()
			return nil, fmt.Errorf("routing: instance %q is in use by process %d", opts.Instance, old.PID)
		}
		prefixed("undoing changes left by a previous process (pid %d)", old.PID)
		if err := undoState(k, l.ledger, old, r.path, opts.dialBus, prefixed); err != nil {
			prefixed("cleaning up stale state: %v", err)
		}
		_ = os.Remove(r.path)
	} else if !errors.Is(err, os.ErrNotExist) {
		prefixed("ignoring unreadable state file: %v", err)
		_ = os.Remove(r.path)
	}
	// While other tunnels have rewritten resolv.conf, the host's own DNS
	// servers are in the original the ledger keeps.
	var origNS []netip.Addr
	if base := l.resolvBase(opts.ResolvConf); base != nil && opts.bypassFunc == nil {
		origNS, _, _ = parseResolvConf(base.Orig)
	}
	if err := l.release(); err != nil {
		prefixed("%v", err)
	}
	r.st = newState(opts.Instance, opts.pid)
	if opts.External {
		r.external, r.st.External, r.dns = true, true, noneDNS{}
		prefixed("another program applies the network settings; recording them in the host ledger only")
		return r, nil
	}
	r.dns = chooseDNS(opts, prefixed)
	if p, ok := r.dns.(interface{ setPersist(func(*dnsRecord) error) }); ok {
		p.setPersist(r.persistDNS)
	}
	r.st.DNS = r.dns.record()
	// The pre-VPN DNS servers, read before we can have rewritten them.
	r.preDNS = r.bypass(false, true, 0)
	if origNS != nil {
		r.preDNS = origNS
	}
	prefixed("DNS mode: %s", r.dns.mode())
	return r, nil
}

// DNSMode reports how DNS is configured: "systemd-resolved", "resolv.conf" or "none".
func (r *Router) DNSMode() string { return r.dns.mode() }

// Set makes the tunnel's network state equal cfg, as a diff against what this
// Router applied before. It adds before it deletes, carries on after errors
// and returns them joined; what it changes is recorded in the state file
// before the kernel is touched.
func (r *Router) Set(cfg *Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("routing: Set on a closed Router")
	}
	if r.external {
		return r.withLedger(func(l *ledger) error { return r.recordExternal(l, cfg) })
	}
	return r.withLedger(func(l *ledger) error { return r.setLocked(l, cfg) })
}

// withLedger runs f with the host lock held and the ledger read; the ledger
// is written back afterwards.
func (r *Router) withLedger(f func(l *ledger) error) error {
	l, err := lockLedger(r.stateDir, r.logf)
	if err != nil {
		return fmt.Errorf("routing: %w", err)
	}
	err = f(l.ledger)
	return errors.Join(err, l.release())
}

// Refresh re-applies the last Config; call it when the underlying network
// changed (a new default route), so host routes follow net_gateway.
func (r *Router) Refresh() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("routing: Refresh on a closed Router")
	}
	if r.external {
		return nil // the applier follows the underlying network itself
	}
	return r.withLedger(func(l *ledger) error { return r.setLocked(l, r.last) })
}

// Close undoes everything this Router did and removes its state file.
func (r *Router) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.withLedger(func(l *ledger) error {
		if r.external {
			l.forgetExternal(r.instance)
			return nil
		}
		err := r.setLocked(l, nil)
		if derr := r.dns.close(l); derr != nil {
			err = errors.Join(err, fmt.Errorf("reverting DNS: %w", derr))
		}
		l.dropTunnelIfIdle(r.instance)
		return err
	})
	if err == nil {
		if rerr := os.Remove(r.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = fmt.Errorf("removing state file: %w", rerr)
		}
	} else {
		r.logf("keeping %s for a later cleanup: %v", r.path, err)
	}
	return err
}

func (r *Router) setLocked(l *ledger, cfg *Config) error {
	if cfg != nil && cfg.Link == "" && (len(cfg.Addrs) > 0 || len(cfg.Routes) > 0 || cfg.Redirect != nil || cfg.DNS != nil || cfg.MTU != 0) {
		return errors.New("routing: Config without a Link")
	}
	p, planErr := r.plan(l, cfg)
	if p == nil {
		return planErr
	}
	applyErr := r.apply(l, p)
	r.last = cfg
	return errors.Join(planErr, applyErr)
}

// desired is the kernel state one Config asks for.
type desired struct {
	link      linkInfo
	mtu       int
	addrs     []kaddr
	routes    []kroute   // bypass routes first, so they exist before routes that need them
	displaced []kroute   // foreign routes to remove while the tunnel is up
	full      []routeKey // keys of redirect-gateway routes
	dns       *DNS
}

func (r *Router) apply(l *ledger, p *desired) error {
	var errs []error
	cur := &r.st

	// Work out the diff.
	var addAddrs, delAddrs []kaddr
	for _, a := range p.addrs {
		if !slices.Contains(cur.Addrs, a) {
			addAddrs = append(addAddrs, a)
		}
	}
	for _, a := range cur.Addrs {
		if !slices.Contains(p.addrs, a) {
			delAddrs = append(delAddrs, a)
		}
	}
	var addRoutes, delRoutes []kroute
	for _, rt := range p.routes {
		if !containsRoute(cur.Routes, rt) {
			addRoutes = append(addRoutes, rt)
		}
	}
	for _, rt := range cur.Routes {
		if !containsRoute(p.routes, rt) {
			delRoutes = append(delRoutes, rt)
		}
	}
	var newDisplaced, restore []kroute
	for _, d := range p.displaced {
		if !containsRoute(cur.Displaced, d) {
			newDisplaced = append(newDisplaced, d)
		}
	}
	for _, d := range cur.Displaced {
		if !containsRoute(p.displaced, d) {
			restore = append(restore, d)
		}
	}

	// Record the union before touching the kernel, so that a crash at any
	// point leaves a record covering every change made so far.
	cur.Addrs = append(cur.Addrs, addAddrs...)
	cur.Routes = append(cur.Routes, addRoutes...)
	cur.Displaced = append(cur.Displaced, newDisplaced...)
	if p.mtu > 0 && p.link.MTU != p.mtu && (!cur.MTUSet || cur.MTULink != p.link.Index) {
		if cur.MTUSet && cur.MTULink != p.link.Index {
			errs = append(errs, r.restoreMTU())
		}
		cur.MTUSet, cur.MTULink, cur.OrigMTU = true, p.link.Index, p.link.MTU
	}
	cur.Link, cur.LinkIndex = p.link.Name, p.link.Index
	if err := r.saveState(); err != nil {
		// Without a record a crash would leave changes nobody can undo.
		return errors.Join(append(errs, fmt.Errorf("routing: recording state: %w", err))...)
	}

	// MTU.
	if p.mtu > 0 && p.link.MTU != p.mtu {
		if err := r.k.LinkSetMTU(p.link.Index, p.mtu); err != nil {
			errs = append(errs, fmt.Errorf("setting MTU of %s to %d: %w", p.link.Name, p.mtu, err))
		} else {
			r.logf("set MTU of %s to %d", p.link.Name, p.mtu)
		}
	} else if p.mtu == 0 && cur.MTUSet {
		errs = append(errs, r.restoreMTU())
	}

	// Addresses before routes: gateways must be on-link.
	for _, a := range addAddrs {
		err := r.k.AddrAdd(a)
		switch {
		case err == nil:
			r.logf("added address %v%s on link %d", a.Prefix, peerText(a.Peer), a.LinkIndex)
		case errors.Is(err, unix.EEXIST):
			// Someone else (the session) put it there; it is not ours to remove.
			cur.Addrs = slices.DeleteFunc(cur.Addrs, func(x kaddr) bool { return x == a })
		default:
			cur.Addrs = slices.DeleteFunc(cur.Addrs, func(x kaddr) bool { return x == a })
			errs = append(errs, fmt.Errorf("adding address %v: %w", a.Prefix, err))
		}
	}

	// Routes, through the host ledger: a route at a key another tunnel
	// holds goes on top of it (the most recent wins) and hands the key
	// back when it goes; the host's own route at a key comes back only
	// when the last tunnel there is gone. Adds and takeovers first, then
	// displacements, restores, and releases, so that no instant lacks a
	// route while any tunnel wants one.
	full := func(rt kroute) bool { return slices.Contains(p.full, rt.key()) }
	for _, rt := range addRoutes {
		if err := r.claimRoute(l, rt, full(rt)); err != nil {
			cur.Routes = deleteRoute(cur.Routes, rt)
			errs = append(errs, fmt.Errorf("adding route %s: %w", r.routeText(rt), err))
			continue
		}
		r.logf("added route %s", r.routeText(rt))
	}
	for _, d := range newDisplaced {
		if slices.ContainsFunc(p.routes, func(rt kroute) bool { return rt.key() == d.key() }) {
			// Our route at the same key took its place; the ledger keeps
			// it as the key's base route.
			cur.Displaced = deleteRoute(cur.Displaced, d)
			continue
		}
		if err := r.displace(l, d); err != nil {
			cur.Displaced = deleteRoute(cur.Displaced, d)
			errs = append(errs, fmt.Errorf("removing route %s: %w", r.routeText(d), err))
		} else {
			r.logf("removed route %s while the tunnel is up", r.routeText(d))
		}
	}
	for _, d := range restore {
		outcome, err := r.undisplace(l, d)
		switch {
		case outcome == stillNeeded:
			r.logf("route %s stays removed: another tunnel still replaces it", r.routeText(d))
		case outcome == restoredLater:
			r.logf("route %s comes back when the tunnels holding its place are gone", r.routeText(d))
		case err == nil:
			r.logf("restored route %s", r.routeText(d))
		case errors.Is(err, unix.EEXIST):
			r.logf("not restoring route %s: another route took its place", r.routeText(d))
		case isGone(err) || errors.Is(err, unix.ENETUNREACH):
			r.logf("not restoring route %s: its link or gateway is gone", r.routeText(d))
		default:
			errs = append(errs, fmt.Errorf("restoring route %s: %w", r.routeText(d), err))
			continue // keep it recorded so CleanUp can try again
		}
		cur.Displaced = deleteRoute(cur.Displaced, d)
	}
	for _, rt := range delRoutes {
		if c, ok := l.claimOf(r.instance, rt.key()); ok && !c.Route.sameRoute(rt) {
			// A new route of ours took this key over already.
			cur.Routes = deleteRoute(cur.Routes, rt)
			continue
		}
		if err := r.releaseRoute(l, rt); err != nil {
			errs = append(errs, fmt.Errorf("removing route %s: %w", r.routeText(rt), err))
			continue
		}
		r.logf("removed route %s", r.routeText(rt))
		cur.Routes = deleteRoute(cur.Routes, rt)
	}
	for _, a := range delAddrs {
		if err := r.k.AddrDel(a); err != nil && !isGone(err) {
			errs = append(errs, fmt.Errorf("removing address %v: %w", a.Prefix, err))
			continue
		}
		r.logf("removed address %v%s from link %d", a.Prefix, peerText(a.Peer), a.LinkIndex)
		cur.Addrs = slices.DeleteFunc(cur.Addrs, func(x kaddr) bool { return x == a })
	}

	// DNS last: the servers are reachable only once the routes exist.
	if err := r.dns.set(l, p.link.Index, p.dns); err != nil {
		errs = append(errs, &DNSError{Err: err})
	}
	cur.DNS = r.dns.record()
	r.recordTunnel(l, p)

	if err := r.saveState(); err != nil {
		errs = append(errs, fmt.Errorf("routing: recording state: %w", err))
	}
	return errors.Join(errs...)
}

// persistDNS records a DNS change before the backend makes it; it runs
// with r.mu held (from Set or Close).
func (r *Router) persistDNS(rec *dnsRecord) error {
	r.st.DNS = rec
	return r.saveState()
}

// saveState writes the Router's record (r.st) unless the file already says the same: Set
// records the union of old and new state before it changes the kernel and the outcome after,
// which are usually equal.
func (r *Router) saveState() error {
	b, err := marshalRecord(&r.st)
	if err != nil {
		return err
	}
	if bytes.Equal(b, r.saved) {
		return nil
	}
	r.saved = nil
	if err := writeRecordBytes(r.path, b, r.st.durable()); err != nil {
		return err
	}
	r.saved = b
	return nil
}

// recordTunnel keeps the tunnel's entry in the ledger current: what the
// policy on other owners' tunnels needs to know about this one.
func (r *Router) recordTunnel(l *ledger, p *desired) {
	if p.link.Index == 0 && len(r.st.Routes) == 0 {
		if t := l.tunnel(r.instance, false); t != nil {
			t.Addrs, t.Domains, t.LinkIndex = nil, nil, 0
		}
		l.dropTunnelIfIdle(r.instance)
		return
	}
	t := l.tunnel(r.instance, true)
	t.Owner, t.Privileged, t.LinkIndex = r.owner, r.privileged, p.link.Index
	t.Addrs = t.Addrs[:0]
	for _, a := range p.addrs {
		t.Addrs = append(t.Addrs, a.Prefix)
	}
	t.Domains = nil
	if p.dns != nil {
		t.Domains = append(slices.Clone(p.dns.Search), p.dns.RoutingDomains...)
	}
}

// DNSError reports that the DNS part of a Config could not be applied while
// the rest may have been: the tunnel works, but names may resolve outside it
// or not at all. Sessions show it as a degraded state.
type DNSError struct{ Err error }

func (e *DNSError) Error() string { return "configuring DNS: " + e.Err.Error() }
func (e *DNSError) Unwrap() error { return e.Err }

func (r *Router) restoreMTU() error {
	st := &r.st
	if !st.MTUSet {
		return nil
	}
	st.MTUSet = false
	err := r.k.LinkSetMTU(st.MTULink, st.OrigMTU)
	if err != nil && !isGone(err) {
		return fmt.Errorf("restoring MTU %d of link %d: %w", st.OrigMTU, st.MTULink, err)
	}
	if err == nil {
		r.logf("restored MTU %d of link %d", st.OrigMTU, st.MTULink)
	}
	return nil
}

func (r *Router) routeText(rt kroute) string {
	s := rt.Dst.String()
	if rt.Gw.IsValid() {
		s += " via " + rt.Gw.String()
	}
	name := fmt.Sprintf("#%d", rt.LinkIndex)
	if rt.LinkIndex == r.st.LinkIndex && r.st.Link != "" {
		name = r.st.Link
	} else if li, err := r.k.LinkByIndex(rt.LinkIndex); err == nil {
		name = li.Name
	}
	s += " dev " + name
	if rt.Metric != 0 {
		s += fmt.Sprintf(" metric %d", rt.Metric)
	}
	return s
}

func peerText(p netip.Addr) string {
	if p.IsValid() {
		return " peer " + p.String()
	}
	return ""
}

func containsRoute(rs []kroute, rt kroute) bool { return slices.ContainsFunc(rs, rt.sameRoute) }

func deleteRoute(rs []kroute, rt kroute) []kroute {
	return slices.DeleteFunc(rs, rt.sameRoute)
}

func validInstance(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '@') {
			return false
		}
	}
	return s != "." && s != ".."
}
