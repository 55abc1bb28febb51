package routing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// The host ledger is the one owner of the host's network state shared by
// every tunnel: every Router of every ovpnd process using the same state
// directory takes its lock for each change, reads it, changes the kernel and
// writes it back. See docs/networking.md.
const (
	ledgerName    = "host.json"
	ledgerVersion = 1
	// maxLedgerSize bounds what we read back.
	maxLedgerSize = 16 << 20
)

// ledger is the host-wide record of who holds which shared piece of network
// state.
type ledger struct {
	Version int    `json:"version"`
	Seq     uint64 `json:"seq"`
	// Tunnels are the tunnels that hold something (routes or DNS).
	Tunnels []*ledgerTunnel `json:"tunnels,omitempty"`
	// Keys are the kernel route keys (destination, metric, table) tunnels
	// hold, with every claimant: the last claim is the route in the kernel.
	Keys []*ledgerKey `json:"keys,omitempty"`
	// Displaced are host routes of another key that tunnels removed while
	// they are up (the default route a redirect replaces); each is restored
	// when the last tunnel needing it is gone.
	Displaced []*ledgerDisplaced `json:"displaced,omitempty"`
	// ResolvConfs are the originals of the resolv.conf files tunnels rewrote.
	ResolvConfs []*ledgerResolv `json:"resolv_confs,omitempty"`
}

// ledgerTunnel is what one tunnel holds beyond its routes.
type ledgerTunnel struct {
	ID string `json:"id"`
	// Owner is the uid the tunnel runs for; Privileged says whether it may
	// take what belongs to other owners (root, or authorized to override).
	Owner      uint32 `json:"owner"`
	Privileged bool   `json:"privileged,omitempty"`
	LinkIndex  int    `json:"link_index,omitempty"`
	// Addrs are the tunnel's addresses (for the policy on other owners).
	Addrs []netip.Prefix `json:"addrs,omitempty"`
	// Domains are its DNS search and routing domains (for the policy).
	Domains []string `json:"domains,omitempty"`
	// DNS is the resolver configuration it applied in resolv.conf mode to
	// ResolvConf; DNSSeq orders the tunnels (most recent first).
	DNS        *DNS   `json:"dns,omitempty"`
	ResolvConf string `json:"resolv_conf,omitempty"`
	DNSSeq     uint64 `json:"dns_seq,omitempty"`
	// External marks a tunnel whose addresses, routes and DNS another
	// program applies (NetworkManager, for ovpnd's external network mode):
	// its Addrs, Domains and Recorded are claims recorded only, for the
	// policy on other owners and to tell its routes from the host's. Nothing
	// of it is in Keys, Displaced or ResolvConfs, and releasing it never
	// touches the kernel or a resolver.
	External bool `json:"external,omitempty"`
	// Recorded are an External tunnel's routes.
	Recorded []recordedRoute `json:"recorded,omitempty"`
}

// recordedRoute is a route of an External tunnel: installed by its applier
// on the tunnel's link (or, for the server, outside it), never by ovpnd.
type recordedRoute struct {
	Dst netip.Prefix `json:"dst"`
	// Full marks the default route of a redirect-gateway, as claim.Full.
	Full bool `json:"full,omitempty"`
}

// ledgerKey is one kernel route key and who claims it.
type ledgerKey struct {
	Key    routeKey `json:"key"`
	Claims []claim  `json:"claims"`
	// Base is the host's route that held the key before the first claim;
	// it comes back when the last claim goes.
	Base *kroute `json:"base,omitempty"`
}

// claim is one tunnel's route at a key.
type claim struct {
	Tunnel string `json:"tunnel"`
	Route  kroute `json:"route"`
	// Full marks redirect-gateway routes: they are shared by every full
	// tunnel (the most recent wins) and are never a path outside the tunnel.
	Full bool `json:"full,omitempty"`
}

