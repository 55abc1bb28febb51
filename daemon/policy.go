package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/ovpnd/ovpnd/config"
	api "github.com/ovpnd/ovpnd/dbus"
	"github.com/ovpnd/ovpnd/session"
)

// What a session's owner may do to the host (docs/networking.md):
//
//   - routing.Options.Owner/MayOverride: a non-root owner's session may not take routes or
//     addresses of another owner's session or of the host's own links unless polkit grants
//     net.ovpnd1.override; what is refused shows in the session's log and state reason;
//   - a non-root owner may not bind a local port below 1024 (lport) nor open an interface
//     that exists already (a persistent tun of someone else): Start refuses the profile.

// sessionKey names a manager session: names belong to their owner, so two users may
// both have "work".
type sessionKey struct {
	owner uint32
	name  string
}

// userStateName names a daemon session's routing state files; instances use
// InstanceStateName, so a user's session and an ovpnd@ instance of the same name never
// share them.
func userStateName(uid uint32, name string) string { return fmt.Sprintf("user-%d-%s", uid, name) }

// InstanceStateName names the routing state files of ovpnd@NAME (`ovpnd cleanup
// --instance NAME` undoes those).
func InstanceStateName(name string) string { return "instance-" + name }

// newSessionPath is an object path that says nothing about the session (not its name, not
// its owner), so that nobody learns another user's session names by probing paths.
func newSessionPath() (dbus.ObjectPath, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making a session path: %w", err)
	}
	return dbus.ObjectPath(api.SessionPathPrefix + "s" + hex.EncodeToString(b[:])), nil
}

// mayOverride asks polkit, without interaction, whether uid may take what belongs to
// others. A polkit failure counts as no.
func (m *Manager) mayOverride(sender dbus.Sender, uid uint32) bool {
	return uid == 0 || m.bus.auth.CheckAction(sender, uid, api.ActionOverride) == nil
}

// checkOwnerProfile refuses what a non-root owner may not ask root to do for them.
func checkOwnerProfile(cfg *config.Config, uid uint32) error {
	if uid == 0 {
		return nil
	}
	var errs []string
	for _, c := range cfg.Connections {
		if c.Bind && c.LocalPort != 0 && c.LocalPort < 1024 {
			errs = append(errs, fmt.Sprintf("lport %d: only root may bind ports below 1024", c.LocalPort))
			break
		}
	}
	if dev := cfg.Dev; cfg.DevType != config.DevNull && dev != "" && dev != "tun" && !strings.Contains(dev, "%d") {
		if _, err := net.InterfaceByName(dev); err == nil {
			errs = append(errs, fmt.Sprintf("dev %s: the interface exists already and only root may attach to it", dev))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// ownerOptions adds the owner's policy to a session's options.
func ownerOptions(so session.Options, uid uint32, name string, override bool) session.Options {
	so.StateName = userStateName(uid, name)
	so.Owner, so.MayOverride = uid, override
	so.NewLinkOnly = uid != 0
	return so
}
