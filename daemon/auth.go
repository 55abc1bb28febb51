package daemon

import (
	"errors"
	"fmt"
	"os/user"
	"slices"
	"strconv"

	"github.com/godbus/dbus/v5"

	api "github.com/ovpnd/ovpnd/dbus"
)

// Authorizer answers the two questions every method asks: who is calling, and may that
// caller perform a polkit action. The daemon applies ownership rules on top.
type Authorizer interface {
	// CallerUID is the Unix user of the bus connection sender.
	CallerUID(sender dbus.Sender) (uint32, error)
	// CheckAction reports whether sender (running as uid) may perform action. A nil error
	// means yes; a denial is an error whose text explains it.
	CheckAction(sender dbus.Sender, uid uint32, action string) error
}

// InteractiveAuthorizer is an Authorizer that can let polkit ask the caller to authenticate
// (an administrator's password typed into the caller's agent) instead of refusing. The daemon
// asks for that only when the call carried ALLOW_INTERACTIVE_AUTHORIZATION, which callers set
// when they run an agent, as ovpnctl on a terminal does with pkttyagent.
type InteractiveAuthorizer interface {
	CheckActionInteractive(sender dbus.Sender, uid uint32, action string) error
}

// checkAction asks auth, interactively when the call allowed it and auth can.
func checkAction(auth Authorizer, msg *dbus.Message, sender dbus.Sender, uid uint32, action string) error {
	if ia, ok := auth.(InteractiveAuthorizer); ok && msg != nil && msg.Flags&dbus.FlagAllowInteractiveAuthorization != 0 {
		return ia.CheckActionInteractive(sender, uid, action)
	}
	return auth.CheckAction(sender, uid, action)
}

// polkitName is the bus name of the polkit authority.
const polkitName = "org.freedesktop.PolicyKit1"

// FallbackGroup is the group whose members may start and manage their own sessions when
// no polkit authority is on the bus.
const FallbackGroup = "ovpnd"

// ErrNotAuthorized is wrapped by CheckAction's denials.
var ErrNotAuthorized = errors.New("not authorized")

// BusAuthorizer asks the bus for callers' credentials and polkit for actions; without a
// polkit authority on the bus it allows root and members of FallbackGroup.
type BusAuthorizer struct {
	Conn *dbus.Conn
	// Groups returns the group IDs of uid (the supplementary groups in the group database
	// plus the primary group). Nil uses os/user.
	Groups func(uid uint32) ([]uint32, error)
	// FallbackGID returns the ID of FallbackGroup. Nil uses os/user.
	FallbackGID func() (uint32, error)
}

// CallerUID asks the bus daemon for the Unix user of sender.
func (a *BusAuthorizer) CallerUID(sender dbus.Sender) (uint32, error) {
	var uid uint32
	err := a.Conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, string(sender)).Store(&uid)
	if err != nil {
		return 0, fmt.Errorf("asking the bus for the user of %s: %w", sender, err)
	}
	return uid, nil
}

// CheckAction decides with polkit when it is there, else with the documented fallback.
func (a *BusAuthorizer) CheckAction(sender dbus.Sender, uid uint32, action string) error {
	return a.check(sender, uid, action, false)
}

// CheckActionInteractive is CheckAction letting polkit ask the caller's agent for
// authentication; the call waits until the user has answered it.
func (a *BusAuthorizer) CheckActionInteractive(sender dbus.Sender, uid uint32, action string) error {
	return a.check(sender, uid, action, true)
}

func (a *BusAuthorizer) check(sender dbus.Sender, uid uint32, action string, interactive bool) error {
	if uid == 0 {
		return nil
	}
	present, err := a.polkitPresent()
	if err != nil {
		return err
	}
	if present {
		return a.checkPolkit(sender, action, interactive)
	}
	return a.checkGroup(uid, action)
}