// ledgerDisplaced is a displaced host route and the tunnels that need it gone.
type ledgerDisplaced struct {
	Route   kroute   `json:"route"`
	Tunnels []string `json:"tunnels"`
}

// ledgerResolv is the original of a resolv.conf that tunnels rewrote.
type ledgerResolv struct {
	Path          string `json:"path"`
	Orig          []byte `json:"orig,omitempty"`
	SymlinkTarget string `json:"symlink_target,omitempty"`
	WasAbsent     bool   `json:"was_absent,omitempty"`
}

// lockedLedger is the ledger read under the host lock; release writes it
// back and unlocks.
type lockedLedger struct {
	*ledger
	f    *os.File
	path string
	read []byte // the file's content when locked: release skips writing the same back
}

// lockLedger takes the host lock of stateDir (waiting for other processes)
// and reads the ledger. The lock is a flock on the state directory itself:
// it needs no file that would outlive the tunnels (and a lock file cannot
// be removed safely while others may wait on it). An unreadable ledger is
// logged and started afresh: the per-tunnel records still let each tunnel
// undo its own changes.
func lockLedger(stateDir string, logf func(string, ...any)) (*lockedLedger, error) {
	f, err := os.OpenFile(stateDir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the state directory to lock it: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("taking the host lock: %w", err)
	}
	l := &lockedLedger{f: f, path: filepath.Join(stateDir, ledgerName)}
	l.read, err = readRecord(l.path, maxLedgerSize)
	if err == nil {
		l.ledger, err = parseLedger(l.read)
	}
	if err != nil {
		l.read = nil
		if !errors.Is(err, os.ErrNotExist) {
			logf("starting a new host ledger: %v", err)
		}
		l.ledger = &ledger{Version: ledgerVersion}
	}
	return l, nil
}

// release writes the ledger back (or removes it when it holds nothing) and
// drops the lock.
func (l *lockedLedger) release() error {
	var err error
	if l.empty() {
		if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = rerr
		}
	} else {
		err = l.write()
	}
	l.f.Close() // closing drops the flock
	if err != nil {
		return fmt.Errorf("routing: recording the host ledger: %w", err)
	}
	return nil
}

func (l *lockedLedger) write() error {
	b, err := marshalRecord(l.ledger)
	if err != nil {
		return err
	}
	if bytes.Equal(b, l.read) {
		return nil
	}
	// The originals of rewritten resolv.conf files must be on the disk before the files
	// change (see writeRecord); everything else the ledger holds dies with the kernel.
	return writeRecordBytes(l.path, b, len(l.ledger.ResolvConfs) > 0)
}

func readLedger(path string) (*ledger, error) {
	b, err := readRecord(path, maxLedgerSize)
	if err != nil {
		return nil, err
	}
	return parseLedger(b)
}

func parseLedger(b []byte) (*ledger, error) {
	var l ledger
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("parsing the host ledger: %w", err)
	}
	if l.Version != ledgerVersion {
		return nil, fmt.Errorf("parsing the host ledger: unknown version %d", l.Version)
	}
	for _, k := range l.Keys {
		if k == nil || len(k.Claims) == 0 {
			return nil, errors.New("parsing the host ledger: a key without claims")
		}
	}
	if slices.Contains(l.Tunnels, nil) || slices.Contains(l.Displaced, nil) || slices.Contains(l.ResolvConfs, nil) {
		return nil, errors.New("parsing the host ledger: null entry")
	}
	return &l, nil
}

func (l *ledger) empty() bool {
	return len(l.Tunnels) == 0 && len(l.Keys) == 0 && len(l.Displaced) == 0 && len(l.ResolvConfs) == 0
}

// tunnel returns the entry of id, creating it when create is set.
func (l *ledger) tunnel(id string, create bool) *ledgerTunnel {
	for _, t := range l.Tunnels {
		if t.ID == id {
			return t
		}
	}
	if !create {
		return nil
	}
	t := &ledgerTunnel{ID: id}
	l.Tunnels = append(l.Tunnels, t)
	return t
}

