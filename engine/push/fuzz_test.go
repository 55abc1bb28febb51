package push

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// spell writes name with each byte spelled as enc says (plain, backslash-escaped, in double
// quotes, in single quotes), after some blanks: every way a server can quote an option name.
func spell(name string, enc []byte) string {
	var b strings.Builder
	if len(enc) > 0 {
		b.WriteString([]string{"", " ", "\t", " \v\f"}[enc[0]%4])
	}
	for i := 0; i < len(name); i++ {
		op := byte(0)
		if i+1 < len(enc) {
			op = enc[i+1] % 4
		}
		c := string(name[i])
		switch op {
		case 0:
			b.WriteString(c)
		case 1:
			b.WriteString(`\` + c)
		case 2:
			b.WriteString(`"` + c + `"`)
		case 3:
			b.WriteString("'" + c + "'")
		}
	}
	return b.String()
}

// FuzzFilteredNameNeverApplied is the property that closes the quoting bypass: for every
// option name a server may push, a pull-filter on that name (ignore, or reject) and
// route-nopull for its class stop it however the server quotes or escapes it, and whatever
// arguments follow.
func FuzzFilteredNameNeverApplied(f *testing.F) {
	names := Names()
	for i := range names {
		f.Add(uint8(i), []byte{0}, "10.0.0.0 255.0.0.0")
		f.Add(uint8(i), []byte{1, 1, 2, 3, 0, 1, 2, 3}, "def1")
		f.Add(uint8(i), []byte{2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}, "60")
		f.Add(uint8(i), []byte{3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3}, `"DNS" 10.0.0.1`)
	}
	f.Fuzz(func(t *testing.T, which uint8, enc []byte, args string) {
		name := names[int(which)%len(names)]
		line := spell(name, enc)
		if args != "" {
			line += " " + args
		}
		words, err := Words(line)
		if err != nil {
			return // the arguments did not tokenize: nothing can be applied anyway
		}
		if len(words) == 0 || words[0] != name {
			t.Fatalf("spelling %q of %q tokenizes to %q", line, name, words)
		}
		empty := &Reply{}
		r, err := Parse([]string{line}, Policy{Filters: []Filter{{Ignore, name}}})
		if err != nil {
			t.Fatalf("ignore: %v", err)
		}
		if len(r.Warnings) != 1 {
			t.Fatalf("ignore %q: warnings %v", line, r.Warnings)
		}
		r.Warnings = nil
		if !reflect.DeepEqual(r, empty) {
			t.Fatalf("ignore %q: applied %+v", line, r)
		}
		var rej *RejectError
		if _, err := Parse([]string{line}, Policy{Filters: []Filter{{Reject, name}}}); !errors.As(err, &rej) {
			t.Fatalf("reject %q: %v", line, err)
		}
		if routeNoPull[name] {
			r, err := Parse([]string{line}, Policy{RouteNoPull: true})
			if err != nil || len(r.Accepted) != 0 || len(r.Net) != 0 {
				t.Fatalf("route-nopull %q: %+v, %v", line, r, err)
			}
		}
	})
}

// FuzzParse: nothing a server sends panics, and every option is accepted or warned about.
func FuzzParse(f *testing.F) {
	f.Add("route-gateway 10.8.0.1,topology subnet,ping 10,ping-restart 120,ifconfig 10.8.0.2 255.255.255.0,peer-id 0,cipher AES-256-GCM")
	f.Add("route-ipv6 2001:db8::/32,dhcp-option DNS6 2001:db8::1,dns server 0 address [::1]:53,auth-token-user Ym9i,redirect-gateway def1 ipv6")
	f.Add("dev tap,remote x,up /bin/sh,\"unterminated,push-continuation 2,auth-token \"S3CRET")
	f.Fuzz(func(t *testing.T, msg string) {
		lines := strings.Split(msg, ",")
		r, err := Parse(lines, Policy{Filters: []Filter{{Ignore, "ping"}}})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range lines {
			if w, err := Words(l); err != nil || len(w) > 0 {
				n++
			}
		}
		if len(r.Accepted)+len(r.Warnings) < n-countContinuations(lines) {
			t.Fatalf("%d lines, %d accepted, %d warnings", n, len(r.Accepted), len(r.Warnings))
		}
	})
}

func countContinuations(lines []string) int {
	n := 0
	for _, l := range lines {
		if w, err := Words(l); err == nil && len(w) == 2 && w[0] == "push-continuation" && (w[1] == "1" || w[1] == "2") {
			n++
		}
	}
	return n
}
