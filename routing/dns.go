package routing

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// DNS mode names, as DNSMode reports them.
const (
	ModeResolved   = "systemd-resolved"
	ModeResolvConf = "resolv.conf"
	ModeNone       = "none"
)

// maxResolvConf bounds how much of a resolv.conf we read.
const maxResolvConf = 64 << 10

// dnsBackend applies the DNS part of a Config.
type dnsBackend interface {
	mode() string
	// set applies d to link ifindex; nil reverts. l is the host ledger,
	// locked by the caller.
	set(l *ledger, ifindex int, d *DNS) error
	// close reverts and releases resources.
	close(l *ledger) error
	// record describes what to undo after a crash.
	record() *dnsRecord
}

// chooseDNS picks the DNS mechanism, detecting systemd-resolved at run time.
func chooseDNS(opts Options, logf func(string, ...any)) dnsBackend {
	persist := func(*dnsRecord) error { return nil }
	rc := func() dnsBackend {
		return &resolvConfDNS{path: opts.ResolvConf, instance: opts.Instance, logf: logf, persist: persist}
	}
	dial := opts.dialBus
	if dial == nil {
		dial = dialSystemResolved
	}
	switch opts.DNSMode {
	case ModeNone:
		return noneDNS{}
	case ModeResolvConf:
		return rc()
	case ModeResolved:
		return newResolvedDNS(dial, logf, true)
	case "":
	default:
		logf("unknown DNS mode %q; detecting", opts.DNSMode)
	}
	bus, err := dial()
	if err == nil {
		owned, oerr := bus.nameHasOwner()
		if oerr == nil && owned && resolvConfUsesResolved(opts.ResolvConf) {
			d := newResolvedDNS(func() (resolvedBus, error) { return bus, nil }, logf, true)
			return d
		}
		bus.close()
		if oerr == nil && owned {
			logf("systemd-resolved runs but %s does not point to it", opts.ResolvConf)
		}
	}
	if _, err := os.Stat(filepath.Dir(opts.ResolvConf)); err == nil {
		return rc()
	}
	return noneDNS{}
}

// resolvConfUsesResolved reports whether libc queries go to resolved: the
// file is a link into /run/systemd/resolve or names the stub listener.
func resolvConfUsesResolved(path string) bool {
	if t, err := os.Readlink(path); err == nil && strings.Contains(t, "systemd/resolve") {
		return true
	}
	ns, _, _ := parseResolvConf(readBounded(path))
	return slices.Contains(ns, netip.MustParseAddr("127.0.0.53")) || slices.Contains(ns, netip.MustParseAddr("127.0.0.54"))
}

// dnsFromRecord rebuilds the backend that a crashed process used, to undo it.
func dnsFromRecord(rec *dnsRecord, instance string, dial func() (resolvedBus, error), logf func(string, ...any)) dnsBackend {
	if rec == nil {
		return noneDNS{}
	}
	switch rec.Mode {
	case ModeResolved:
		if dial == nil {
			dial = dialSystemResolved
		}
		d := newResolvedDNS(dial, logf, false)
		d.applied, d.ifindex = rec.Applied, rec.LinkIndex
		return d
	case ModeResolvConf:
		return &resolvConfDNS{path: rec.ResolvConf, instance: instance, logf: logf,
			applied: rec.Applied, persist: func(*dnsRecord) error { return nil }}
	}
	return noneDNS{}
}

type noneDNS struct{}

func (noneDNS) mode() string                      { return ModeNone }
func (noneDNS) set(*ledger, int, *DNS) error      { return nil }
func (noneDNS) close(*ledger) error               { return nil }
func (noneDNS) record() *dnsRecord                { return &dnsRecord{Mode: ModeNone} }
func (noneDNS) setPersist(func(*dnsRecord) error) {}

// ---- systemd-resolved ----

const (
	resolvedName  = "org.freedesktop.resolve1"
	resolvedPath  = "/org/freedesktop/resolve1"
	resolvedIface = "org.freedesktop.resolve1.Manager"
)

// resolvedBus is the part of the system bus the resolved backend needs.
type resolvedBus interface {
	// call invokes a Manager method with a timeout.
	call(method string, args ...any) error
	nameHasOwner() (bool, error)
	// ownerChanged delivers a value each time resolved gets a new owner
	// (it restarted); nil if unsupported.
	ownerChanged() <-chan struct{}
	close() error
}