// dropTunnel forgets id's entry once it holds nothing any more.
func (l *ledger) dropTunnelIfIdle(id string) {
	t := l.tunnel(id, false)
	if t == nil || t.DNS != nil {
		return
	}
	for _, k := range l.Keys {
		if slices.ContainsFunc(k.Claims, func(c claim) bool { return c.Tunnel == id }) {
			return
		}
	}
	for _, d := range l.Displaced {
		if slices.Contains(d.Tunnels, id) {
			return
		}
	}
	l.Tunnels = slices.DeleteFunc(l.Tunnels, func(t *ledgerTunnel) bool { return t.ID == id })
}

func (l *ledger) key(k routeKey) *ledgerKey {
	for _, e := range l.Keys {
		if e.Key == k {
			return e
		}
	}
	return nil
}

// claimOf returns id's claim at key k.
func (l *ledger) claimOf(id string, k routeKey) (claim, bool) {
	if e := l.key(k); e != nil {
		for _, c := range e.Claims {
			if c.Tunnel == id {
				return c, true
			}
		}
	}
	return claim{}, false
}

// tunnelRoute reports whether rt is a route some tunnel claims (in the
// kernel or waiting below a newer claim, or installed by an External
// tunnel's applier), and whether it is a full-tunnel one.
func (l *ledger) tunnelRoute(rt kroute) (held, full bool) {
	if e := l.key(rt.key()); e != nil {
		for _, c := range e.Claims {
			if c.Route.sameRoute(rt) {
				return true, c.Full
			}
		}
	}
	return l.externalRoute(rt)
}

// externalRoute reports whether rt, on an External tunnel's link, is one of
// the routes that tunnel recorded, and whether it is a full-tunnel one: its
// applier chose the metric, so only the destination and link must match.
func (l *ledger) externalRoute(rt kroute) (held, full bool) {
	for _, t := range l.Tunnels {
		if !t.External || t.LinkIndex == 0 || t.LinkIndex != rt.LinkIndex {
			continue
		}
		for _, c := range t.Recorded {
			if c.Dst == rt.Dst {
				return true, c.Full
			}
		}
	}
	return false, false
}

// otherClaims are the claims of every tunnel but id.
func (l *ledger) otherClaims(id string) []claim {
	var out []claim
	for _, e := range l.Keys {
		for _, c := range e.Claims {
			if c.Tunnel != id {
				out = append(out, c)
			}
		}
	}
	for _, t := range l.Tunnels {
		if !t.External || t.ID == id {
			continue
		}
		for _, c := range t.Recorded {
			out = append(out, claim{Tunnel: t.ID, Route: kroute{Dst: c.Dst, LinkIndex: t.LinkIndex}, Full: c.Full})
		}
	}
	return out
}

// claimRoute makes rt tunnel id's route at its key: it adds it to the
// kernel, on top of whatever other tunnels hold there (the most recent
// claim wins), keeping a host route found at the key as the base to put
// back later. old is id's previous route at the key, if any.
func (r *Router) claimRoute(l *ledger, rt kroute, full bool) error {
	id := r.instance
	e := l.key(rt.key())
	if e != nil {
		i := slices.IndexFunc(e.Claims, func(c claim) bool { return c.Tunnel == id })
		top := i == len(e.Claims)-1
		if i >= 0 {
			// Our own route at this key changes (a new gateway).
			e.Claims[i] = claim{Tunnel: id, Route: rt, Full: full}
			if !top {
				return nil // a newer tunnel's route is in the kernel; ours waits below
			}
			return r.k.RouteReplace(rt)
		}
		if err := r.k.RouteReplace(rt); err != nil {
			return err
		}
		e.Claims = append(e.Claims, claim{Tunnel: id, Route: rt, Full: full})
		return nil
	}
	e = &ledgerKey{Key: rt.key()}
	err := r.k.RouteAdd(rt)
	if errors.Is(err, unix.EEXIST) {
		// The host has a route at this key: keep it to put back, and
		// take the key over atomically.
		if base, ok := r.kernelRouteAt(rt.key()); ok {
			if base.sameRoute(rt) {
				err = nil // the very same route; nothing to change
			} else {
				err = r.k.RouteReplace(rt)
			}
			if err == nil {
				e.Base = &base
			}
		}
	}
	if err != nil {
		return err
	}
	e.Claims = append(e.Claims, claim{Tunnel: id, Route: rt, Full: full})
	l.Keys = append(l.Keys, e)
	return nil
}

