package routing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	stateSuffix  = ".routing.json"
	stateVersion = 1
	// maxStateSize bounds what we read back; a record of MaxRoutes routes
	// is far below it.
	maxStateSize = 4 << 20
)

// state is the crash-recovery record of one Router: everything it added or
// removed that must be undone.
type state struct {
	Version   int    `json:"version"`
	Instance  string `json:"instance"`
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"` // /proc/PID/stat field 22, to detect PID reuse

	Link      string `json:"link,omitempty"`
	LinkIndex int    `json:"link_index,omitempty"`

	MTUSet  bool `json:"mtu_set,omitempty"`
	MTULink int  `json:"mtu_link,omitempty"`
	OrigMTU int  `json:"orig_mtu,omitempty"`

	Addrs     []kaddr  `json:"addrs,omitempty"`
	Routes    []kroute `json:"routes,omitempty"`
	Displaced []kroute `json:"displaced,omitempty"` // foreign routes we removed; restored on undo

	NetGW map[netip.Addr]path `json:"net_gateway,omitempty"`

	DNS *dnsRecord `json:"dns,omitempty"`

	// External: the tunnel only recorded claims in the host ledger (see
	// Options.External); undoing it forgets them and touches nothing else.
	External bool `json:"external,omitempty"`
}

// dnsRecord says what DNS change to undo.
type dnsRecord struct {
	Mode      string `json:"mode"`
	LinkIndex int    `json:"link_index,omitempty"`
	Applied   bool   `json:"applied"`
	// resolv.conf mode: the file; its original is in the host ledger.
	ResolvConf string `json:"resolv_conf,omitempty"`
}

func newState(instance string, pid int) state {
	if pid == 0 {
		pid = os.Getpid()
	}
	return state{Version: stateVersion, Instance: instance, PID: pid, StartTime: procStartTime(pid)}
}

func (s *state) rememberPath(a netip.Addr, p path) {
	if s.NetGW == nil {
		s.NetGW = map[netip.Addr]path{}
	}
	if len(s.NetGW) < 256 {
		s.NetGW[a] = p
	}
}

// procStartTime returns the start time of a process in clock ticks since
// boot, or 0 if it cannot be read.
func procStartTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may contain spaces and parentheses; the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// alive reports whether the process that wrote the record still runs.
func (s *state) alive() bool {
	if s.PID <= 0 {
		return false
	}
	if err := unix.Kill(s.PID, 0); errors.Is(err, unix.ESRCH) {
		return false
	}
	st := procStartTime(s.PID)
	return st == 0 || s.StartTime == 0 || st == s.StartTime
}

// durable reports whether the record must reach the disk before the change it describes.
// Only a rewritten resolv.conf outlives a reboot; routes, addresses, the tun device and
// resolved's link settings go with the kernel. A session in resolv.conf mode that has not
// written the file (no DNS pushed) has nothing a reboot keeps, so its connects skip the two
// flushes, which cost milliseconds each.
func (s *state) durable() bool {
	return s.DNS != nil && s.DNS.ResolvConf != "" && s.DNS.Applied
}

// writeRecord writes v as JSON to path through a fresh temporary file (never following a
// planted link) and a rename, so a process crash leaves the old record or the new one,
// never half. A durable record is also flushed to the disk, file and directory, before the
// call returns: it describes host state that survives a reboot (a rewritten resolv.conf),
// which the next boot's cleanup can undo only if the record was on the disk first. The
// others skip the two flushes, which cost milliseconds on every connect.
func writeRecord(path string, v any, durable bool) error {
	b, err := marshalRecord(v)
	if err != nil {
		return err
	}
	return writeRecordBytes(path, b, durable)
}

