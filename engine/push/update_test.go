package push

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestParseUpdate(t *testing.T) {
	u, err := ParseUpdate([]string{
		"route 10.9.1.0 255.255.255.0", " route 10.9.2.0 255.255.255.0",
		"-dns", "?block-outside-dns", "?cipher AES-128-GCM", "-redirect-private",
		"dhcp-option DNS 10.8.0.53", "keepalive 5 30", "push-continuation 1",
	}, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"route", "dhcp-option", "keepalive"}; !reflect.DeepEqual(u.Replaced, want) {
		t.Errorf("replaced %q, want %q", u.Replaced, want)
	}
	if want := []string{"dns", "redirect-gateway"}; !reflect.DeepEqual(u.Removed, want) {
		t.Errorf("removed %q, want %q", u.Removed, want)
	}
	if len(u.Reply.Net) != 3 || u.Reply.Ping == nil || *u.Reply.Ping != 5*time.Second {
		t.Errorf("reply %+v", u.Reply)
	}
	if !u.Has("route") || !u.Has("dns") || u.Has("route-ipv6") {
		t.Error("Has")
	}

	for _, tc := range []struct {
		lines []string
		pol   Policy
		want  any
	}{
		{[]string{"cipher AES-128-GCM"}, Policy{}, &UpdateError{}},
		{[]string{"route 10.0.0.0 255.0.0.0", "peer-id 4"}, Policy{}, &UpdateError{}},
		{[]string{"-"}, Policy{}, &UpdateError{}},
		{[]string{"?-route"}, Policy{}, &UpdateError{}},
		{[]string{"route 10.0.0.0 255.0.0.0"}, Policy{Filters: []Filter{{Action: Reject, Text: "route 10."}}}, &RejectError{}},
	} {
		_, err := ParseUpdate(tc.lines, tc.pol)
		switch tc.want.(type) {
		case *UpdateError:
			var e *UpdateError
			if !errors.As(err, &e) {
				t.Errorf("%q: %v, want an UpdateError", tc.lines, err)
			}
		case *RejectError:
			var e *RejectError
			if !errors.As(err, &e) {
				t.Errorf("%q: %v, want a RejectError", tc.lines, err)
			}
		}
	}

	// Filtered and route-nopull options are dropped with a warning, removals included.
	u, err = ParseUpdate([]string{"route 10.0.0.0 255.0.0.0", "-dns", "?route-gateway 10.8.0.9"},
		Policy{Filters: []Filter{{Action: Ignore, Text: "route-gateway"}, {Action: Reject, Text: "route-g"}}, RouteNoPull: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Replaced)+len(u.Removed) != 0 || len(u.Reply.Warnings) != 3 {
		t.Errorf("replaced %q removed %q warnings %v", u.Replaced, u.Removed, u.Reply.Warnings)
	}
}

func TestCanonicalLineRoundTrip(t *testing.T) {
	for _, w := range [][]string{{"dns", "server", "1", "address", "10.0.0.1"}, {"x", "a b", `q"uo\te`, "", "#;"}} {
		got, err := Words(canonicalLine(w))
		if err != nil || !reflect.DeepEqual(got, w) {
			t.Errorf("%q → %q → %q, %v", w, canonicalLine(w), got, err)
		}
	}
}

// FuzzParseUpdate: any PUSH_UPDATE text parses without panicking, and what it sets is a
// subset of what it names.
func FuzzParseUpdate(f *testing.F) {
	f.Add("route 10.9.0.0 255.255.255.0,-dns,?block-outside-dns,dns server 0 address 10.8.0.1")
	f.Add("-route,redirect-gateway def1,keepalive 1 2,push-continuation 2")
	f.Add("?-x,-,?,--route,-?route,cipher x,\"unterminated")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUpdate(splitComma(s), Policy{Filters: []Filter{{Action: Ignore, Text: "dhcp"}}})
		if err != nil {
			return
		}
		for _, o := range u.Reply.Accepted {
			if !updatable[o.Name] {
				t.Fatalf("accepted non-updatable option %q", o.Name)
			}
		}
	})
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}
