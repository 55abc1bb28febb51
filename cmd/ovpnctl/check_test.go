package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovpnd/ovpnd/config"
)

const testdata = "../../config/testdata"

func TestCheck(t *testing.T) {
	valid := filepath.Join(testdata, "valid", "connections.conf")
	warns := filepath.Join(testdata, "valid", "linux-updown.conf")
	invalid := filepath.Join(testdata, "invalid", "ping-conflict.conf")
	tests := []struct {
		name       string
		args       []string
		code       int
		stderr     []string
		wantStdout bool
	}{
		{"no args", []string{"check"}, 2, []string{"usage: ovpnctl check"}, false},
		{"bad flag", []string{"check", "--frob", valid}, 2, []string{"flag provided but not defined"}, false},
		{"print needs one file", []string{"check", "--print", valid, warns}, 2, []string{"--print takes exactly one FILE"}, false},
		{"unknown command", []string{"frob"}, 2, []string{`unknown command "frob"`}, false},
		{"no command", nil, 2, []string{"usage: ovpnctl COMMAND"}, false},
		{"valid", []string{"check", valid}, 0, nil, false},
		{"warnings", []string{"check", warns}, 0, []string{warns + ":9: warning: ignoring script-security: ovpnd never runs scripts"}, false},
		{"invalid", []string{"check", valid, invalid}, 1, []string{invalid + ":6: ping-exit 60 conflicts with keepalive 10 120 on line 5"}, false},
		{"missing file", []string{"check", "/nonexistent/x.conf"}, 1, []string{"/nonexistent/x.conf: open /nonexistent/x.conf: no such file or directory"}, false},
		{"print", []string{"check", "--print", valid}, 0, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, errb.String())
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr:\n%s\nwant line containing %q", errb.String(), w)
				}
			}
			if tc.code == 0 && tc.stderr == nil && errb.Len() != 0 {
				t.Errorf("unexpected stderr:\n%s", errb.String())
			}
			if (out.Len() > 0) != tc.wantStdout {
				t.Errorf("stdout has %d bytes", out.Len())
			}
		})
	}
}

// TestCheckPrintFixpoint checks that checking and printing the printed profile gives the same
// bytes, for every valid profile in the corpus.
func TestCheckPrintFixpoint(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testdata, "valid", "*"))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out1, errb bytes.Buffer
			if code := run([]string{"check", "--print", f}, &out1, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			printed := filepath.Join(t.TempDir(), "printed.ovpn")
			if err := os.WriteFile(printed, out1.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			var out2 bytes.Buffer
			errb.Reset()
			if code := run([]string{"check", "--print", printed}, &out2, &errb); code != 0 {
				t.Fatalf("printed profile: exit %d: %s", code, errb.String())
			}
			if !bytes.Equal(out1.Bytes(), out2.Bytes()) {
				t.Error("printing is not a fixpoint")
			}
			// The daemon's path: the printed profile must parse without opening any file.
			if _, _, err := config.ParseInline("daemon", out1.Bytes()); err != nil {
				t.Errorf("ParseInline: %v", err)
			}
		})
	}
}
