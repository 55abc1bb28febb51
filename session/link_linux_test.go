package session

import (
	"net"
	"testing"
)

func TestLinkIndexLoopback(t *testing.T) {
	i, err := linkIndex("lo")
	if err != nil {
		t.Fatal(err)
	}
	if want, err := net.InterfaceByName("lo"); err != nil || want.Index != i {
		t.Errorf("linkIndex(lo) = %d, net says %v (%v)", i, want, err)
	}
	if _, err := linkIndex("ovpnd-no-such0"); err == nil {
		t.Error("linkIndex of a missing interface succeeded")
	}
}
