package routing

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Sanitize returns a copy of cfg with what routing would refuse to apply left
// out, and the reasons, joined. It is for a tunnel whose network settings
// something else applies (NetworkManager, through ovpnd's external network
// mode): the same bounds and checks hold as for the kernel (MTU range,
// MaxAddrs, MaxRoutes, unicast addresses, DNS names), so a hostile server
// cannot reach that other program with what ovpnd itself would not install.
func Sanitize(cfg *Config) (*Config, error) {
	if cfg == nil {
		return nil, nil
	}
	var errs []error
	out := &Config{Link: cfg.Link}
	if cfg.MTU != 0 {
		if cfg.MTU < 68 || cfg.MTU > 65535 {
			errs = append(errs, fmt.Errorf("MTU %d out of range", cfg.MTU))
		} else {
			out.MTU = cfg.MTU
		}
	}
	for _, a := range cfg.Addrs {
		if err := validateAddr(a); err != nil {
			errs = append(errs, err)
			continue
		}
		if len(out.Addrs) == MaxAddrs {
			errs = append(errs, fmt.Errorf("more than %d addresses", MaxAddrs))
			break
		}
		if !slices.Contains(out.Addrs, a) {
			out.Addrs = append(out.Addrs, a)
		}
	}
	for _, rt := range cfg.Routes {
		v, err := validateRoute(rt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(out.Routes) == MaxRoutes {
			errs = append(errs, fmt.Errorf("more than %d routes", MaxRoutes))
			break
		}
		out.Routes = append(out.Routes, v)
	}
	if rd := cfg.Redirect; rd != nil {
		c := *rd
		out.Redirect = &c
	}
	for _, s := range cfg.ServerAddrs {
		if s.IsValid() && !s.IsUnspecified() {
			out.ServerAddrs = append(out.ServerAddrs, s.Unmap())
		}
	}
	d, err := sanitizeDNS(cfg.DNS)
	if err != nil {
		errs = append(errs, err)
	}
	out.DNS = d
	return out, errors.Join(errs...)
}

// recordExternal makes the host ledger's claims of an External tunnel those
// of cfg, without applying anything: its addresses, its routes into the
// tunnel, a redirect's default routes (NetworkManager installs 0.0.0.0/0 and
// ::/0 rather than the def1 halves), the host routes to its servers, and its
// DNS domains. Other owners' tunnels are then held to them by the policy as
// to any tunnel's. nil, or a Config without a link, drops the claims.
func (r *Router) recordExternal(l *ledger, cfg *Config) error {
	c, err := Sanitize(cfg)
	if c == nil || c.Link == "" {
		l.forgetExternal(r.instance)
		return err
	}
	li, lerr := r.k.LinkByName(c.Link)
	if lerr != nil {
		l.forgetExternal(r.instance)
		return errors.Join(err, fmt.Errorf("routing: %w", lerr))
	}
	// The per-tunnel record first, as for applied changes: a crash after
	// this leaves a record whose cleanup releases the claims.
	if werr := r.saveState(); werr != nil {
		return errors.Join(err, fmt.Errorf("routing: recording state: %w", werr))
	}
	t := l.tunnel(r.instance, true)
	t.Owner, t.Privileged, t.LinkIndex, t.External = r.owner, r.privileged, li.Index, true
	t.Addrs, t.Recorded, t.Domains = nil, nil, nil
	for _, a := range c.Addrs {
		t.Addrs = append(t.Addrs, a.Prefix)
	}
	add := func(dst netip.Prefix, full bool) {
		if !slices.ContainsFunc(t.Recorded, func(x recordedRoute) bool { return x.Dst == dst }) {
			t.Recorded = append(t.Recorded, recordedRoute{Dst: dst, Full: full})
		}
	}
	if rd := c.Redirect; rd != nil {
		if !rd.NoIPv4 {
			add(netip.PrefixFrom(netip.IPv4Unspecified(), 0), true)
		}
		if rd.IPv6 {
			add(netip.PrefixFrom(netip.IPv6Unspecified(), 0), true)
		}
	}
	for _, rt := range c.Routes {
		// A net_gateway route is not handed to the applier (it could
		// only put it on the tunnel): nothing to claim.
		if !rt.ViaNetGateway {
			add(rt.Dst, false)
		}
	}
	for _, s := range c.ServerAddrs {
		add(netip.PrefixFrom(s, s.BitLen()), false)
	}
	if c.DNS != nil {
		t.Domains = append(slices.Clone(c.DNS.Search), c.DNS.RoutingDomains...)
	}
	return err
}

// forgetExternal drops the claims of External tunnel id.
func (l *ledger) forgetExternal(id string) {
	l.Tunnels = slices.DeleteFunc(l.Tunnels, func(t *ledgerTunnel) bool { return t.ID == id && t.External })
}
