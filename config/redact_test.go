package config

import (
	"strings"
	"testing"
)

func TestRedactOption(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"auth-token SECRET", "auth-token [REDACTED]"},
		{"  auth-token\tSECRET", "auth-token [REDACTED]"},
		{`"auth-token" SECRET`, "auth-token [REDACTED]"},
		{`auth\-token SECRET`, "auth-token [REDACTED]"},
		{"auth-token-user U0VDUkVU", "auth-token-user [REDACTED]"},
		{"auth-token SECRET extra", "auth-token [REDACTED]"},
		{"auth-token", "auth-token"},
		{"route 10.0.0.0 255.0.0.0", "route 10.0.0.0 255.0.0.0"},
		{"auth-tokenX SECRET", "auth-tokenX SECRET"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := RedactOption(tt.in); got != tt.want {
				t.Errorf("RedactOption(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestParsePushNeverEchoesToken sends auth-token in every shape that makes ParsePush warn or
// fail and checks that no warning or error carries the token.
func TestParsePushNeverEchoesToken(t *testing.T) {
	const secret = "S3CRETTOKEN"
	tests := []struct {
		name    string
		filters []PullFilter
		opt     string
	}{
		{"wrong argument count", nil, "auth-token " + secret + " more"},
		{"malformed quoting", nil, `auth-token "` + secret},
		{"bad base64 user", nil, "auth-token-user " + secret + "!"},
		{"pull-filter ignore", []PullFilter{{Action: FilterIgnore, Text: "auth-token"}}, "auth-token " + secret},
		{"pull-filter reject", []PullFilter{{Action: FilterReject, Text: "auth-token"}}, "auth-token " + secret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{PullFilters: tt.filters}
			_, warns, err := c.ParsePush([]string{"route 10.0.0.0 255.0.0.0", tt.opt})
			if len(warns) == 0 && err == nil {
				t.Fatalf("expected a warning or an error for %q", tt.opt)
			}
			for _, w := range warns {
				if strings.Contains(w.String(), secret) {
					t.Errorf("warning leaks the token: %v", w)
				}
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}
