package routing

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Route table, protocol and scope values used by the router. They are the
// kernel's numbers so that the state file can be read back by any process.
const (
	tableMain     = unix.RT_TABLE_MAIN
	protoStatic   = unix.RTPROT_STATIC
	scopeUniverse = unix.RT_SCOPE_UNIVERSE
	scopeLink     = unix.RT_SCOPE_LINK
)

// linkInfo is what the router needs to know about a link.
type linkInfo struct {
	Index int
	Name  string
	MTU   int
}

// kaddr is one interface address as the kernel sees it.
type kaddr struct {
	LinkIndex int          `json:"link"`
	Prefix    netip.Prefix `json:"prefix"`
	Peer      netip.Addr   `json:"peer,omitzero"`
}

// kroute is one route in a kernel table. Zero Gw means on-link.
type kroute struct {
	Dst       netip.Prefix `json:"dst"`
	Gw        netip.Addr   `json:"gw,omitzero"`
	LinkIndex int          `json:"link"`
	Metric    int          `json:"metric"`
	Table     int          `json:"table"`
	Protocol  int          `json:"proto,omitempty"`
	Scope     int          `json:"scope,omitempty"`
}

// key is the kernel's identity of a route: two routes with the same key
// cannot both exist (adding the second fails with EEXIST).
type routeKey struct {
	Dst    netip.Prefix
	Metric int
	Table  int
}

func (r kroute) key() routeKey { return routeKey{r.Dst, r.Metric, r.Table} }

// sameRoute compares the attributes that matter for forwarding.
func (r kroute) sameRoute(o kroute) bool {
	return r.Dst == o.Dst && r.Gw == o.Gw && r.LinkIndex == o.LinkIndex && r.Metric == o.Metric && r.Table == o.Table
}

func (r kroute) String() string {
	var b strings.Builder
	b.WriteString(r.Dst.String())
	if r.Gw.IsValid() {
		fmt.Fprintf(&b, " via %v", r.Gw)
	}
	fmt.Fprintf(&b, " dev#%d metric %d", r.LinkIndex, r.Metric)
	if r.Table != tableMain && r.Table != 0 {
		fmt.Fprintf(&b, " table %d", r.Table)
	}
	return b.String()
}

// kernel is the slice of rtnetlink the router uses. The production
// implementation is netlinkKernel; tests use a recording fake.
type kernel interface {
	LinkByName(name string) (linkInfo, error)
	LinkByIndex(index int) (linkInfo, error)
	LinkSetMTU(index, mtu int) error
	AddrList(index int) ([]kaddr, error)
	AddrAdd(a kaddr) error
	AddrDel(a kaddr) error
	// RouteList lists the routes of the main table of one family
	// (unix.AF_INET or unix.AF_INET6).
	RouteList(family int) ([]kroute, error)
	// RouteGet asks the kernel which route it would use for dst.
	RouteGet(dst netip.Addr) (kroute, error)
	RouteAdd(r kroute) error
	RouteReplace(r kroute) error
	RouteDel(r kroute) error
}

// errNoLink is returned (wrapped) by kernel implementations when a link does
// not exist.
var errNoLink = errors.New("link not found")

// isGone reports whether err means the object to delete is already absent,
// which makes deletes idempotent.
func isGone(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EADDRNOTAVAIL) ||
		errors.Is(err, unix.ENODEV) || errors.Is(err, errNoLink)
}

// netlinkKernel implements kernel with vishvananda/netlink in the network
// namespace its handle was opened in.
type netlinkKernel struct {
	h *netlink.Handle
}

// newNetlinkKernel opens a netlink handle in the calling thread's network
// namespace.
func newNetlinkKernel() (*netlinkKernel, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening rtnetlink: %w", err)
	}
	return &netlinkKernel{h: h}, nil
}

// newNetlinkKernelAt opens a netlink handle in the network namespace ns;
// live tests use it to stay out of the host namespace.
func newNetlinkKernelAt(ns netns.NsHandle) (*netlinkKernel, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening rtnetlink in namespace: %w", err)
	}
	return &netlinkKernel{h: h}, nil
}

func (k *netlinkKernel) close() { k.h.Close() }

func (k *netlinkKernel) link(index int) (netlink.Link, error) {
	l, err := k.h.LinkByIndex(index)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("link %d: %w", index, errNoLink)
		}
		return nil, fmt.Errorf("looking up link %d: %w", index, err)
	}
	return l, nil
}

func toInfo(l netlink.Link) linkInfo {
	a := l.Attrs()
	return linkInfo{Index: a.Index, Name: a.Name, MTU: a.MTU}
}

func (k *netlinkKernel) LinkByName(name string) (linkInfo, error) {
	l, err := k.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return linkInfo{}, fmt.Errorf("link %q: %w", name, errNoLink)
		}
		return linkInfo{}, fmt.Errorf("looking up link %q: %w", name, err)
	}
	return toInfo(l), nil
}

func (k *netlinkKernel) LinkByIndex(index int) (linkInfo, error) {
	l, err := k.link(index)
	if err != nil {
		return linkInfo{}, err
	}
	return toInfo(l), nil
}

