package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/godbus/dbus/v5"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
)

// Stored profiles: `ovpnctl import` sends a self-contained profile (read by ovpnctl as the
// user, every file inline) and the daemon keeps it root-only under Options.ProfileDir/UID/,
// so that `ovpnctl up NAME` starts it later without the user's files. The daemon never reads
// anything but its own copy. Each user sees and manages only their own.

// maxStoredProfiles bounds a user's stored profiles.
const maxStoredProfiles = 32

// profileDirOf is uid's directory, created root-only when create is set.
func (m *Manager) profileDirOf(uid uint32, create bool) (string, *dbus.Error) {
	if m.opts.ProfileDir == "" {
		return "", errFailed("this ovpnd keeps no profiles (no profile directory)")
	}
	dir := filepath.Join(m.opts.ProfileDir, strconv.FormatUint(uint64(uid), 10))
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", errFailed("creating the profile directory: %v", err)
		}
	}
	for _, d := range []string{m.opts.ProfileDir, dir} {
		fi, err := os.Lstat(d)
		if errors.Is(err, os.ErrNotExist) && !create {
			return dir, nil // nothing stored yet
		}
		if err != nil {
			return "", errFailed("profile directory: %v", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0 {
			return "", errFailed("%s is not a directory only ovpnd's user can use", d)
		}
	}
	return dir, nil
}

func profileFile(dir, name string) string { return filepath.Join(dir, name+".conf") }

// storedProfile reads uid's profile name and parses it.
func (m *Manager) storedProfile(uid uint32, name string) (string, *config.Config, *dbus.Error) {
	if !api.ValidName(name) {
		return "", nil, errInvalidArg("profile name %q is not 1-%d characters of [A-Za-z0-9_.@-]", truncate(name, 80), api.MaxNameLen)
	}
	dir, derr := m.profileDirOf(uid, false)
	if derr != nil {
		return "", nil, derr
	}
	f, err := os.OpenFile(profileFile(dir, name), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil, busError(api.ErrNotFound, "you have no stored profile %s", name)
	}
	if err != nil {
		return "", nil, errFailed("reading profile %s: %v", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, api.MaxProfileSize+1))
	if err != nil {
		return "", nil, errFailed("reading profile %s: %v", name, err)
	}
	if len(data) > api.MaxProfileSize {
		return "", nil, errFailed("stored profile %s is too large", name)
	}
	profile := string(data)
	cfg, _, err := config.ParseInline(name, []byte(profile))
	if err != nil {
		return "", nil, busError(api.ErrInvalidProfile, "stored profile %s: %v", name, err)
	}
	return profile, cfg, nil
}

// ImportProfile stores a self-contained profile under name for the caller.
func (mi managerIface) ImportProfile(sender dbus.Sender, name, profile string) *dbus.Error {
	m := mi.m
	if !api.ValidName(name) {
		return errInvalidArg("profile name %q is not 1-%d characters of [A-Za-z0-9_.@-]", truncate(name, 80), api.MaxNameLen)
	}
	if len(profile) > api.MaxProfileSize {
		return busError(api.ErrLimitExceeded, "profile is %d bytes; the limit is %d", len(profile), api.MaxProfileSize)
	}
	uid, err := m.bus.auth.CallerUID(sender)
	if err != nil {
		return errFailed("%v", err)
	}
	cfg, _, err := config.ParseInline(name, []byte(profile))
	if err != nil {
		return busError(api.ErrInvalidProfile, "%s", clipUTF8(err.Error(), maxErrorText))
	}
	if err := checkOwnerProfile(cfg, uid); err != nil {
		return busError(api.ErrInvalidProfile, "%v", err)
	}
	m.recMu.Lock()
	defer m.recMu.Unlock()
	dir, derr := m.profileDirOf(uid, true)
	if derr != nil {
		return derr
	}
	if _, err := os.Lstat(profileFile(dir, name)); err == nil {
		return busError(api.ErrExists, "you have a stored profile called %s (ovpnctl remove %s first)", name, name)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*.conf")); len(names) >= maxStoredProfiles {
		return busError(api.ErrLimitExceeded, "you have %d stored profiles; the limit is %d", len(names), maxStoredProfiles)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return errFailed("storing profile %s: %v", name, err)
	}
	_, werr := f.WriteString(profile)
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(f.Name())
		return errFailed("storing profile %s: %v", name, err)
	}
	if err := os.Rename(f.Name(), profileFile(dir, name)); err != nil {
		os.Remove(f.Name())
		return errFailed("storing profile %s: %v", name, err)
	}
	m.opts.Log.Log(1, name, "", fmt.Sprintf("profile stored for uid %d", uid))
	return nil
}

// RemoveProfile deletes the caller's stored profile name.
func (mi managerIface) RemoveProfile(sender dbus.Sender, name string) *dbus.Error {
	m := mi.m
	if !api.ValidName(name) {
		return errInvalidArg("profile name %q is not 1-%d characters of [A-Za-z0-9_.@-]", truncate(name, 80), api.MaxNameLen)
	}
	uid, err := m.bus.auth.CallerUID(sender)
	if err != nil {
		return errFailed("%v", err)
	}
	m.recMu.Lock()
	defer m.recMu.Unlock()
	dir, derr := m.profileDirOf(uid, false)
	if derr != nil {
		return derr
	}
	if err := os.Remove(profileFile(dir, name)); errors.Is(err, os.ErrNotExist) {
		return busError(api.ErrNotFound, "you have no stored profile %s", name)
	} else if err != nil {
		return errFailed("removing profile %s: %v", name, err)
	}
	_ = os.Remove(dir) // the last one takes the user's directory with it
	return nil
}

// ListProfiles names the caller's stored profiles.
func (mi managerIface) ListProfiles(sender dbus.Sender) ([]string, *dbus.Error) {
	m := mi.m
	uid, err := m.bus.auth.CallerUID(sender)
	if err != nil {
		return nil, errFailed("%v", err)
	}
	dir, derr := m.profileDirOf(uid, false)
	if derr != nil {
		return nil, derr
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
	names := []string{}
	for _, p := range paths {
		if n := strings.TrimSuffix(filepath.Base(p), ".conf"); api.ValidName(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// StartProfile starts a session from the caller's stored profile name, as Start does with a
// profile sent along (same polkit action, same options).
func (mi managerIface) StartProfile(sender dbus.Sender, msg dbus.Message, name string, options map[string]dbus.Variant) (dbus.ObjectPath, *dbus.Error) {
	m := mi.m
	uid, err := m.bus.auth.CallerUID(sender)
	if err != nil {
		return "", errFailed("%v", err)
	}
	profile, _, derr := m.storedProfile(uid, name)
	if derr != nil {
		return "", derr
	}
	return mi.Start(sender, msg, name, profile, options)
}
