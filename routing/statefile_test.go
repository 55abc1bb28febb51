package routing

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCheckStateDirRefusesUnsafeDirectories(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership checks apply only when running as root")
	}
	base := t.TempDir()
	good := filepath.Join(base, "good")
	if err := os.Mkdir(good, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkStateDir(good); err != nil {
		t.Errorf("root-owned 0755 directory refused: %v", err)
	}

	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil { // umask may have narrowed it
		t.Fatal(err)
	}
	if err := checkStateDir(open); err == nil {
		t.Error("world-writable directory accepted")
	}

	link := filepath.Join(base, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	if err := checkStateDir(link); err == nil {
		t.Error("symlink accepted")
	}

	owned := filepath.Join(base, "owned")
	if err := os.Mkdir(owned, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(owned, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := checkStateDir(owned); err == nil {
		t.Error("directory owned by nobody accepted")
	}
}

func TestCreateExclusiveNeverFollowsSymlinks(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "state.tmp")
	if err := os.Symlink(victim, tmp); err != nil {
		t.Fatal(err)
	}
	// The planted symlink is removed, not followed: the victim keeps its content.
	f, err := createExclusive(tmp, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("new")
	f.Close()
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("victim overwritten: %q", b)
	}
	if fi, err := os.Lstat(tmp); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("tmp is %v, %v; want a regular file", fi, err)
	}
}

func TestStateDurableOnlyWithRewrittenResolvConf(t *testing.T) {
	for _, tc := range []struct {
		name string
		dns  *dnsRecord
		want bool
	}{
		{"no DNS backend", nil, false},
		{"resolved", &dnsRecord{Mode: ModeResolved, LinkIndex: 7, Applied: true}, false},
		{"resolv.conf, not written", &dnsRecord{Mode: ModeResolvConf, ResolvConf: "/etc/resolv.conf"}, false},
		{"resolv.conf, written", &dnsRecord{Mode: ModeResolvConf, ResolvConf: "/etc/resolv.conf", Applied: true}, true},
	} {
		s := state{DNS: tc.dns}
		if got := s.durable(); got != tc.want {
			t.Errorf("%s: durable() = %v, want %v", tc.name, got, tc.want)
		}
	}
}