// resolvedDomain is the (sb) element of SetLinkDomains.
type resolvedDomain struct {
	Domain      string
	RoutingOnly bool
}

// resolvedAddr is the (iay) element of SetLinkDNS.
type resolvedAddr struct {
	Family  int32
	Address []byte
}

type resolvedDNS struct {
	dial  func() (resolvedBus, error)
	logf  func(string, ...any)
	watch bool

	mu      sync.Mutex
	bus     resolvedBus
	applied bool
	ifindex int
	cur     *DNS
	persist func(*dnsRecord) error
	stop    chan struct{}
	done    chan struct{}
}

func newResolvedDNS(dial func() (resolvedBus, error), logf func(string, ...any), watch bool) *resolvedDNS {
	return &resolvedDNS{dial: dial, logf: logf, watch: watch, persist: func(*dnsRecord) error { return nil }}
}

func (d *resolvedDNS) mode() string { return ModeResolved }

func (d *resolvedDNS) record() *dnsRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.recordLocked()
}

func (d *resolvedDNS) recordLocked() *dnsRecord {
	return &dnsRecord{Mode: ModeResolved, LinkIndex: d.ifindex, Applied: d.applied}
}

func (d *resolvedDNS) setPersist(p func(*dnsRecord) error) { d.persist = p }

// connect dials the bus once and starts the restart watcher.
func (d *resolvedDNS) connect() error {
	if d.bus != nil {
		return nil
	}
	bus, err := d.dial()
	if err != nil {
		return fmt.Errorf("connecting to systemd-resolved: %w", err)
	}
	d.bus = bus
	if ch := bus.ownerChanged(); d.watch && ch != nil {
		d.stop, d.done = make(chan struct{}), make(chan struct{})
		go d.watchRestarts(ch, d.stop, d.done)
	}
	return nil
}

// watchRestarts re-applies the configuration when resolved restarts, since
// a new resolved forgets what the old one was told.
func (d *resolvedDNS) watchRestarts(ch <-chan struct{}, stop, done chan struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			d.mu.Lock()
			if d.applied && d.cur != nil {
				d.logf("systemd-resolved restarted; re-applying DNS")
				if err := d.applyLocked(d.ifindex, d.cur); err != nil {
					d.logf("re-applying DNS: %v", err)
				}
			}
			d.mu.Unlock()
		}
	}
}

func (d *resolvedDNS) set(_ *ledger, ifindex int, cfg *DNS) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	if d.applied && (cfg == nil || ifindex != d.ifindex) {
		errs = append(errs, d.revertLocked())
	}
	if cfg == nil {
		return errors.Join(errs...)
	}
	if d.applied && d.ifindex == ifindex && dnsEqual(d.cur, cfg) {
		return errors.Join(errs...)
	}
	if err := d.connect(); err != nil {
		return errors.Join(append(errs, err)...)
	}
	d.applied, d.ifindex, d.cur = true, ifindex, cfg
	if err := d.persist(d.recordLocked()); err != nil {
		errs = append(errs, fmt.Errorf("recording DNS state: %w", err))
	}
	errs = append(errs, d.applyLocked(ifindex, cfg))
	return errors.Join(errs...)
}

// applyLocked sends the link configuration in the order resolved documents
// for VPNs: domains and default-route before servers, so no query leaks to
// the new servers (or away from them) while the link is half configured.
func (d *resolvedDNS) applyLocked(ifindex int, cfg *DNS) error {
	var doms []resolvedDomain
	for _, s := range cfg.Search {
		doms = append(doms, resolvedDomain{s, false})
	}
	for _, s := range cfg.RoutingDomains {
		doms = append(doms, resolvedDomain{s, true})
	}
	if cfg.FullTunnel {
		doms = append(doms, resolvedDomain{".", true})
	}
	if doms == nil {
		doms = []resolvedDomain{}
	}
	idx := int32(ifindex)
	if err := d.bus.call("SetLinkDomains", idx, doms); err != nil {
		return fmt.Errorf("SetLinkDomains: %w", err)
	}
	if err := d.bus.call("SetLinkDefaultRoute", idx, cfg.FullTunnel); err != nil {
		// systemd before 240 lacks it; routing domains still work.
		if !isUnknownMethod(err) {
			return fmt.Errorf("SetLinkDefaultRoute: %w", err)
		}
		d.logf("systemd-resolved has no SetLinkDefaultRoute; continuing without it")
	}
	var tlsErr error
	switch cfg.Transport {
	case TransportDoT:
		// Before the servers, so that no query goes to them in the clear.
		if err := d.bus.call("SetLinkDNSOverTLS", idx, "yes"); err != nil {
			tlsErr = fmt.Errorf("DNS over TLS was pushed but systemd-resolved refused it (%w): DNS to the tunnel's servers is unencrypted", err)
		}
	case TransportDoH:
		tlsErr = errors.New("DNS over HTTPS was pushed but systemd-resolved cannot do it: DNS to the tunnel's servers is unencrypted")
	}
	addrs := []resolvedAddr{}
	for _, s := range cfg.Servers {
		fam := int32(2) // AF_INET
		if s.Is6() {
			fam = 10 // AF_INET6
		}
		addrs = append(addrs, resolvedAddr{fam, s.AsSlice()})
	}
	if err := d.bus.call("SetLinkDNS", idx, addrs); err != nil {
		return fmt.Errorf("SetLinkDNS: %w", err)
	}
	return tlsErr
}