func (a *BusAuthorizer) polkitPresent() (bool, error) {
	var has bool
	if err := a.Conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, polkitName).Store(&has); err != nil {
		return false, fmt.Errorf("looking for polkit on the bus: %w", err)
	}
	if has {
		return true, nil
	}
	// polkitd is usually bus-activated: not running yet but there when asked.
	var names []string
	if err := a.Conn.BusObject().Call("org.freedesktop.DBus.ListActivatableNames", 0).Store(&names); err != nil {
		return false, fmt.Errorf("listing activatable names: %w", err)
	}
	return slices.Contains(names, polkitName), nil
}

// polkitResult is CheckAuthorization's (bba{ss}) reply.
type polkitResult struct {
	Authorized bool
	Challenge  bool
	Details    map[string]string
}

// polkitAllowUserInteraction is CheckAuthorization's flag that lets polkit ask an agent.
const polkitAllowUserInteraction = 1

func (a *BusAuthorizer) checkPolkit(sender dbus.Sender, action string, interactive bool) error {
	subject := struct {
		Kind    string
		Details map[string]dbus.Variant
	}{"system-bus-name", map[string]dbus.Variant{"name": dbus.MakeVariant(string(sender))}}
	var res polkitResult
	obj := a.Conn.Object(polkitName, "/org/freedesktop/PolicyKit1/Authority")
	// Interactive only when the caller asked for it: then its agent (pkttyagent for ovpnctl
	// on a terminal) asks for the password; otherwise nothing may pop up unasked.
	var flags uint32
	if interactive {
		flags = polkitAllowUserInteraction
	}
	err := obj.Call("org.freedesktop.PolicyKit1.Authority.CheckAuthorization", 0,
		subject, action, map[string]string{}, flags, "").Store(&res)
	if err != nil {
		return fmt.Errorf("asking polkit about %s: %w", action, err)
	}
	if !res.Authorized {
		if res.Challenge {
			return fmt.Errorf("%w: polkit requires authentication for %s (run ovpnctl on a terminal to authenticate)", ErrNotAuthorized, action)
		}
		return fmt.Errorf("%w: polkit denies %s", ErrNotAuthorized, action)
	}
	return nil
}

func (a *BusAuthorizer) checkGroup(uid uint32, action string) error {
	if action == api.ActionOverride {
		// The group lets its members run their own tunnels, not take
		// other users' networks.
		return fmt.Errorf("%w: no polkit on the bus, so only root may %s", ErrNotAuthorized, action)
	}
	fallbackGID := a.FallbackGID
	if fallbackGID == nil {
		fallbackGID = lookupFallbackGID
	}
	gid, err := fallbackGID()
	if err != nil {
		return fmt.Errorf("%w: no polkit on the bus and %v, so only root may %s", ErrNotAuthorized, err, action)
	}
	groups := a.Groups
	if groups == nil {
		groups = lookupGroups
	}
	gids, err := groups(uid)
	if err != nil {
		return fmt.Errorf("%w: looking up the groups of uid %d: %v", ErrNotAuthorized, uid, err)
	}
	if slices.Contains(gids, gid) {
		return nil
	}
	return fmt.Errorf("%w: no polkit on the bus, and uid %d is neither root nor in group %s (needed for %s)", ErrNotAuthorized, uid, FallbackGroup, action)
}

func lookupFallbackGID() (uint32, error) {
	g, err := user.LookupGroup(FallbackGroup)
	if err != nil {
		return 0, fmt.Errorf("group %s does not exist", FallbackGroup)
	}
	n, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("group %s has gid %q: %w", FallbackGroup, g.Gid, err)
	}
	return uint32(n), nil
}

func lookupGroups(uid uint32) ([]uint32, error) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return nil, err
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, err
	}
	out := make([]uint32, 0, len(ids))
	for _, id := range ids {
		if n, err := strconv.ParseUint(id, 10, 32); err == nil {
			out = append(out, uint32(n))
		}
	}
	return out, nil
}
