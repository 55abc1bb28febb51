package main

import "testing"

func TestFailureCode(t *testing.T) {
	for reason, want := range map[string]int{
		"authentication failed: the server refused the credentials": exitAuthFailed,
		"authentication failed: the server said: account locked":    exitAuthFailed,
		"resolving vpn.example: no such host":                       exitFail,
		"":                                                          exitFail,
	} {
		if got := failureCode(reason); got != want {
			t.Errorf("failureCode(%q) = %d, want %d", reason, got, want)
		}
	}
}

func TestUserName(t *testing.T) {
	if got := userName(0); got != "root" {
		t.Errorf("userName(0) = %q, want root", got)
	}
	if got := userName(4000000000); got != "4000000000" {
		t.Errorf("userName of an unknown uid = %q", got)
	}
}