func (d *resolvedDNS) revertLocked() error {
	if !d.applied {
		return nil
	}
	if err := d.connect(); err != nil {
		return err
	}
	err := d.bus.call("RevertLink", int32(d.ifindex))
	if err != nil && isNoSuchLink(err) {
		err = nil // the link is gone, and its DNS settings with it
	}
	if err != nil {
		return fmt.Errorf("RevertLink: %w", err)
	}
	d.applied, d.cur = false, nil
	return nil
}

func (d *resolvedDNS) close(*ledger) error {
	d.mu.Lock()
	err := d.revertLocked()
	stop, done, bus := d.stop, d.done, d.bus
	d.stop, d.bus = nil, nil
	d.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	if bus != nil {
		bus.close()
	}
	return err
}

func dnsEqual(a, b *DNS) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.FullTunnel == b.FullTunnel && a.Transport == b.Transport && slices.Equal(a.Servers, b.Servers) &&
		slices.Equal(a.Search, b.Search) && slices.Equal(a.RoutingDomains, b.RoutingDomains)
}

// ---- resolv.conf ----

// resolvConfDNS rewrites a resolv.conf shared by every tunnel: the host
// ledger keeps the original (once, for all tunnels) and each tunnel's DNS,
// and every change rebuilds the file from the original plus the tunnels
// still up, the most recent first. The last tunnel to go puts the original
// back.
type resolvConfDNS struct {
	path, instance string
	logf           func(string, ...any)
	persist        func(*dnsRecord) error

	mu      sync.Mutex
	applied bool
	cur     *DNS
}

// resolvMarker starts every resolv.conf ovpnd writes.
const resolvMarker = "# Generated by ovpnd"

func (d *resolvConfDNS) mode() string                        { return ModeResolvConf }
func (d *resolvConfDNS) setPersist(p func(*dnsRecord) error) { d.persist = p }

func (d *resolvConfDNS) record() *dnsRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.recordLocked()
}

func (d *resolvConfDNS) recordLocked() *dnsRecord {
	return &dnsRecord{Mode: ModeResolvConf, Applied: d.applied, ResolvConf: d.path}
}

func (d *resolvConfDNS) set(l *ledger, _ int, cfg *DNS) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cfg == nil {
		return d.restoreLocked(l)
	}
	t := l.tunnel(d.instance, true)
	if d.applied && t.DNS != nil && dnsEqual(d.cur, cfg) {
		return nil
	}
	base := l.resolvBase(d.path)
	if base == nil {
		var err error
		if base, err = d.takeBase(); err != nil {
			return err
		}
		l.ResolvConfs = append(l.ResolvConfs, base)
	}
	if !d.applied {
		d.applied = true
		if err := d.persist(d.recordLocked()); err != nil {
			return fmt.Errorf("recording DNS state: %w", err)
		}
	}
	if t.DNS == nil {
		l.Seq++
		t.DNSSeq = l.Seq
	}
	t.DNS, t.ResolvConf = cfg, d.path
	d.cur = cfg
	if err := replaceFile(d.path, composeResolvConf(l, base)); err != nil {
		return fmt.Errorf("writing %s: %w", d.path, err)
	}
	d.logf("wrote %s", d.path)
	if cfg.Transport != "" {
		return fmt.Errorf("DNS over %s was pushed but resolv.conf cannot encrypt DNS: DNS to the tunnel's servers is unencrypted", strings.TrimPrefix(cfg.Transport, "Do"))
	}
	return nil
}