// marshalRecord is a record's content as writeRecord writes it.
func marshalRecord(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// writeRecordBytes is writeRecord for content marshalRecord made.
func writeRecordBytes(path string, b []byte, durable bool) error {
	tmp := path + ".tmp"
	f, err := createExclusive(tmp, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if durable {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

// syncDir flushes a directory, so that a rename in it is on the disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func readState(path string) (*state, error) {
	b, err := readRecord(path, maxStateSize)
	if err != nil {
		return nil, err
	}
	return parseState(b)
}

// readRecord reads a record of at most max bytes; a larger file is refused, not cut.
func readRecord(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("reading %s: larger than %d bytes", path, max)
	}
	return b, nil
}

func parseState(b []byte) (*state, error) {
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parsing state: %w", err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("parsing state: unknown version %d", s.Version)
	}
	if len(s.Routes) > 4*MaxRoutes || len(s.Displaced) > MaxRoutes || len(s.Addrs) > 4*MaxAddrs {
		return nil, errors.New("parsing state: too many entries")
	}
	return &s, nil
}

// undoState reverts what a record says was done, using a Router so that the
// undo follows exactly the same diff logic as Close.
// The host ledger l is locked by the caller: the dead tunnel's claims are
// released like a live tunnel's, so other tunnels keep theirs.
func undoState(k kernel, l *ledger, s *state, statePath string, dialBus func() (resolvedBus, error), logf func(string, ...any)) error {
	if s.External {
		// Its routes, addresses and DNS are its applier's (NetworkManager
		// removes them with the tun device); only the claims go.
		l.forgetExternal(s.Instance)
		logf("released the claims recorded for a tunnel applied by another program")
		return nil
	}
	r := &Router{k: k, logf: logf, st: *s, path: statePath, instance: s.Instance,
		bypass: func(bool, bool, int) []netip.Addr { return nil }}
	r.dns = dnsFromRecord(s.DNS, s.Instance, dialBus, logf)
	// The link may be gone (the tun died with the process); routes and
	// addresses on it went with it, and deletes treat that as success.
	err := r.setLocked(l, nil)
	if derr := r.dns.close(l); derr != nil {
		err = errors.Join(err, fmt.Errorf("reverting DNS: %w", derr))
	}
	l.dropTunnelIfIdle(s.Instance)
	return err
}

// CleanUp undoes the changes recorded by every Router whose process is no
// longer running, and removes those records. Daemons call it at start, and
// `ovpnd cleanup` calls only this.
func CleanUp(stateDir string, logf func(format string, args ...any)) error {
	return CleanUpInstance(stateDir, "", logf)
}

// CleanUpInstance is CleanUp limited to the records of one tunnel name: what ovpnd@NAME runs
// before it starts and after it stops, so that one instance never touches another's state. An
// empty instance is every record, as CleanUp.
func CleanUpInstance(stateDir, instance string, logf func(format string, args ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	k, err := newNetlinkKernel()
	if err != nil {
		return err
	}
	defer k.close()
	return cleanUpMatching(stateDir, instance, k, nil, logf)
}

func cleanUp(stateDir string, k kernel, dialBus func() (resolvedBus, error), logf func(string, ...any)) error {
	return cleanUpMatching(stateDir, "", k, dialBus, logf)
}

// cleanUpMatching undoes the records of dead processes; with instance set, only that
// tunnel's.
func cleanUpMatching(stateDir, instance string, k kernel, dialBus func() (resolvedBus, error), logf func(string, ...any)) error {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	if err := checkStateDir(stateDir); errors.Is(err, os.ErrNotExist) {
		return nil // nothing was ever recorded
	} else if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	pattern := "*" + stateSuffix
	if instance != "" {
		pattern = instance + stateSuffix
		if filepath.Base(pattern) != pattern || strings.ContainsAny(instance, "*?[\\") {
			return fmt.Errorf("instance name %q cannot name a state file", instance)
		}
	}
	l, err := lockLedger(stateDir, logf)
	if err != nil {
		return fmt.Errorf("routing: %w", err)
	}
	err = cleanUpLocked(stateDir, pattern, instance, l.ledger, k, dialBus, logf)
	return errors.Join(err, l.release())
}

func cleanUpLocked(stateDir, pattern, instance string, l *ledger, k kernel, dialBus func() (resolvedBus, error), logf func(string, ...any)) error {
	files, err := filepath.Glob(filepath.Join(stateDir, pattern))
	if err != nil {
		return fmt.Errorf("listing %s: %w", stateDir, err)
	}
	var errs []error
	undone := false
	for _, f := range files {
		s, err := readState(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("cleaning up %s: %w", f, err))
			continue
		}
		if s.alive() || instance != "" && s.Instance != instance {
			continue
		}
		plog := func(format string, args ...any) { logf("cleanup["+s.Instance+"]: "+format, args...) }
		plog("undoing changes of dead process %d", s.PID)
		undone = true
		if err := undoState(k, l, s, f, dialBus, plog); err != nil {
			errs = append(errs, fmt.Errorf("cleaning up %s: %w", s.Instance, err))
			continue
		}
		if err := os.Remove(f); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", f, err))
		}
	}
	if undone {
		errs = append(errs, reassert(k, l, logf))
	}
	// What the ledger holds for a tunnel without a record (removed by hand)
	// has no owner left to release it.
	for _, s := range l.orphans(func(id string) bool {
		if instance != "" && id != instance {
			return false
		}
		_, err := os.Lstat(filepath.Join(stateDir, id+stateSuffix))
		return errors.Is(err, os.ErrNotExist)
	}) {
		plog := func(format string, args ...any) { logf("cleanup["+s.Instance+"]: "+format, args...) }
		plog("releasing what the host ledger holds for a tunnel without a record")
		if err := undoState(k, l, s, filepath.Join(stateDir, s.Instance+stateSuffix), dialBus, plog); err != nil {
			errs = append(errs, fmt.Errorf("cleaning up %s: %w", s.Instance, err))
		}
	}
	return errors.Join(errs...)
}

// createExclusive creates path afresh for writing, replacing a leftover regular file but never
// following a symlink planted in its place: root writes these files.
func createExclusive(path string, perm os.FileMode) (*os.File, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, perm)
}

// checkStateDir refuses a state directory that someone other than root could tamper with:
// its records tell a later run what to delete.
func checkStateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (a symlink is refused)", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	if st.Uid != 0 {
		return fmt.Errorf("%s is owned by uid %d, not root", dir, st.Uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (mode %v)", dir, fi.Mode().Perm())
	}
	return nil
}
