package session

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ovpnd/ovpnd/routing"
)

// maxNetReason bounds the degraded-state reason.
const maxNetReason = 512

// noteNet turns what routing refused (policy) or could not apply (DNS) into
// the reason a connected session shows with its state: the tunnel works,
// but not all of it as asked, and "connected" alone would hide that.
func (s *Session) noteNet(err error) {
	reason := netReason(err)
	s.mu.Lock()
	changed := s.netReason != reason
	s.netReason = reason
	connected := s.status.State == StateConnected
	s.mu.Unlock()
	if changed && connected {
		s.setState(StateConnected, reason)
	}
}

// netReason is "" when err holds no DNS failure and no refusal.
func netReason(err error) string {
	var dns, refused []string
	var walk func(error)
	walk = func(e error) {
		var de *routing.DNSError
		var pe *routing.PolicyError
		switch {
		case e == nil:
		case errors.As(e, &de) && e == error(de):
			dns = append(dns, de.Error())
		case errors.As(e, &pe) && e == error(pe):
			refused = append(refused, pe.What)
		default:
			if j, ok := e.(interface{ Unwrap() []error }); ok {
				for _, x := range j.Unwrap() {
					walk(x)
				}
			} else if u := errors.Unwrap(e); u != nil {
				walk(u)
			}
		}
	}
	walk(err)
	var parts []string
	if len(dns) > 0 {
		parts = append(parts, "DNS degraded: "+strings.Join(dns, "; "))
	}
	if len(refused) > 0 {
		p := "refused: " + refused[0]
		if len(refused) > 1 {
			p += fmt.Sprintf(" (and %d more; see the log)", len(refused)-1)
		}
		parts = append(parts, p)
	}
	r := strings.Join(parts, "; ")
	if len(r) > maxNetReason {
		r = r[:maxNetReason] + "..."
	}
	return r
}
