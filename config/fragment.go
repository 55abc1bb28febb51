package config

import (
	"fmt"
	"strings"
)

// minFragment is the smallest --fragment OpenVPN accepts.
const minFragment = 68

// applyFragment reads "fragment N [mtu]" (OpenVPN 2.6 options.c): N is the
// largest UDP payload a data packet may take, or with "mtu" the largest IP
// datagram including the outer IP and UDP headers.
func applyFragment(p *parser, s *scope, it *item) error {
	n, err := parseInt(it.args[0], 65535)
	if err != nil {
		return err
	}
	if n < minFragment {
		return fmt.Errorf("%d is below %d, the smallest value OpenVPN accepts", n, minFragment)
	}
	encap := false
	if len(it.args) > 1 {
		if it.args[1] != "mtu" {
			return fmt.Errorf("unknown flag %q (only mtu)", it.args[1])
		}
		encap = true
	}
	if p.once(s, it, it.name, strings.Join(it.args, " ")) {
		p.cfg.Fragment, p.cfg.FragmentMTU = n, encap
		p.fragmentItem = it
	}
	return nil
}

// finishFragment applies OpenVPN's rules that tie fragment to the transport
// and to mssfix: fragmentation exists for UDP only ("--fragment can only be
// used with --proto udp"), and the warnings OpenVPN prints when mssfix and
// fragment disagree.
func (p *parser) finishFragment() {
	c := p.cfg
	if c.Fragment == 0 {
		return
	}
	for _, cn := range c.Connections {
		if cn.Proto == ProtoTCP {
			p.errf(p.fragmentItem.line, "fragment can only be used with UDP, and remote %s uses TCP", cn.Remote)
			return
		}
	}
	if c.MSSFixDefault {
		// OpenVPN then clamps to "mssfix FRAGMENT mtu" (see the session).
		return
	}
	if c.MSSFix > c.Fragment {
		p.warnf(p.fragmentItem.line, "mssfix %d is larger than fragment %d, so TCP packets will be fragmented; OpenVPN advises fragment >= mssfix", c.MSSFix, c.Fragment)
	}
	if c.MSSFix > 0 && !c.MSSFixFixed && c.MSSFixMTU != c.FragmentMTU {
		p.warnf(p.fragmentItem.line, "mssfix and fragment should both have the \"mtu\" flag or neither")
	}
}
