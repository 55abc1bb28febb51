package routing

import (
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
	instance string
	bypass   func(dhcp, dns bool, linkIndex int) []netip.Addr
	preDNS   []netip.Addr

	mu     sync.Mutex
	st     state
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
		k:        k,
		logf:     prefixed,
		path:     filepath.Join(opts.StateDir, opts.Instance+stateSuffix),
		instance: opts.Instance,
		bypass:   opts.bypassFunc,
	}
	if r.bypass == nil {
		r.bypass = systemBypassAddrs
	}
	if old, err := readState(r.path); err == nil {
		if old.alive() && old.PID != os.Getpid() {
			return nil, fmt.Errorf("routing: instance %q is in use by process %d", opts.Instance, old.PID)
		}
		prefixed("undoing changes left by a previous process (pid %d)", old.PID)
		if err := undoState(k, old, r.path, opts.dialBus, prefixed); err != nil {
			prefixed("cleaning up stale state: %v", err)
		}
		_ = os.Remove(r.path)
	} else if !errors.Is(err, os.ErrNotExist) {
		prefixed("ignoring unreadable state file: %v", err)
		_ = os.Remove(r.path)
	}
	r.st = newState(opts.Instance, opts.pid)
	r.dns = chooseDNS(opts, prefixed)
	if p, ok := r.dns.(interface{ setPersist(func(*dnsRecord) error) }); ok {
		p.setPersist(r.persistDNS)
	}
	r.st.DNS = r.dns.record()
	// The pre-VPN DNS servers, read before we can have rewritten them.
	r.preDNS = r.bypass(false, true, 0)
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
	return r.setLocked(cfg)
}

// Refresh re-applies the last Config; call it when the underlying network
// changed (a new default route), so host routes follow net_gateway.
func (r *Router) Refresh() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("routing: Refresh on a closed Router")
	}
	return r.setLocked(r.last)
}

// Close undoes everything this Router did and removes its state file.
func (r *Router) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.setLocked(nil)
	if derr := r.dns.close(); derr != nil {
		err = errors.Join(err, fmt.Errorf("reverting DNS: %w", derr))
	}
	if err == nil {
		if rerr := os.Remove(r.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = fmt.Errorf("removing state file: %w", rerr)
		}
	} else {
		r.logf("keeping %s for a later cleanup: %v", r.path, err)
	}
	return err
}

func (r *Router) setLocked(cfg *Config) error {
	if cfg != nil && cfg.Link == "" && (len(cfg.Addrs) > 0 || len(cfg.Routes) > 0 || cfg.Redirect != nil || cfg.DNS != nil || cfg.MTU != 0) {
		return errors.New("routing: Config without a Link")
	}
	p, planErr := r.plan(cfg)
	if p == nil {
		return planErr
	}
	applyErr := r.apply(p)
	r.last = cfg
	return errors.Join(planErr, applyErr)
}

// desired is the kernel state one Config asks for.
type desired struct {
	link      linkInfo
	mtu       int
	addrs     []kaddr
	routes    []kroute // bypass routes first, so they exist before routes that need them
	displaced []kroute // foreign routes to remove while the tunnel is up
	dns       *DNS
}

func (r *Router) apply(p *desired) error {
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
	if err := writeState(r.path, cur); err != nil {
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

	// Routes: add (or replace where the kernel key is taken by a route we
	// are about to drop anyway or are displacing).
	gone := map[int]bool{} // indexes into delRoutes already replaced
	displacedDone := map[int]bool{}
	for _, rt := range addRoutes {
		var err error
		replaced := false
		for i, d := range delRoutes {
			if !gone[i] && d.key() == rt.key() {
				err, replaced, gone[i] = r.k.RouteReplace(rt), true, true
				break
			}
		}
		if !replaced {
			for i, d := range newDisplaced {
				if !displacedDone[i] && d.key() == rt.key() {
					err, replaced, displacedDone[i] = r.k.RouteReplace(rt), true, true
					break
				}
			}
		}
		if !replaced {
			err = r.k.RouteAdd(rt)
		}
		switch {
		case err == nil:
			r.logf("added route %s", r.routeText(rt))
		case errors.Is(err, unix.EEXIST) && r.identicalExists(rt):
			// Another tunnel to the same server installed the same host
			// route; share it and leave its removal to its owner.
			r.logf("route %s already present; not taking ownership", r.routeText(rt))
			cur.Routes = deleteRoute(cur.Routes, rt)
		default:
			cur.Routes = deleteRoute(cur.Routes, rt)
			errs = append(errs, fmt.Errorf("adding route %s: %w", r.routeText(rt), err))
		}
	}
	for i, d := range newDisplaced {
		if displacedDone[i] {
			r.logf("replaced route %s", r.routeText(d))
			continue
		}
		if err := r.k.RouteDel(d); err != nil && !isGone(err) {
			cur.Displaced = deleteRoute(cur.Displaced, d)
			errs = append(errs, fmt.Errorf("removing route %s: %w", r.routeText(d), err))
		} else {
			r.logf("removed route %s while the tunnel is up", r.routeText(d))
		}
	}
	for _, d := range restore {
		err := r.k.RouteAdd(d)
		if errors.Is(err, unix.EEXIST) {
			for i, o := range delRoutes {
				if !gone[i] && o.key() == d.key() {
					err, gone[i] = r.k.RouteReplace(d), true
					break
				}
			}
		}
		switch {
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
	for i, rt := range delRoutes {
		if !gone[i] {
			if err := r.k.RouteDel(rt); err != nil && !isGone(err) {
				errs = append(errs, fmt.Errorf("removing route %s: %w", r.routeText(rt), err))
				continue
			}
			r.logf("removed route %s", r.routeText(rt))
		}
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
	if err := r.dns.set(p.link.Index, p.dns); err != nil {
		errs = append(errs, fmt.Errorf("configuring DNS: %w", err))
	}
	cur.DNS = r.dns.record()

	if err := writeState(r.path, cur); err != nil {
		errs = append(errs, fmt.Errorf("routing: recording state: %w", err))
	}
	return errors.Join(errs...)
}

// persistDNS records a DNS change before the backend makes it; it runs
// with r.mu held (from Set or Close).
func (r *Router) persistDNS(rec *dnsRecord) error {
	r.st.DNS = rec
	return writeState(r.path, &r.st)
}

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

func (r *Router) identicalExists(rt kroute) bool {
	fam := unix.AF_INET6
	if rt.Dst.Addr().Is4() {
		fam = unix.AF_INET
	}
	rs, err := r.k.RouteList(fam)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(rs, rt.sameRoute)
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
