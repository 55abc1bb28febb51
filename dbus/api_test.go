package dbus

import (
	"encoding/xml"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"work", true},
		{"a", true},
		{"user@corp-vpn.example_1", true},
		{strings.Repeat("x", MaxNameLen), true},
		{strings.Repeat("x", MaxNameLen+1), false},
		{"", false},
		{"has space", false},
		{"../etc", false},
		{"slash/", false},
		{"nul\x00", false},
		{"ümlaut", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidName(tc.name); got != tc.ok {
				t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.ok)
			}
		})
	}
}

func TestEscapeLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "_"},
		{"work", "work"},
		{"1vpn", "_31vpn"},
		{"a1", "a1"},
		{"corp-vpn", "corp_2dvpn"},
		{"me@host.x", "me_40host_2ex"},
		{"under_score", "under_5fscore"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got := EscapeLabel(tc.in)
			if got != tc.want {
				t.Fatalf("EscapeLabel(%q) = %q, want %q", tc.in, got, tc.want)
			}
			back, ok := UnescapeLabel(got)
			if !ok || back != tc.in {
				t.Errorf("UnescapeLabel(%q) = %q, %v; want %q", got, back, ok, tc.in)
			}
		})
	}
	for _, bad := range []string{"_4", "_zz", "a_2", "_41" /* 'A' is never escaped */, "_31_"} {
		if _, ok := UnescapeLabel(bad); ok {
			t.Errorf("UnescapeLabel(%q) accepted text EscapeLabel cannot produce", bad)
		}
	}
	if got := InstanceBusName("1-x"); got != "net.ovpnd1.instance._31_2dx" {
		t.Errorf("InstanceBusName = %q", got)
	}
	if got := SessionPath("a.b"); got != "/net/ovpnd1/session/a_2eb" {
		t.Errorf("SessionPath = %q", got)
	}
}

// validBusElement is the D-Bus rule for a bus-name or path element made by EscapeLabel.
func validBusElement(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func FuzzEscapeLabel(f *testing.F) {
	for _, s := range []string{"", "work", "1x", "a-b.c@d", "\xff\x00", "_5f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 256 {
			return
		}
		e := EscapeLabel(s)
		if !validBusElement(e) {
			t.Fatalf("EscapeLabel(%q) = %q is not a valid element", s, e)
		}
		back, ok := UnescapeLabel(e)
		if !ok || back != s {
			t.Fatalf("round trip of %q: %q, %v", s, back, ok)
		}
		// UnescapeLabel on arbitrary input must not panic and must only accept canonical text.
		if u, ok := UnescapeLabel(s); ok && EscapeLabel(u) != s {
			t.Fatalf("UnescapeLabel(%q) accepted non-canonical text", s)
		}
	})
}

func TestIntrospectionParses(t *testing.T) {
	var node struct {
		Interfaces []struct {
			Name string `xml:"name,attr"`
		} `xml:"interface"`
	}
	if err := xml.Unmarshal([]byte(Introspection), &node); err != nil {
		t.Fatalf("net.ovpnd1.xml: %v", err)
	}
	var names []string
	for _, i := range node.Interfaces {
		names = append(names, i.Name)
	}
	if strings.Join(names, ",") != ManagerInterface+","+SessionInterface {
		t.Errorf("interfaces = %v", names)
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"connected 10.8.0.2":       "connected 10.8.0.2",
		"grüße":                    "grüße",
		"\x1b[2Jcleared":           "\uFFFD[2Jcleared",
		"title\x1b]0;x\x07":        "title\uFFFD]0;x\uFFFD",
		"c1 \u009b31m":             "c1 \uFFFD31m",
		"bidi \u202eevil":          "bidi \uFFFDevil",
		"bad \xff utf8":            "bad \uFFFD utf8",
		"line\nbreak\ttab\rreturn": "line\uFFFDbreak\uFFFDtab\uFFFDreturn",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}
