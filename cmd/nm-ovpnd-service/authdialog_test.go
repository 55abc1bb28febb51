package main

import (
	"bytes"
	"strings"
	"testing"
)

// nmcliInput is what nmcli writes to an auth-dialog: each data item and secret as KEY/VAL
// lines (a value of several lines as several VAL lines), then DONE and QUIT.
func nmcliInput(data, secrets map[string]string) string {
	var b strings.Builder
	for k, v := range data {
		b.WriteString("DATA_KEY=" + k + "\n")
		for _, l := range strings.Split(v, "\n") {
			b.WriteString("DATA_VAL=" + l + "\n")
		}
		b.WriteString("\n")
	}
	for k, v := range secrets {
		b.WriteString("SECRET_KEY=" + k + "\nSECRET_VAL=" + v + "\n\n")
	}
	b.WriteString("DONE\nQUIT\n")
	return b.String()
}

func TestAuthDialog(t *testing.T) {
	args := []string{"-u", "0b4c", "-n", "work", "-s", "org.freedesktop.NetworkManager.ovpnd", "--external-ui-mode", "-i"}
	for _, tc := range []struct {
		name    string
		args    []string
		data    map[string]string
		secrets map[string]string
		want    []string
		not     []string
	}{
		{"password asked", args, map[string]string{"profile": "client\nauth-user-pass\nremote x\n", "username": "alice"}, nil,
			[]string{"[VPN Plugin UI]\nVersion=2\n", "Title=Authenticate VPN work", "[password]\n", "IsSecret=true\nShouldAsk=true"}, nil},
		{"stored password not asked", args, map[string]string{"profile": "auth-user-pass\n"}, map[string]string{"password": "x"},
			[]string{"[password]\n", "ShouldAsk=false"}, nil},
		{"stored password asked again (-r)", append(args, "-r"), map[string]string{"profile": "auth-user-pass\n"}, map[string]string{"password": "x"},
			[]string{"ShouldAsk=true"}, nil},
		{"certificate only", args, map[string]string{"profile": "client\nremote x\n"}, nil, []string{"[VPN Plugin UI]"}, []string{"[password]"}},
		{"password not required", args, map[string]string{"profile": "auth-user-pass\n", "password-flags": "4"}, nil, nil, []string{"[password]"}},
		{"challenge hint", append(args, "-t", "challenge-response", "-t", "x-vpn-message:Enter PIN", "-t", "x-echo"), map[string]string{"profile": "auth-user-pass\n"}, nil,
			[]string{"Description=Enter PIN", "[challenge-response]\nValue=\nLabel=Enter PIN\nIsSecret=true\nShouldAsk=true\nForceEcho=true"}, []string{"[password]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := runAuthDialog(tc.args, strings.NewReader(nmcliInput(tc.data, tc.secrets)), &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out.String(), n) {
					t.Errorf("output has %q:\n%s", n, out.String())
				}
			}
		})
	}
	var out, errOut bytes.Buffer
	if code := runAuthDialog([]string{"-u", "x", "-n", "work", "-s", "s"}, strings.NewReader("DONE\n"), &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "external-ui-mode") {
		t.Errorf("GUI mode: exit %d, %s", code, errOut.String())
	}
}

// FuzzAuthDialogInput: whatever an agent writes, the dialog answers or refuses, and the
// keyfile it prints has one line per key (no value can inject a group or a key).
func FuzzAuthDialogInput(f *testing.F) {
	f.Add("DATA_KEY=profile\nDATA_VAL=auth-user-pass\n\nDONE\n", "work")
	f.Add("DATA_KEY=password-flags\nDATA_VAL=x\nSECRET_KEY=password\nSECRET_VAL=\n", "a\nb]")
	f.Fuzz(func(t *testing.T, in, name string) {
		var out bytes.Buffer
		runAuthDialog([]string{"-n", name, "--external-ui-mode", "-t", "x-vpn-message:" + in, "-t", "challenge-response"}, strings.NewReader(in), &out, &bytes.Buffer{})
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(line, "[") && line != "[VPN Plugin UI]" && line != "[password]" && line != "[challenge-response]" {
				t.Fatalf("injected group %q in\n%s", line, out.String())
			}
		}
	})
}
