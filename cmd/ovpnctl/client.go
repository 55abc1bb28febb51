package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/godbus/dbus/v5"

	api "github.com/ovpnd/ovpnd/dbus"
)

// More exit statuses (exitOK, exitFail and exitUsage are in main.go). They are documented
// in ovpnctl(1).
const (
	exitNotFound    = 3 // no such session
	exitDenied      = 4 // not allowed (ownership or polkit)
	exitUnreachable = 5 // ovpnd is not reachable on the bus
	exitAuthFailed  = 6 // the server refused the credentials
)

// target is where a session is served: the manager or an ovpnd@NAME instance.
type target struct {
	dest string
	path dbus.ObjectPath
	// owner is the unique name that owned dest when the target was found: signals about
	// the session are believed only from it, since any local user can send a signal that
	// claims the session's path.
	owner string
}

func (t target) obj(c *dbus.Conn) dbus.BusObject { return c.Object(t.dest, t.path) }

// from reports whether s is a signal about t's session sent by the service that serves it.
func (t target) from(s *dbus.Signal) bool {
	return t.owner != "" && s.Sender == t.owner && s.Path == t.path
}

// withOwner looks up who owns t.dest now.
func withOwner(c *dbus.Conn, t target) (target, error) {
	var owner string
	if err := c.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, t.dest).Store(&owner); err != nil {
		return t, err
	}
	t.owner = owner
	return t, nil
}

// cliError carries an exit status with the message.
type cliError struct {
	code int
	msg  string
}

func (e *cliError) Error() string { return e.msg }

// classify turns a bus error into a message and an exit status.
func classify(err error) *cliError {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce
	}
	var de dbus.Error
	var dep *dbus.Error
	if errors.As(err, &dep) {
		de = *dep
	} else if !errors.As(err, &de) {
		return &cliError{exitFail, err.Error()}
	}
	msg := de.Error()
	switch de.Name {
	case api.ErrNotFound, "org.freedesktop.DBus.Error.UnknownObject", "org.freedesktop.DBus.Error.UnknownMethod":
		return &cliError{exitNotFound, msg}
	case api.ErrAccessDenied, "org.freedesktop.DBus.Error.AccessDenied":
		return &cliError{exitDenied, msg}
	case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
		"org.freedesktop.DBus.Error.Spawn.ServiceNotFound", "org.freedesktop.DBus.Error.NoServer":
		return &cliError{exitUnreachable, "ovpnd is not running: " + msg}
	}
	return &cliError{exitFail, msg}
}

// report prints err and returns its exit status.
func report(stderr io.Writer, err error) int {
	ce := classify(err)
	fmt.Fprintf(stderr, "ovpnctl: %s\n", api.Printable(ce.msg))
	return ce.code
}

// connect opens the system bus ($DBUS_SYSTEM_BUS_ADDRESS overrides where it is).
func connect() (*dbus.Conn, error) {
	c, err := dbus.ConnectSystemBus()
	if err != nil {
		return nil, &cliError{exitUnreachable, fmt.Sprintf("connecting to the system bus: %v", err)}
	}
	return c, nil
}

// resolve finds the session called name: the manager's, else an instance's.
// connectTo connects to the bus and finds the session called name; the caller closes the
// connection.
func connectTo(name string) (*dbus.Conn, target, error) {
	c, err := connect()
	if err != nil {
		return nil, target{}, err
	}
	t, err := resolve(c, name)
	if err == nil {
		t, err = withOwner(c, t)
	}
	if err != nil {
		c.Close()
		return nil, target{}, err
	}
	return c, t, nil
}

func resolve(c *dbus.Conn, name string) (target, error) {
	if !api.ValidName(name) {
		return target{}, &cliError{exitUsage, fmt.Sprintf("%q is not a session name (1-%d characters of [A-Za-z0-9_.@-])", name, api.MaxNameLen)}
	}
	// The caller's own daemon session first: a user's names are their own, and an
	// ovpnd@ instance of the same name is root's. A daemon that is not running has no
	// sessions: looking one up must not start it.
	var p dbus.ObjectPath
	err := c.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".Lookup", dbus.FlagNoAutoStart, name).Store(&p)
	if err == nil {
		return target{dest: api.BusName, path: p}, nil
	}
	var derr dbus.Error
	if errors.As(err, &derr) && (derr.Name == "org.freedesktop.DBus.Error.ServiceUnknown" || derr.Name == "org.freedesktop.DBus.Error.NameHasNoOwner") {
		err = &cliError{exitNotFound, fmt.Sprintf("no session %s", name)}
	}
	inst := api.InstanceBusName(name)
	var has bool
	if herr := c.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, inst).Store(&has); herr == nil && has {
		return target{dest: inst, path: dbus.ObjectPath(api.SessionPath(name))}, nil
	}
	return target{}, err
}

// listTargets returns every session the caller may see: the manager's and the instances'.
func listTargets(c *dbus.Conn) ([]target, error) {
	var out []target
	var names []string
	if err := c.BusObject().Call("org.freedesktop.DBus.ListNames", 0).Store(&names); err != nil {
		return nil, fmt.Errorf("listing bus names: %w", err)
	}
	sort.Strings(names)
	for _, n := range names {
		if rest, ok := strings.CutPrefix(n, api.InstanceBusPrefix); ok {
			if name, ok := api.UnescapeLabel(rest); ok {
				out = append(out, target{dest: n, path: dbus.ObjectPath(api.SessionPath(name))})
			}
		}
	}
	var paths []dbus.ObjectPath
	err := c.Object(api.BusName, api.ManagerPath).Call(api.ManagerInterface+".List", 0).Store(&paths)
	if err != nil {
		if ce := classify(err); ce.code == exitUnreachable && len(out) > 0 {
			return out, nil
		}
		return nil, err
	}
	for _, p := range paths {
		out = append(out, target{dest: api.BusName, path: p})
	}
	return out, nil
}

// sessionInfo is a session's properties (the dbus/ contract), also the --json form.
type sessionInfo struct {
	api.SessionProps
	Instance bool `json:"instance"`
}

func getInfo(c *dbus.Conn, t target) (*sessionInfo, error) {
	var props map[string]dbus.Variant
	if err := t.obj(c).Call(api.PropertiesInterface+".GetAll", 0, api.SessionInterface).Store(&props); err != nil {
		return nil, err
	}
	info := &sessionInfo{Instance: t.dest != api.BusName}
	info.TunnelAddresses = []string{}
	applyProps(info, props)
	return info, nil
}

// applyProps copies the properties present in props (all of GetAll, or the changed ones of
// PropertiesChanged), with control characters made harmless: everything ovpnctl prints
// from the bus goes through here or api.Printable.
func applyProps(info *sessionInfo, props map[string]dbus.Variant) {
	p := &info.SessionProps
	p.Apply(props)
	for _, f := range []*string{&p.Name, &p.State, &p.StateReason, &p.Remote, &p.Device, &p.LocalAddress, &p.Cipher, &p.DNSMode} {
		*f = api.Printable(*f)
	}
	for i := range p.TunnelAddresses {
		p.TunnelAddresses[i] = api.Printable(p.TunnelAddresses[i])
	}
}
