package config

import (
	"fmt"

	"github.com/ovpnd/ovpnd/engine/push"
)

// PushSource is the file name Warnings from pushed options carry; Line is the option's
// 1-based position in the reply.
const PushSource = "PUSH_REPLY"

// PushPolicy is what the profile says about pushes (pull-filter rules in order, route-nopull),
// as data for push.Parse: the engine parses and filters the push once, and everything else
// uses its result.
func (c *Config) PushPolicy() push.Policy {
	pol := push.Policy{RouteNoPull: c.RouteNoPull}
	for _, f := range c.PullFilters {
		a := push.Accept
		switch f.Action {
		case FilterIgnore:
			a = push.Ignore
		case FilterReject:
			a = push.Reject
		}
		pol.Filters = append(pol.Filters, push.Filter{Action: a, Text: f.Text})
	}
	return pol
}

// PushedNet reads the values of the pushed network options (push.Reply.Net: already
// tokenized, filtered and arity-checked by push.Parse) with the grammar that reads them in a
// profile. An option whose values do not parse is left out with a warning; the rest apply.
func PushedNet(opts []push.Option) (*NetSettings, []Warning) {
	n := &NetSettings{}
	var warns []Warning
	for _, o := range opts {
		var err error
		if len(n.Routes)+len(n.RoutesIPv6)+len(n.DHCPOptions) >= MaxListEntries {
			err = fmt.Errorf("more than %d entries", MaxListEntries)
		} else {
			err = applyNetSetting(n, o.Args, o.Name)
		}
		if err != nil {
			warns = append(warns, Warning{File: PushSource, Line: o.Line, Msg: fmt.Sprintf("ignoring pushed option %q: %v", o.String(), err)})
		}
	}
	return n, warns
}
