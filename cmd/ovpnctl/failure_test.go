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
