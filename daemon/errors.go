package daemon

import (
	"fmt"

	"github.com/godbus/dbus/v5"

	api "github.com/ovpnd/ovpnd/dbus"
)

// maxErrorText bounds an error message sent back over the bus: profile errors can be long
// lists, and a caller has no use for more than the first screenful.
const maxErrorText = 4096

// busError builds a D-Bus error with one of the net.ovpnd1.Error names.
func busError(name, format string, args ...any) *dbus.Error {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText] + "..."
	}
	return &dbus.Error{Name: name, Body: []any{msg}}
}

func errAccessDenied(format string, args ...any) *dbus.Error {
	return busError(api.ErrAccessDenied, format, args...)
}

func errInvalidArg(format string, args ...any) *dbus.Error {
	return busError(api.ErrInvalidArgument, format, args...)
}

func errFailed(format string, args ...any) *dbus.Error {
	return busError(api.ErrFailed, format, args...)
}
