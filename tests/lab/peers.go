package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// EnvOpenVPN27 names the OpenVPN 2.7.6 binary explicitly; without it the lab looks for
// shared/peers/openvpn-2.7.6 beside the checkout (CI copies shared/ to ../shared) or beside any
// directory above it.
const EnvOpenVPN27 = "OVPND_OPENVPN27"

// peerName is the file name of the OpenVPN 2.7.6 build in shared/peers.
const peerName = "openvpn-2.7.6"

var openvpn27 struct {
	once sync.Once
	path string
	err  error
}

// OpenVPN27Path returns the OpenVPN 2.7.6 binary, or an error that says where it was looked
// for. A binary that exists but does not run (missing libraries) is an error too, so a broken
// CI machine fails instead of skipping.
func OpenVPN27Path() (string, error) {
	openvpn27.once.Do(func() {
		openvpn27.path, openvpn27.err = findOpenVPN27()
	})
	return openvpn27.path, openvpn27.err
}

// errNoPeer marks "not present here", the one case in which tests skip.
var errNoPeer = errors.New("OpenVPN 2.7.6 peer not found")

func findOpenVPN27() (string, error) {
	if p := os.Getenv(EnvOpenVPN27); p != "" {
		return checkPeer(p)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("locating %s: %w", peerName, err)
	}
	// From the package directory up: the checkout's parent holds shared/ in CI; a work tree
	// further down (a git worktree of that checkout) finds it higher up.
	var tried []string
	for dir := wd; ; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "shared", "peers", peerName)
		tried = append(tried, p)
		if _, err := os.Stat(p); err == nil {
			return checkPeer(p)
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	return "", fmt.Errorf("%w (set %s; looked for %s)", errNoPeer, EnvOpenVPN27, strings.Join(tried, ", "))
}

func checkPeer(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("locating %s: %w", p, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("%w: %v", errNoPeer, err)
	}
	// --version exits 1 after printing; what matters is that it loads and prints.
	out, _ := exec.Command(abs, "--version").CombinedOutput()
	if !strings.Contains(string(out), "OpenVPN 2.7") {
		return "", fmt.Errorf("%s does not run (run .ci/install-deps for its libraries): %s", abs, strings.TrimSpace(string(out)))
	}
	return abs, nil
}

// RequireOpenVPN27 returns the OpenVPN 2.7.6 binary, skips the test (visibly, naming where it
// looked) when it is absent, and fails it when it is present but broken.
func RequireOpenVPN27(tb TB) string {
	tb.Helper()
	p, err := OpenVPN27Path()
	if errors.Is(err, errNoPeer) {
		tb.Skipf("SKIP: no OpenVPN 2.7.6 peer: %v", err)
	}
	if err != nil {
		tb.Fatalf("lab: %v", err)
	}
	return p
}