// takeBase reads the original file: its content, or the symlink it is, or
// its absence.
func (d *resolvConfDNS) takeBase() (*ledgerResolv, error) {
	base := &ledgerResolv{Path: d.path}
	if t, err := os.Readlink(d.path); err == nil {
		base.SymlinkTarget = t
	}
	b, err := readLimited(d.path)
	switch {
	case errors.Is(err, os.ErrNotExist) && base.SymlinkTarget == "":
		base.WasAbsent = true
		b = nil
	case errors.Is(err, os.ErrNotExist):
		b = nil // dangling link
	case err != nil:
		return nil, fmt.Errorf("reading the original %s: %w", d.path, err)
	}
	if bytes.HasPrefix(b, []byte(resolvMarker)) {
		d.logf("warning: %s was left by an ovpnd whose records are lost; it is kept as the original", d.path)
	}
	base.Orig = b
	return base, nil
}

// composeResolvConf writes the servers of the tunnels up first, the most
// recent tunnel first; unless one of them takes all names (full tunnel),
// the original servers follow so names outside the VPNs still resolve.
func composeResolvConf(l *ledger, base *ledgerResolv) []byte {
	origNS, origSearch, opts := parseResolvConf(base.Orig)
	var tuns []*ledgerTunnel
	for _, t := range l.Tunnels {
		if t.DNS != nil && t.ResolvConf == base.Path {
			tuns = append(tuns, t)
		}
	}
	slices.SortStableFunc(tuns, func(a, b *ledgerTunnel) int { return cmpUint64(b.DNSSeq, a.DNSSeq) })
	var b strings.Builder
	b.WriteString(resolvMarker + " for the tunnels that are up; the original comes back when the last one goes down.\n")
	const maxNS = 3 // glibc uses only the first three
	var ns []netip.Addr
	var search []string
	full, allNames := false, false
	for _, t := range tuns {
		for _, s := range t.DNS.Servers {
			if len(ns) < maxNS && !slices.Contains(ns, s) {
				ns = append(ns, s)
			}
		}
		for _, s := range t.DNS.Search {
			if !slices.Contains(search, s) {
				search = append(search, s)
			}
		}
		full = full || (t.DNS.FullTunnel && len(t.DNS.Servers) > 0)
		allNames = allNames || t.DNS.FullTunnel
	}
	if !full {
		for _, s := range origNS {
			if len(ns) < maxNS && !slices.Contains(ns, s) {
				ns = append(ns, s)
			}
		}
	}
	if !allNames {
		for _, s := range origSearch {
			if !slices.Contains(search, s) {
				search = append(search, s)
			}
		}
	}
	for _, s := range ns {
		b.WriteString("nameserver " + s.String() + "\n")
	}
	if len(search) > 0 {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	for _, o := range opts {
		b.WriteString(o + "\n")
	}
	return []byte(b.String())
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (l *ledger) resolvBase(path string) *ledgerResolv {
	for _, r := range l.ResolvConfs {
		if r.Path == path {
			return r
		}
	}
	return nil
}

// restoreLocked takes this tunnel's DNS out of the file: it is rebuilt for
// the tunnels still up, or the original comes back after the last one.
func (d *resolvConfDNS) restoreLocked(l *ledger) error {
	if !d.applied {
		return nil
	}
	if t := l.tunnel(d.instance, false); t != nil {
		t.DNS, t.ResolvConf, t.DNSSeq = nil, "", 0
	}
	base := l.resolvBase(d.path)
	if base == nil {
		d.applied, d.cur = false, nil
		return nil // the ledger holds no original: nothing we can put back
	}
	others := slices.ContainsFunc(l.Tunnels, func(t *ledgerTunnel) bool { return t.DNS != nil && t.ResolvConf == d.path })
	cur, err := readLimited(d.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", d.path, err)
	}
	switch {
	case !bytes.HasPrefix(cur, []byte(resolvMarker)):
		// Someone (DHCP, an admin) rewrote it since; theirs is newer than
		// the original we hold.
		d.logf("%s was changed by someone else; not restoring it", d.path)
		if !others {
			l.dropResolvBase(d.path)
		}
	case others:
		if err := replaceFile(d.path, composeResolvConf(l, base)); err != nil {
			return fmt.Errorf("rewriting %s: %w", d.path, err)
		}
		d.logf("rewrote %s for the tunnels still up", d.path)
	default:
		if err := restoreResolvBase(base); err != nil {
			return fmt.Errorf("restoring %s: %w", d.path, err)
		}
		l.dropResolvBase(d.path)
		d.logf("restored %s", d.path)
	}
	d.applied, d.cur = false, nil
	return nil
}

func (l *ledger) dropResolvBase(path string) {
	l.ResolvConfs = slices.DeleteFunc(l.ResolvConfs, func(r *ledgerResolv) bool { return r.Path == path })
}

func restoreResolvBase(base *ledgerResolv) error {
	switch {
	case base.SymlinkTarget != "":
		tmp := base.Path + ".ovpnd-tmp"
		os.Remove(tmp)
		if err := os.Symlink(base.SymlinkTarget, tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, base.Path); err != nil {
			os.Remove(tmp)
			return err
		}
		return nil
	case base.WasAbsent:
		if err := os.Remove(base.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return replaceFile(base.Path, base.Orig)
}

func (d *resolvConfDNS) close(l *ledger) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.restoreLocked(l)
}

// replaceFile writes b to path atomically where it can; a bind-mounted
// resolv.conf (containers) cannot be renamed over, so it falls back to an
// in-place write.
func replaceFile(path string, b []byte) error {
	tmp := path + ".ovpnd-tmp"
	f, err := createExclusive(tmp, 0o644)
	if errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		// Only the file itself is writable (systemd's ReadWritePaths= on a
		// ProtectSystem=strict unit bind-mounts just the file): write it in place.
		return writeInPlace(path, b)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return writeInPlace(path, b)
	}
	return nil
}

// writeInPlace truncates and rewrites path without replacing it; it does not
// follow a symlink, since root writes it.
func writeInPlace(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Truncate(int64(len(b)))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxResolvConf))
}

