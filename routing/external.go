package routing

import (
	"errors"
	"fmt"
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
