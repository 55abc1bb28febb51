package routing

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// fakeKernel is an in-memory routing table with the kernel's rules that
// matter here: route keys (EEXIST), gateways must be on-link
// (ENETUNREACH), addresses create connected routes, IPv6 metric 0 becomes
// 1024, deletes match on the attributes given. It records every call.
type fakeKernel struct {
	mu     sync.Mutex
	links  map[int]*linkInfo
	addrs  []kaddr
	routes []kroute
	ops    []string
	fail   func(op string) error
	// observe, when set, sees the route table after every route change
	// (called with the lock held; it must not call back).
	observe func(routes []kroute)
}

func (f *fakeKernel) changed() {
	if f.observe != nil {
		f.observe(f.routes)
	}
}

// lookup is the kernel's longest prefix match over routes.
func lookup(routes []kroute, dst netip.Addr) (kroute, bool) {
	best, found := kroute{}, false
	for _, r := range routes {
		if !r.Dst.Contains(dst) {
			continue
		}
		if !found || r.Dst.Bits() > best.Dst.Bits() || (r.Dst.Bits() == best.Dst.Bits() && r.Metric < best.Metric) {
			best, found = r, true
		}
	}
	return best, found
}

func newFakeKernel() *fakeKernel { return &fakeKernel{links: map[int]*linkInfo{}} }

func (f *fakeKernel) addLink(index int, name string, mtu int) {
	f.links[index] = &linkInfo{Index: index, Name: name, MTU: mtu}
}

func (f *fakeKernel) record(format string, args ...any) error {
	op := fmt.Sprintf(format, args...)
	f.ops = append(f.ops, op)
	if f.fail != nil {
		return f.fail(op)
	}
	return nil
}

func (f *fakeKernel) LinkByName(name string) (linkInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.links {
		if l.Name == name {
			return *l, nil
		}
	}
	return linkInfo{}, fmt.Errorf("link %q: %w", name, errNoLink)
}

func (f *fakeKernel) LinkByIndex(index int) (linkInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.links[index]; ok {
		return *l, nil
	}
	return linkInfo{}, fmt.Errorf("link %d: %w", index, errNoLink)
}

func (f *fakeKernel) LinkSetMTU(index, mtu int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("link set %d mtu %d", index, mtu); err != nil {
		return err
	}
	l, ok := f.links[index]
	if !ok {
		return unix.ENODEV
	}
	l.MTU = mtu
	return nil
}

func (f *fakeKernel) AddrList(index int) ([]kaddr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.links[index]; !ok {
		return nil, unix.ENODEV
	}
	var out []kaddr
	for _, a := range f.addrs {
		if a.LinkIndex == index {
			out = append(out, a)
		}
	}
	return out, nil
}

func connected(a kaddr) (kroute, bool) {
	rt := kroute{LinkIndex: a.LinkIndex, Table: tableMain, Protocol: unix.RTPROT_KERNEL}
	switch {
	case a.Peer.IsValid():
		rt.Dst = netip.PrefixFrom(a.Peer, a.Peer.BitLen())
	case a.Prefix.Bits() < a.Prefix.Addr().BitLen():
		rt.Dst = a.Prefix.Masked()
	default:
		return rt, false
	}
	if rt.Dst.Addr().Is6() {
		rt.Metric = 256
	} else {
		rt.Scope = scopeLink
	}
	return rt, true
}

func (f *fakeKernel) AddrAdd(a kaddr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("addr add %v%s dev %d", a.Prefix, peerText(a.Peer), a.LinkIndex); err != nil {
		return err
	}
	if _, ok := f.links[a.LinkIndex]; !ok {
		return unix.ENODEV
	}
	for _, o := range f.addrs {
		if o.LinkIndex == a.LinkIndex && o.Prefix.Addr() == a.Prefix.Addr() {
			return unix.EEXIST
		}
	}
	f.addrs = append(f.addrs, a)
	if rt, ok := connected(a); ok && !slices.ContainsFunc(f.routes, rt.sameRoute) {
		f.routes = append(f.routes, rt)
	}
	return nil
}

func (f *fakeKernel) AddrDel(a kaddr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("addr del %v%s dev %d", a.Prefix, peerText(a.Peer), a.LinkIndex); err != nil {
		return err
	}
	if _, ok := f.links[a.LinkIndex]; !ok {
		return unix.ENODEV
	}
	i := slices.IndexFunc(f.addrs, func(o kaddr) bool { return o.LinkIndex == a.LinkIndex && o.Prefix == a.Prefix })
	if i < 0 {
		return unix.EADDRNOTAVAIL
	}
	f.addrs = slices.Delete(f.addrs, i, i+1)
	if rt, ok := connected(a); ok {
		f.routes = slices.DeleteFunc(f.routes, rt.sameRoute)
	}
	return nil
}

