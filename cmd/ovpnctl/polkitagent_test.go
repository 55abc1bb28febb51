package main

import (
	"testing"

	"github.com/godbus/dbus/v5"
)

// TestInteractiveCallCarriesFlag: the hand-built call is valid and keeps the flag that
// godbus's own Call would drop.
func TestInteractiveCallCarriesFlag(t *testing.T) {
	msg := interactiveCall("net.ovpnd1", "/net/ovpnd1", "net.ovpnd1.Manager.Start", "work", "client\n", map[string]dbus.Variant{})
	if err := msg.IsValid(); err != nil {
		t.Fatal(err)
	}
	if msg.Flags&dbus.FlagAllowInteractiveAuthorization == 0 {
		t.Fatal("flag missing")
	}
	if got := msg.Headers[dbus.FieldInterface].Value(); got != "net.ovpnd1.Manager" {
		t.Errorf("interface %v", got)
	}
	if got := msg.Headers[dbus.FieldMember].Value(); got != "Start" {
		t.Errorf("member %v", got)
	}
	if got := msg.Headers[dbus.FieldSignature].Value().(dbus.Signature).String(); got != "ssa{sv}" {
		t.Errorf("signature %v", got)
	}
}