func (k *netlinkKernel) LinkSetMTU(index, mtu int) error {
	l, err := k.link(index)
	if err != nil {
		return err
	}
	return k.h.LinkSetMTU(l, mtu)
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func ipNetToPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	if bits == 32 {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, ones), true
}

func ipToAddr(ip net.IP) netip.Addr {
	if ip == nil {
		return netip.Addr{}
	}
	if v4 := ip.To4(); v4 != nil {
		return netip.AddrFrom4([4]byte(v4))
	}
	a, _ := netip.AddrFromSlice(ip)
	return a
}

func (k *netlinkKernel) nlAddr(a kaddr) *netlink.Addr {
	na := &netlink.Addr{IPNet: prefixToIPNet(a.Prefix)}
	if a.Peer.IsValid() {
		na.Peer = prefixToIPNet(netip.PrefixFrom(a.Peer, a.Peer.BitLen()))
	}
	return na
}

func (k *netlinkKernel) AddrList(index int) ([]kaddr, error) {
	l, err := k.link(index)
	if err != nil {
		return nil, err
	}
	var addrs []netlink.Addr
	for range 3 {
		addrs, err = k.h.AddrList(l, unix.AF_UNSPEC)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing addresses of link %d: %w", index, err)
	}
	var out []kaddr
	for _, a := range addrs {
		p, ok := ipNetToPrefix(a.IPNet)
		if !ok {
			continue
		}
		ka := kaddr{LinkIndex: index, Prefix: p}
		if a.Peer != nil {
			if pp, ok := ipNetToPrefix(a.Peer); ok && pp.Addr() != p.Addr() {
				ka.Peer = pp.Addr()
			}
		}
		out = append(out, ka)
	}
	return out, nil
}

func (k *netlinkKernel) AddrAdd(a kaddr) error {
	l, err := k.link(a.LinkIndex)
	if err != nil {
		return err
	}
	return k.h.AddrAdd(l, k.nlAddr(a))
}

func (k *netlinkKernel) AddrDel(a kaddr) error {
	l, err := k.link(a.LinkIndex)
	if err != nil {
		return err
	}
	return k.h.AddrDel(l, k.nlAddr(a))
}

func toKroute(r netlink.Route) (kroute, bool) {
	kr := kroute{
		Gw:        ipToAddr(r.Gw),
		LinkIndex: r.LinkIndex,
		Metric:    r.Priority,
		Table:     r.Table,
		Protocol:  int(r.Protocol),
		Scope:     int(r.Scope),
	}
	if r.Dst != nil {
		p, ok := ipNetToPrefix(r.Dst)
		if !ok {
			return kr, false
		}
		kr.Dst = p
	} else if r.Family == unix.AF_INET6 {
		kr.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	} else {
		kr.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	if r.Table == 0 {
		kr.Table = tableMain
	}
	return kr, true
}

func (k *netlinkKernel) RouteList(family int) ([]kroute, error) {
	var (
		rs  []netlink.Route
		err error
	)
	for range 3 {
		rs, err = k.h.RouteListFiltered(family, &netlink.Route{Table: tableMain}, netlink.RT_FILTER_TABLE)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	var out []kroute
	for _, r := range rs {
		if r.Type != unix.RTN_UNICAST && r.Type != 0 {
			continue
		}
		if kr, ok := toKroute(r); ok && kr.Dst.Addr().Is4() == (family == unix.AF_INET) {
			out = append(out, kr)
		}
	}
	return out, nil
}

func (k *netlinkKernel) RouteGet(dst netip.Addr) (kroute, error) {
	rs, err := k.h.RouteGet(dst.AsSlice())
	if err != nil {
		return kroute{}, fmt.Errorf("looking up route to %v: %w", dst, err)
	}
	if len(rs) == 0 {
		return kroute{}, fmt.Errorf("looking up route to %v: %w", dst, unix.ENETUNREACH)
	}
	kr, _ := toKroute(rs[0])
	kr.Dst = netip.PrefixFrom(dst, dst.BitLen())
	return kr, nil
}

func (k *netlinkKernel) nlRoute(r kroute) *netlink.Route {
	nr := &netlink.Route{
		Dst:       prefixToIPNet(r.Dst),
		LinkIndex: r.LinkIndex,
		Priority:  r.Metric,
		Table:     r.Table,
		Protocol:  netlink.RouteProtocol(r.Protocol),
		Scope:     netlink.Scope(r.Scope),
	}
	if r.Gw.IsValid() {
		nr.Gw = r.Gw.AsSlice()
	}
	if r.Dst.Addr().Is4() {
		nr.Family = unix.AF_INET
	} else {
		nr.Family = unix.AF_INET6
	}
	return nr
}

func (k *netlinkKernel) RouteAdd(r kroute) error     { return k.h.RouteAdd(k.nlRoute(r)) }
func (k *netlinkKernel) RouteReplace(r kroute) error { return k.h.RouteReplace(k.nlRoute(r)) }

func (k *netlinkKernel) RouteDel(r kroute) error {
	nr := k.nlRoute(r)
	// Deletes must not depend on how the route was tagged when it was added
	// (a restored route keeps its original protocol); the nexthop and metric
	// already pin down the route.
	nr.Protocol = 0
	nr.Scope = netlink.SCOPE_NOWHERE
	return k.h.RouteDel(nr)
}
