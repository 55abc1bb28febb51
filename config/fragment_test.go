package config

import (
	"bytes"
	"strings"
	"testing"
)

func TestFragment(t *testing.T) {
	for _, tc := range []struct {
		name, text     string
		frag           int
		mtu            bool
		wantErr, wantW string
	}{
		{name: "plain", text: "fragment 1300\n", frag: 1300},
		{name: "mtu flag", text: "fragment 1400 mtu\nmssfix 1400 mtu\n", frag: 1400, mtu: true},
		{name: "repeated", text: "fragment 1300\nfragment 1300\n", frag: 1300},
		{name: "too small", text: "fragment 67\n", wantErr: "fragment: 67 is below 68"},
		{name: "bad flag", text: "fragment 1300 fixed\n", wantErr: `unknown flag "fixed"`},
		{name: "tcp", text: "fragment 1300\nproto tcp\n", wantErr: "fragment can only be used with UDP"},
		{name: "tcp remote", text: "fragment 1300\nremote other.example.com 443 tcp\n", wantErr: "remote other.example.com uses TCP"},
		{name: "mssfix larger", text: "fragment 1200\nmssfix 1400\n", frag: 1200, wantW: "mssfix 1400 is larger than fragment 1200"},
		{name: "mtu flag mismatch", text: "fragment 1300 mtu\nmssfix 1300\n", frag: 1300, mtu: true, wantW: `both have the "mtu" flag`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ws, err := parseText(t, base+tc.text)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(errText(err), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Fragment != tc.frag || c.FragmentMTU != tc.mtu {
				t.Errorf("Fragment %d mtu %v, want %d %v", c.Fragment, c.FragmentMTU, tc.frag, tc.mtu)
			}
			if w := warnText(ws); tc.wantW != "" && !strings.Contains(w, tc.wantW) || tc.wantW == "" && strings.Contains(w, "fragment") {
				t.Errorf("warnings %q, want %q", w, tc.wantW)
			}
			// The printed profile means the same and prints the same again.
			out := c.Format()
			c2, _, err := ParseInline("printed", out)
			if err != nil {
				t.Fatalf("re-parsing the printed profile: %v\n%s", err, out)
			}
			if c2.Fragment != c.Fragment || c2.FragmentMTU != c.FragmentMTU || c2.MSSFixDefault != c.MSSFixDefault {
				t.Errorf("re-parsed fragment %d/%v mssfix default %v, want %d/%v %v", c2.Fragment, c2.FragmentMTU, c2.MSSFixDefault, c.Fragment, c.FragmentMTU, c.MSSFixDefault)
			}
			if !bytes.Equal(c2.Format(), out) {
				t.Errorf("print is not a fixpoint")
			}
		})
	}
}
