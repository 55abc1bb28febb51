// Package daemon tests `ovpnd daemon`, `ovpnd instance` and ovpnctl end to end: a private
// dbus-daemon with the project's policy file, a fake polkit authority, throwaway users, and
// a real OpenVPN 2.6 server in a namespace lab (tests/lab). The lab tests skip unless
// OVPND_LAB=1 and root; `make interop` sets both.
package daemon

import (
	"os"
	"testing"

	"github.com/ovpnd/ovpnd/tests/lab"
)

func TestMain(m *testing.M) {
	// The test binary doubles as a tiny D-Bus client run as another user (see helper_test.go).
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	if os.Getenv(spoofEnv) != "" {
		os.Exit(spoofMain())
	}
	os.Exit(lab.Main(m))
}