func readBounded(path string) []byte {
	b, _ := readLimited(path)
	return b
}

// parseResolvConf extracts nameservers, search domains and options lines.
func parseResolvConf(b []byte) (ns []netip.Addr, search []string, opts []string) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxResolvConf)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 && len(ns) < MaxDNS {
				// An IPv6 server may carry a %zone.
				if a, err := netip.ParseAddr(f[1]); err == nil {
					ns = append(ns, a)
				}
			}
		case "search", "domain":
			for _, s := range f[1:] {
				if validDomain(s) && len(search) < MaxDNS && !slices.Contains(search, s) {
					search = append(search, s)
				}
			}
		case "options", "sortlist":
			if len(opts) < MaxDNS {
				opts = append(opts, strings.Join(f, " "))
			}
		}
	}
	return ns, search, opts
}

// ---- bypass-dns / bypass-dhcp sources ----

// systemBypassAddrs finds the pre-VPN DNS servers (from resolved's upstream
// list or resolv.conf) and the DHCP server of link linkIndex (from
// systemd-networkd or dhclient leases).
func systemBypassAddrs(dhcp, dns bool, linkIndex int) []netip.Addr {
	var out []netip.Addr
	if dns {
		for _, p := range []string{"/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"} {
			ns, _, _ := parseResolvConf(readBounded(p))
			if len(ns) > 0 {
				out = append(out, ns...)
				break
			}
		}
	}
	if dhcp && linkIndex > 0 {
		if a, ok := networkdDHCPServer(readBounded("/run/systemd/netif/leases/" + strconv.Itoa(linkIndex))); ok {
			out = append(out, a)
		} else if ifi, err := net.InterfaceByIndex(linkIndex); err == nil {
			for _, p := range []string{"/var/lib/dhcp/dhclient." + ifi.Name + ".leases", "/var/lib/dhcp/dhclient.leases"} {
				if a, ok := dhclientServer(readBounded(p)); ok {
					out = append(out, a)
					break
				}
			}
		}
	}
	return out
}

func networkdDHCPServer(b []byte) (netip.Addr, bool) {
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "SERVER_ADDRESS="); ok {
			a, err := netip.ParseAddr(strings.TrimSpace(v))
			return a, err == nil
		}
	}
	return netip.Addr{}, false
}

// dhclientServer returns the server identifier of the last lease in a
// dhclient lease file.
func dhclientServer(b []byte) (netip.Addr, bool) {
	var last netip.Addr
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "option dhcp-server-identifier "); ok {
			if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimSpace(v), ";")); err == nil {
				last = a
			}
		}
	}
	return last, last.IsValid()
}
