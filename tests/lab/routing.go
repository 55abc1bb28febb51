package lab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// AddServerOnlyAddr puts addr (an address with prefix length, IPv4 or IPv6) on the server
// namespace's loopback and blackholes it for packets arriving over the underlay, so that the
// client can reach it only through the tunnel: the server's OpenVPN hands packets from the
// tunnel to its kernel, which delivers them locally.
func (l *Lab) AddServerOnlyAddr(addr string) {
	l.tb.Helper()
	p, err := netip.ParsePrefix(addr)
	if err != nil {
		l.tb.Fatalf("lab: AddServerOnlyAddr(%q): %v", addr, err)
	}
	fam := "-4"
	if p.Addr().Is6() {
		fam = "-6"
	}
	host := netip.PrefixFrom(p.Addr(), p.Addr().BitLen()).String()
	l.serverCmds(
		[]string{"ip", fam, "addr", "add", addr, "dev", "lo"},
		[]string{"ip", fam, "rule", "add", "pref", "10", "iif", vethName, "to", host, "blackhole"},
	)
}

// AddServerUnderlayAddr adds an address that the client reaches over the underlay: on the
// server's veth (as a second gateway address, 198.18.0.3/24) or on its loopback (as a server
// address one hop away, 192.0.2.1/32, reached through the client's default gateway).
func (l *Lab) AddServerUnderlayAddr(addr, dev string) {
	l.tb.Helper()
	if dev == "" {
		dev = vethName
	}
	l.serverCmds([]string{"ip", "addr", "add", addr, "dev", dev, "nodad"})
}

func (l *Lab) serverCmds(cmds ...[]string) {
	l.tb.Helper()
	for _, args := range cmds {
		if out, err := exec.Command("ip", append([]string{"-n", l.ServerNS}, args[1:]...)...).CombinedOutput(); err != nil {
			l.tb.Fatalf("lab: %s in server namespace: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
}

// ClientRouteGet returns the first line of `ip route get ADDR` in the client namespace, e.g.
// "203.0.113.7 dev tun0 src 10.8.0.2 uid 0".
func (l *Lab) ClientRouteGet(addr string) string {
	l.tb.Helper()
	out, err := l.ClientExec(context.Background(), "ip", "route", "get", addr)
	if err != nil {
		l.tb.Fatalf("lab: %v", err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// ClientLinkStats returns the packet counters of a client interface (from sysfs inside the
// namespace).
func (l *Lab) ClientLinkStats(dev string) (rxPackets, txPackets uint64) {
	l.tb.Helper()
	read := func(name string) uint64 {
		out, err := l.ClientExec(context.Background(), "cat", "/sys/class/net/"+dev+"/statistics/"+name)
		if err != nil {
			l.tb.Fatalf("lab: %v", err)
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
		if err != nil {
			l.tb.Fatalf("lab: %s of %s: %v", name, dev, err)
		}
		return v
	}
	return read("rx_packets"), read("tx_packets")
}

// ClientRoutes returns `ip [-6] route show` lines of the client's main table that match
// pred, trimmed.
func (l *Lab) ClientRoutes(ipv6 bool, pred func(line string) bool) []string {
	l.tb.Helper()
	fam := "-4"
	if ipv6 {
		fam = "-6"
	}
	out, err := l.ClientExec(context.Background(), "ip", fam, "route", "show")
	if err != nil {
		l.tb.Fatalf("lab: %v", err)
	}
	var res []string
	for line := range strings.SplitSeq(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && (pred == nil || pred(line)) {
			res = append(res, line)
		}
	}
	return res
}

// WaitClientRoute polls the client's routes until one satisfies pred.
func (l *Lab) WaitClientRoute(ctx context.Context, ipv6 bool, pred func(line string) bool) (string, error) {
	for {
		if r := l.ClientRoutes(ipv6, pred); len(r) > 0 {
			return r[0], nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for a route: %w; routes:\n%s", ctx.Err(), strings.Join(l.ClientRoutes(ipv6, nil), "\n"))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