func (f *fakeKernel) RouteList(fam int) ([]kroute, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []kroute
	for _, r := range f.routes {
		if r.Dst.Addr().Is4() == (fam == unix.AF_INET) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeKernel) RouteGet(dst netip.Addr) (kroute, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	best, found := kroute{}, false
	for _, r := range f.routes {
		if !r.Dst.Contains(dst) {
			continue
		}
		if !found || r.Dst.Bits() > best.Dst.Bits() || (r.Dst.Bits() == best.Dst.Bits() && r.Metric < best.Metric) {
			best, found = r, true
		}
	}
	if !found {
		return kroute{}, unix.ENETUNREACH
	}
	best.Dst = netip.PrefixFrom(dst, dst.BitLen())
	return best, nil
}

func (f *fakeKernel) check(r kroute) (kroute, error) {
	if _, ok := f.links[r.LinkIndex]; !ok {
		return r, unix.ENODEV
	}
	if r.Metric == 0 && r.Dst.Addr().Is6() {
		r.Metric = ip6DefaultMetric
	}
	if r.Gw.IsValid() && !(r.Gw.Is6() && r.Gw.IsLinkLocalUnicast()) {
		onLink := slices.ContainsFunc(f.routes, func(o kroute) bool {
			return o.LinkIndex == r.LinkIndex && !o.Gw.IsValid() && o.Dst.Contains(r.Gw)
		})
		if !onLink {
			return r, unix.ENETUNREACH
		}
	}
	return r, nil
}

func (f *fakeKernel) RouteAdd(r kroute) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("route add %s", f.text(r)); err != nil {
		return err
	}
	r, err := f.check(r)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(f.routes, func(o kroute) bool { return o.key() == r.key() }) {
		return unix.EEXIST
	}
	f.routes = append(f.routes, r)
	f.changed()
	return nil
}

func (f *fakeKernel) RouteReplace(r kroute) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("route replace %s", f.text(r)); err != nil {
		return err
	}
	r, err := f.check(r)
	if err != nil {
		return err
	}
	f.routes = slices.DeleteFunc(f.routes, func(o kroute) bool { return o.key() == r.key() })
	f.routes = append(f.routes, r)
	f.changed()
	return nil
}

func (f *fakeKernel) RouteDel(r kroute) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("route del %s", f.text(r)); err != nil {
		return err
	}
	i := slices.IndexFunc(f.routes, func(o kroute) bool {
		return o.Dst == r.Dst && o.Table == r.Table &&
			(r.Metric == 0 || o.Metric == r.Metric) &&
			(r.LinkIndex == 0 || o.LinkIndex == r.LinkIndex) &&
			(!r.Gw.IsValid() || o.Gw == r.Gw)
	})
	if i < 0 {
		return unix.ESRCH
	}
	f.routes = slices.Delete(f.routes, i, i+1)
	f.changed()
	return nil
}

func (f *fakeKernel) name(index int) string {
	if l, ok := f.links[index]; ok {
		return l.Name
	}
	return fmt.Sprintf("if%d", index)
}

// text prints a route the way `ip route` does.
func (f *fakeKernel) text(r kroute) string {
	var b strings.Builder
	if r.Dst.Bits() == 0 {
		b.WriteString("default")
	} else {
		b.WriteString(r.Dst.String())
	}
	if r.Gw.IsValid() {
		b.WriteString(" via " + r.Gw.String())
	}
	b.WriteString(" dev " + f.name(r.LinkIndex))
	switch r.Protocol {
	case unix.RTPROT_KERNEL:
		b.WriteString(" proto kernel")
	case unix.RTPROT_STATIC:
		b.WriteString(" proto static")
	case unix.RTPROT_DHCP:
		b.WriteString(" proto dhcp")
	}
	if r.Scope == scopeLink {
		b.WriteString(" scope link")
	}
	if r.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", r.Metric)
	}
	return b.String()
}

// String prints links, addresses and routes like `ip link/addr/route`,
// one per line, sorted.
func (f *fakeKernel) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var lines []string
	for _, l := range f.links {
		lines = append(lines, fmt.Sprintf("link %s mtu %d", l.Name, l.MTU))
	}
	for _, a := range f.addrs {
		lines = append(lines, fmt.Sprintf("addr %s %v%s", f.name(a.LinkIndex), a.Prefix, peerText(a.Peer)))
	}
	for _, r := range f.routes {
		lines = append(lines, "route "+f.text(r))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// lineDiff lists the lines of after that are not in before ("+") and the
// reverse ("-"), sorted.
func lineDiff(before, after string) string {
	b := strings.Split(strings.TrimSpace(before), "\n")
	a := strings.Split(strings.TrimSpace(after), "\n")
	var out []string
	for _, l := range a {
		if !slices.Contains(b, l) {
			out = append(out, "+"+l)
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			out = append(out, "-"+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}
