package session

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ovpnd/ovpnd/config"
)

// TestExternalNetPublishes: in external network mode a push reply is published in
// Status.NetConfig (bounded and checked as routing would) instead of being applied, each
// push with a new generation, and teardown withdraws it.
func TestExternalNetPublishes(t *testing.T) {
	r, _, logs := newTestRunner(t, &config.Config{TunMTU: 1500})
	r.s.opts.ExternalNet = true
	claims := &claimsRecorder{}
	r.router = &externalNet{s: r.s, claims: claims}
	server := netip.MustParseAddr("198.18.0.1")
	push := append(append([]string(nil), labPush...), "route 192.0.2.0 255.255.255.0 net_gateway", "dhcp-option DNS 0.0.0.0", "dhcp-option DOMAIN bad..name")
	if err := applyPushLines(r, push, server); err != nil {
		t.Fatal(err)
	}
	st := r.s.Status()
	c := st.NetConfig
	if c == nil || st.NetGen != 1 {
		t.Fatalf("nothing published (gen %d)", st.NetGen)
	}
	if claims.last() != c {
		t.Errorf("claimed %+v, published %+v", claims.last(), c)
	}
	if c.Link != "tun0" || c.MTU != 1500 || len(c.ServerAddrs) != 1 || c.ServerAddrs[0] != server {
		t.Errorf("link %q MTU %d servers %v", c.Link, c.MTU, c.ServerAddrs)
	}
	if len(c.Addrs) != 1 || c.Addrs[0].Prefix != netip.MustParsePrefix("10.8.0.2/24") {
		t.Errorf("addresses %v", c.Addrs)
	}
	if len(c.Routes) != 2 || c.Routes[0].Gateway != netip.MustParseAddr("10.8.0.1") || !c.Routes[1].ViaNetGateway {
		t.Errorf("routes %+v", c.Routes)
	}
	if c.Redirect == nil || !c.Redirect.Def1 || c.DNS == nil || len(c.DNS.Servers) != 1 || c.DNS.Search[0] != "lab.test" {
		t.Errorf("redirect %+v DNS %+v", c.Redirect, c.DNS)
	}
	// 0.0.0.0 is refused as for any session; a name routing would refuse is left out and said so.
	if !strings.Contains(logs(), "refusing pushed dhcp-option DNS 0.0.0.0") || !strings.Contains(logs(), `search domain "bad..name": invalid`) {
		t.Errorf("dropped DNS server not logged:\n%s", logs())
	}
	if st.DNSMode != "" && st.DNSMode != DNSModeExternal {
		t.Errorf("DNS mode %q", st.DNSMode)
	}
	if err := applyPushLines(r, labPush, server); err != nil {
		t.Fatal(err)
	}
	if st := r.s.Status(); st.NetGen != 2 || st.NetConfig == c {
		t.Errorf("a second push: generation %d", st.NetGen)
	} else if claims.last() != st.NetConfig {
		t.Errorf("claimed %+v, published %+v", claims.last(), st.NetConfig)
	}
	if err := r.teardown(); err != nil {
		t.Fatal(err)
	}
	if st := r.s.Status(); st.NetConfig != nil {
		t.Errorf("teardown left %+v", st.NetConfig)
	}
	if claims.last() != nil || !claims.closed {
		t.Errorf("teardown left the claims %+v (closed %v)", claims.last(), claims.closed)
	}
}

// claimsRecorder stands for the routing.Router that records an external session's claims.
type claimsRecorder struct {
	fakeRouter
	closed bool
}

func (c *claimsRecorder) Close() error {
	c.closed = true
	return nil
}
