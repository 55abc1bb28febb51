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
	// set applies d to link ifindex; nil reverts.
	set(ifindex int, d *DNS) error
	// close reverts and releases resources.
	close() error
	// record describes what to undo after a crash.
	record() *dnsRecord
}

// chooseDNS picks the DNS mechanism, detecting systemd-resolved at run time.
func chooseDNS(opts Options, logf func(string, ...any)) dnsBackend {
	persist := func(*dnsRecord) error { return nil }
	backup := filepath.Join(opts.StateDir, opts.Instance+".resolv.conf.orig")
	rc := func() dnsBackend {
		return &resolvConfDNS{path: opts.ResolvConf, backup: backup, instance: opts.Instance, logf: logf, persist: persist}
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
		return &resolvConfDNS{path: rec.ResolvConf, backup: rec.Backup, instance: instance, logf: logf,
			applied: rec.Applied, symlink: rec.SymlinkTarget, wasAbsent: rec.WasAbsent,
			persist: func(*dnsRecord) error { return nil }}
	}
	return noneDNS{}
}

type noneDNS struct{}

func (noneDNS) mode() string                      { return ModeNone }
func (noneDNS) set(_ int, d *DNS) error           { return nil }
func (noneDNS) close() error                      { return nil }
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

func (d *resolvedDNS) set(ifindex int, cfg *DNS) error {
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
	return nil
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

func (d *resolvedDNS) close() error {
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
	return a.FullTunnel == b.FullTunnel && slices.Equal(a.Servers, b.Servers) &&
		slices.Equal(a.Search, b.Search) && slices.Equal(a.RoutingDomains, b.RoutingDomains)
}

// ---- resolv.conf ----

type resolvConfDNS struct {
	path, backup, instance string
	logf                   func(string, ...any)
	persist                func(*dnsRecord) error

	mu        sync.Mutex
	applied   bool
	symlink   string
	wasAbsent bool
	orig      []byte
	cur       *DNS
}

func (d *resolvConfDNS) mode() string                        { return ModeResolvConf }
func (d *resolvConfDNS) setPersist(p func(*dnsRecord) error) { d.persist = p }

func (d *resolvConfDNS) record() *dnsRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.recordLocked()
}

func (d *resolvConfDNS) recordLocked() *dnsRecord {
	return &dnsRecord{Mode: ModeResolvConf, Applied: d.applied, ResolvConf: d.path, Backup: d.backup,
		SymlinkTarget: d.symlink, WasAbsent: d.wasAbsent}
}

func (d *resolvConfDNS) marker() string {
	return "# Generated by ovpnd (instance " + d.instance + "); the original is restored when the tunnel goes down."
}

func (d *resolvConfDNS) set(_ int, cfg *DNS) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cfg == nil {
		return d.restoreLocked()
	}
	if d.applied && dnsEqual(d.cur, cfg) {
		return nil
	}
	if !d.applied {
		if err := d.takeBackup(); err != nil {
			return err
		}
		d.applied = true
		if err := d.persist(d.recordLocked()); err != nil {
			return fmt.Errorf("recording DNS state: %w", err)
		}
	}
	if err := replaceFile(d.path, d.compose(cfg)); err != nil {
		return fmt.Errorf("writing %s: %w", d.path, err)
	}
	d.cur = cfg
	d.logf("wrote %s", d.path)
	return nil
}

func (d *resolvConfDNS) takeBackup() error {
	d.symlink, d.wasAbsent = "", false
	if t, err := os.Readlink(d.path); err == nil {
		d.symlink = t
	}
	b, err := readLimited(d.path)
	switch {
	case errors.Is(err, os.ErrNotExist) && d.symlink == "":
		d.wasAbsent = true
		b = nil
	case errors.Is(err, os.ErrNotExist):
		b = nil // dangling link
	case err != nil:
		return fmt.Errorf("backing up %s: %w", d.path, err)
	}
	if bytes.Contains(b, []byte("# Generated by ovpnd (instance ")) {
		d.logf("warning: %s was written by another ovpnd tunnel; it is restored in whatever order the tunnels go down", d.path)
	}
	if err := replaceFile(d.backup, b); err != nil {
		return fmt.Errorf("backing up %s: %w", d.path, err)
	}
	d.orig = b
	return nil
}

// compose writes the tunnel's servers first; a split tunnel keeps the
// original servers after them so names outside the VPN still resolve.
func (d *resolvConfDNS) compose(cfg *DNS) []byte {
	origNS, origSearch, opts := parseResolvConf(d.orig)
	var b strings.Builder
	b.WriteString(d.marker() + "\n")
	const maxNS = 3 // glibc uses only the first three
	var ns []netip.Addr
	for _, s := range cfg.Servers {
		if len(ns) < maxNS && !slices.Contains(ns, s) {
			ns = append(ns, s)
		}
	}
	if !cfg.FullTunnel || len(cfg.Servers) == 0 {
		for _, s := range origNS {
			if len(ns) < maxNS && !slices.Contains(ns, s) {
				ns = append(ns, s)
			}
		}
	}
	for _, s := range ns {
		b.WriteString("nameserver " + s.String() + "\n")
	}
	search := slices.Clone(cfg.Search)
	if !cfg.FullTunnel {
		for _, s := range origSearch {
			if !slices.Contains(search, s) {
				search = append(search, s)
			}
		}
	}
	if len(search) > 0 {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	for _, o := range opts {
		b.WriteString(o + "\n")
	}
	return []byte(b.String())
}

func (d *resolvConfDNS) restoreLocked() error {
	if !d.applied {
		return nil
	}
	cur, err := readLimited(d.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", d.path, err)
	}
	if !bytes.HasPrefix(cur, []byte(d.marker())) {
		// Someone (DHCP, an admin) rewrote it since; theirs is newer than
		// our backup.
		d.logf("%s was changed by someone else; not restoring it", d.path)
	} else {
		switch {
		case d.symlink != "":
			tmp := d.path + ".ovpnd-tmp"
			os.Remove(tmp)
			if err := os.Symlink(d.symlink, tmp); err != nil {
				return fmt.Errorf("restoring %s: %w", d.path, err)
			}
			if err := os.Rename(tmp, d.path); err != nil {
				os.Remove(tmp)
				return fmt.Errorf("restoring %s: %w", d.path, err)
			}
		case d.wasAbsent:
			if err := os.Remove(d.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("restoring %s: %w", d.path, err)
			}
		default:
			orig, err := readLimited(d.backup)
			if err != nil {
				return fmt.Errorf("reading backup of %s: %w", d.path, err)
			}
			if err := replaceFile(d.path, orig); err != nil {
				return fmt.Errorf("restoring %s: %w", d.path, err)
			}
		}
		d.logf("restored %s", d.path)
	}
	os.Remove(d.backup)
	d.applied, d.cur, d.orig = false, nil, nil
	return nil
}

func (d *resolvConfDNS) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.restoreLocked()
}

// replaceFile writes b to path atomically where it can; a bind-mounted
// resolv.conf (containers) cannot be renamed over, so it falls back to an
// in-place write.
func replaceFile(path string, b []byte) error {
	tmp := path + ".ovpnd-tmp"
	f, err := createExclusive(tmp, 0o644)
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
		return os.WriteFile(path, b, 0o644)
	}
	return nil
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
