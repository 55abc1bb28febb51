package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/session"
)

// Sessions survive the daemon: each running session started through the manager has a
// record under the state directory (/run/ovpnd/sessions, root only), written when it starts
// and removed when it ends for any reason but the daemon's own shutdown. A daemon that
// starts finds the records of its predecessor (restarted, upgraded or crashed; the unit's
// ExecStartPre has undone the routes of a crashed one) and starts those sessions again, as
// their owners, without asking polkit again: they were authorized when first started. The
// record holds the self-contained profile the owner sent, so the daemon still never opens a
// user's file; credentials come back only if they were inline in that profile or the server
// gave an auth-token (kept in the record), otherwise the session asks its owner again
// (`ovpnctl auth`).

// sessionRecord is one session's record.
type sessionRecord struct {
	Owner    uint32 `json:"owner"`
	Name     string `json:"name"`
	Profile  string `json:"profile"`
	Override bool   `json:"override,omitempty"`
	// Token is the server's latest auth-token, so that a session whose password was typed
	// comes back without asking again (while the server still accepts the token).
	Token *session.AuthToken `json:"auth_token,omitempty"`
}

// maxRecordSize bounds a record: the profile plus a little JSON.
const maxRecordSize = 2*api.MaxProfileSize + 4096

// recordDir is where records live; "" (no Options.StateDir, as in unit tests) keeps none.
func (m *Manager) recordDir() string {
	if m.opts.StateDir == "" {
		return ""
	}
	return filepath.Join(m.opts.StateDir, "sessions")
}

func recordFile(owner uint32, name string) string { return fmt.Sprintf("%d-%s.json", owner, name) }

// openRecordDir makes sure the record directory exists and nobody but us could have put
// anything there: records are trusted to name owners.
func (m *Manager) openRecordDir(create bool) (string, error) {
	dir := m.recordDir()
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is not a directory only ovpnd's user can use", dir)
	}
	return dir, nil
}

// saveRecord writes r atomically (a temporary file renamed over the old one).
func (m *Manager) saveRecord(r sessionRecord) error {
	if m.recordDir() == "" {
		return nil
	}
	m.recMu.Lock()
	defer m.recMu.Unlock()
	dir, err := m.openRecordDir(true)
	if err != nil {
		return fmt.Errorf("session records: %w", err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, recordFile(r.Owner, r.Name))); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// sessionEnded forgets a session's record unless the daemon itself is stopping (then it
// comes back with the next daemon).
func (m *Manager) sessionEnded(o *object) {
	m.mu.Lock()
	closing := m.closing
	m.mu.Unlock()
	if closing || m.recordDir() == "" {
		return
	}
	m.recMu.Lock()
	defer m.recMu.Unlock()
	err := os.Remove(filepath.Join(m.recordDir(), recordFile(o.owner, o.name)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		m.opts.Log.Log(0, o.name, "", fmt.Sprintf("removing the session's record: %v", err))
	}
	// The last one takes the directory with it: nothing stays behind once nothing runs.
	_ = os.Remove(m.recordDir())
}

// restore starts the sessions recorded by the previous daemon. A record that cannot be used
// is logged and removed.
func (m *Manager) restore() {
	if m.recordDir() == "" {
		return
	}
	dir, err := m.openRecordDir(false)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		m.opts.Log.Log(0, "", "", fmt.Sprintf("not restoring sessions: %v", err))
		return
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	sort.Strings(paths)
	for _, p := range paths {
		r, err := readRecord(p)
		if err == nil {
			err = m.restoreOne(r)
		}
		if err != nil {
			m.opts.Log.Log(0, "", "", fmt.Sprintf("not restoring %s: %v", filepath.Base(p), err))
			os.Remove(p)
		}
	}
	// Leftovers of an interrupted saveRecord.
	tmps, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	m.recMu.Lock()
	for _, p := range tmps {
		os.Remove(p)
	}
	_ = os.Remove(dir) // empty unless sessions came back
	m.recMu.Unlock()
}

func readRecord(path string) (sessionRecord, error) {
	var r sessionRecord
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return r, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return r, err
	}
	return parseRecord(data, filepath.Base(path))
}

// parseRecord decodes a record read from the file named base.
func parseRecord(data []byte, base string) (sessionRecord, error) {
	var r sessionRecord
	if len(data) > maxRecordSize {
		return r, fmt.Errorf("larger than %d bytes", maxRecordSize)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, err
	}
	if !api.ValidName(r.Name) || len(r.Profile) > api.MaxProfileSize || base != recordFile(r.Owner, r.Name) {
		return r, errors.New("malformed record")
	}
	return r, nil
}

func (m *Manager) restoreOne(r sessionRecord) error {
	cfg, _, err := config.ParseInline(r.Name, []byte(r.Profile))
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if err := checkOwnerProfile(cfg, r.Owner); err != nil {
		return err
	}
	if _, derr := m.launch(r.Owner, r.Name, r.Profile, cfg, startOptions{}, r.Override, "", r.Token); derr != nil {
		return derr
	}
	return nil
}