// releaseRoute drops tunnel id's claim at rt's key. When it was the route
// in the kernel, the next most recent claim takes its place atomically
// (route replace), else the host's base route, else the route is deleted.
func (r *Router) releaseRoute(l *ledger, rt kroute) error {
	id := r.instance
	e := l.key(rt.key())
	if e == nil {
		// Not in the ledger (recorded before a crash that lost it): ours alone.
		return r.delIfPresent(rt)
	}
	i := slices.IndexFunc(e.Claims, func(c claim) bool { return c.Tunnel == id })
	if i < 0 {
		return nil
	}
	top := i == len(e.Claims)-1
	e.Claims = slices.Delete(e.Claims, i, i+1)
	if !top {
		return nil
	}
	for len(e.Claims) > 0 {
		next := e.Claims[len(e.Claims)-1]
		err := r.k.RouteReplace(next.Route)
		if err == nil {
			r.logf("route %s of tunnel %s takes over", r.routeText(next.Route), next.Tunnel)
			return nil
		}
		if !isGone(err) && !errors.Is(err, unix.ENETUNREACH) {
			return fmt.Errorf("handing route %s back to tunnel %s: %w", r.routeText(next.Route), next.Tunnel, err)
		}
		// That tunnel's link is gone (it died): its claim is void.
		e.Claims = e.Claims[:len(e.Claims)-1]
	}
	l.Keys = slices.DeleteFunc(l.Keys, func(x *ledgerKey) bool { return x == e })
	if e.Base != nil {
		err := r.k.RouteReplace(*e.Base)
		switch {
		case err == nil:
			r.logf("restored route %s", r.routeText(*e.Base))
			return nil
		case isGone(err) || errors.Is(err, unix.ENETUNREACH):
			r.logf("not restoring route %s: its link or gateway is gone", r.routeText(*e.Base))
		default:
			return fmt.Errorf("restoring route %s: %w", r.routeText(*e.Base), err)
		}
	}
	return r.delIfPresent(rt)
}

func (r *Router) delIfPresent(rt kroute) error {
	if err := r.k.RouteDel(rt); err != nil && !isGone(err) {
		return err
	}
	return nil
}

// kernelRouteAt finds the kernel's route at key k.
func (r *Router) kernelRouteAt(k routeKey) (kroute, bool) {
	rs, err := r.k.RouteList(family(k.Dst.Addr()))
	if err != nil {
		return kroute{}, false
	}
	for _, rt := range rs {
		if rt.key() == k {
			return rt, true
		}
	}
	return kroute{}, false
}

// displace removes host route d while tunnel id needs it gone; a route
// displaced by another tunnel already is only referenced.
func (r *Router) displace(l *ledger, d kroute) error {
	for _, e := range l.Displaced {
		if e.Route.sameRoute(d) {
			if !slices.Contains(e.Tunnels, r.instance) {
				e.Tunnels = append(e.Tunnels, r.instance)
			}
			return nil
		}
	}
	if err := r.k.RouteDel(d); err != nil && !isGone(err) {
		return err
	}
	l.Displaced = append(l.Displaced, &ledgerDisplaced{Route: d, Tunnels: []string{r.instance}})
	return nil
}

