// Package interop runs clients against a real OpenVPN 2.6 server inside network-namespace labs
// (see tests/lab). The tests skip unless OVPND_LAB=1 and run as root; `make interop` sets both.
package interop

import (
	"os"
	"testing"

	"github.com/ovpnd/ovpnd/tests/lab"
)

func TestMain(m *testing.M) { os.Exit(lab.Main(m)) }
