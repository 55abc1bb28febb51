package daemon

import (
	"testing"

	"github.com/godbus/dbus/v5"
)

// interactiveAuth records which of the two checks was asked.
type interactiveAuth struct{ plain, interactive int }

func (a *interactiveAuth) CallerUID(dbus.Sender) (uint32, error) { return 1000, nil }
func (a *interactiveAuth) CheckAction(dbus.Sender, uint32, string) error {
	a.plain++
	return nil
}
func (a *interactiveAuth) CheckActionInteractive(dbus.Sender, uint32, string) error {
	a.interactive++
	return nil
}

// TestCheckActionInteractiveOnlyWhenAllowed: polkit may ask for a password only when the
// caller's message carried ALLOW_INTERACTIVE_AUTHORIZATION.
func TestCheckActionInteractiveOnlyWhenAllowed(t *testing.T) {
	a := &interactiveAuth{}
	for _, msg := range []*dbus.Message{nil, {}, {Flags: dbus.FlagNoAutoStart}} {
		if err := checkAction(a, msg, ":1.5", 1000, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if a.plain != 3 || a.interactive != 0 {
		t.Fatalf("without the flag: %d plain, %d interactive checks", a.plain, a.interactive)
	}
	if err := checkAction(a, &dbus.Message{Flags: dbus.FlagAllowInteractiveAuthorization}, ":1.5", 1000, "x"); err != nil {
		t.Fatal(err)
	}
	if a.interactive != 1 {
		t.Fatalf("with the flag: %d interactive checks", a.interactive)
	}
	// An Authorizer without the interactive method is asked plainly.
	f := &fakeAuth{}
	if err := checkAction(f, &dbus.Message{Flags: dbus.FlagAllowInteractiveAuthorization}, ":1.5", 7, "x"); err == nil {
		t.Fatal("the plain authorizer was not asked")
	}
}