// Outcomes of undisplace.
const (
	restoredNow   = iota // put back in the kernel
	stillNeeded          // another tunnel still needs it gone
	restoredLater        // a tunnel holds its key now; it comes back after the last one
)

// undisplace drops tunnel id's need for d gone; the last one restores it.
func (r *Router) undisplace(l *ledger, d kroute) (int, error) {
	i := slices.IndexFunc(l.Displaced, func(e *ledgerDisplaced) bool { return e.Route.sameRoute(d) })
	if i >= 0 {
		e := l.Displaced[i]
		e.Tunnels = slices.DeleteFunc(e.Tunnels, func(t string) bool { return t == r.instance })
		if len(e.Tunnels) > 0 {
			return stillNeeded, nil
		}
		l.Displaced = slices.Delete(l.Displaced, i, i+1)
	}
	if e := l.key(d.key()); e != nil {
		if e.Base == nil {
			e.Base = &d
		}
		return restoredLater, nil
	}
	return restoredNow, r.k.RouteAdd(d)
}

// displacedRoutes lists every displaced host route (candidates for
// net_gateway while they are out of the kernel).
func (l *ledger) displacedRoutes() []kroute {
	var out []kroute
	for _, d := range l.Displaced {
		out = append(out, d.Route)
	}
	for _, k := range l.Keys {
		if k.Base != nil {
			out = append(out, *k.Base)
		}
	}
	return out
}

// orphans builds a record for each tunnel the ledger knows that gone says
// has no record of its own, so that it can be undone like a dead tunnel.
func (l *ledger) orphans(gone func(id string) bool) []*state {
	var ids []string
	add := func(id string) {
		if validInstance(id) && !slices.Contains(ids, id) && gone(id) {
			ids = append(ids, id)
		}
	}
	for _, t := range l.Tunnels {
		add(t.ID)
	}
	for _, k := range l.Keys {
		for _, c := range k.Claims {
			add(c.Tunnel)
		}
	}
	for _, d := range l.Displaced {
		for _, t := range d.Tunnels {
			add(t)
		}
	}
	var out []*state
	for _, id := range ids {
		s := &state{Version: stateVersion, Instance: id}
		if t := l.tunnel(id, false); t != nil {
			s.External = t.External
		}
		for _, k := range l.Keys {
			for _, c := range k.Claims {
				if c.Tunnel == id {
					s.Routes = append(s.Routes, c.Route)
				}
			}
		}
		for _, d := range l.Displaced {
			if slices.Contains(d.Tunnels, id) {
				s.Displaced = append(s.Displaced, d.Route)
			}
		}
		if t := l.tunnel(id, false); t != nil && t.DNS != nil {
			s.DNS = &dnsRecord{Mode: ModeResolvConf, Applied: true, ResolvConf: t.ResolvConf}
		}
		out = append(out, s)
	}
	return out
}

// reassert puts the most recent claim of each key back where the kernel
// holds something else: a process that died between changing the kernel
// and writing the ledger may have left a key without the route the ledger
// says is there. Cleanup runs it after undoing dead tunnels.
func reassert(k kernel, l *ledger, logf func(string, ...any)) error {
	var errs []error
	for _, e := range l.Keys {
		top := e.Claims[len(e.Claims)-1]
		r := &Router{k: k, logf: logf, instance: top.Tunnel}
		if cur, ok := r.kernelRouteAt(e.Key); ok && cur.sameRoute(top.Route) {
			continue
		}
		err := k.RouteReplace(top.Route)
		switch {
		case err == nil:
			logf("put back route %s of tunnel %s", r.routeText(top.Route), top.Tunnel)
		case isGone(err) || errors.Is(err, unix.ENETUNREACH):
			// Its link is gone: its owner is dead and is cleaned up on its own.
		default:
			errs = append(errs, fmt.Errorf("putting back route %s of tunnel %s: %w", r.routeText(top.Route), top.Tunnel, err))
		}
	}
	return errors.Join(errs...)
}
