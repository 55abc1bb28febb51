package config

import (
	"errors"
	"fmt"
)

// Error is one problem found in a configuration, located by file and line. Line 0 means the
// problem concerns the file as a whole (for example, a missing required directive).
type Error struct {
	File string
	Line int
	Msg  string
}

// Error formats the problem as FILE:LINE: message, the form editors and ovpnctl check print.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Warning is a directive that was accepted but not acted on, or acted on in a way the user may
// not expect (a dropped pushed option, an ignored Windows-only setting, ...).
type Warning struct {
	File string
	Line int
	Msg  string
}

// String formats the warning as FILE:LINE: warning: message.
func (w Warning) String() string {
	if w.Line > 0 {
		return fmt.Sprintf("%s:%d: warning: %s", w.File, w.Line, w.Msg)
	}
	return fmt.Sprintf("%s: warning: %s", w.File, w.Msg)
}

// Errors returns the individual errors inside err: the *Error values that Load, Parse and
// ParseInline join together, or err itself when it is not a joined error.
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		return j.Unwrap()
	}
	return []error{err}
}
