package daemon

import (
	"fmt"

	"github.com/godbus/dbus/v5"

	api "github.com/ovpnd/ovpnd/dbus"
)

// maxErrorText bounds an error message sent back over the bus: profile errors can be long
// lists, and a caller has no use for more than the first screenful.
const maxErrorText = 4096

// busError builds a D-Bus error with one of the net.ovpnd1.Error names. The text is bounded
// before it is built (every string or error argument is clipped first, so a megabyte of input
// never becomes a megabyte of message) and clipped again on a UTF-8 boundary: godbus refuses
// to send a string that is not valid UTF-8, and the caller would wait for the D-Bus timeout.
func busError(name, format string, args ...any) *dbus.Error {
	for i, a := range args {
		switch v := a.(type) {
		case string:
			args[i] = clipUTF8(v, maxErrorText)
		case error:
			args[i] = clipUTF8(v.Error(), maxErrorText)
		case fmt.Stringer:
			args[i] = clipUTF8(v.String(), maxErrorText)
		}
	}
	msg := fmt.Sprintf(format, args...)
	if len(msg) > maxErrorText {
		msg = clipUTF8(msg, maxErrorText) + "..."
	}
	return &dbus.Error{Name: name, Body: []any{clipUTF8(msg, maxErrorText+3)}}
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

// errNoObject is the answer for a session path the caller may not see, whether it belongs
// to another user or to nobody: the two must be indistinguishable (docs/dbus.md).
func errNoObject(path dbus.ObjectPath) *dbus.Error {
	return busError(api.ErrNotFound, "no session at %s", string(path))
}
