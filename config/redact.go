package config

import "strings"

// secretOptions are pushed options whose arguments are credentials. OpenVPN masks auth-token
// in its logs for the same reason: a token logged at any verbosity is a password in the
// journal, readable by whoever may read the journal.
var secretOptions = map[string]bool{
	"auth-token":      true,
	"auth-token-user": true,
}

// Redacted is what RedactOption puts in place of a secret argument.
const Redacted = "[REDACTED]"

// RedactOption returns one option line (pushed or from a profile) safe to log: the arguments of
// auth-token and auth-token-user are replaced by [REDACTED], everything else is unchanged. The
// name is recognised however the server spelled it (leading blanks, quotes, backslashes), since
// ParsePush unquotes it the same way before it applies the token.
func RedactOption(opt string) string {
	s := strings.TrimLeft(opt, " \t\r\v\f")
	first := s
	if i := strings.IndexAny(s, " \t\r\v\f"); i >= 0 {
		first = s[:i]
	}
	name := strings.NewReplacer(`"`, "", "'", "", `\`, "").Replace(first)
	if words, err := splitWords(s); err == nil && len(words) > 0 && secretOptions[words[0]] {
		name = words[0]
	}
	if !secretOptions[name] {
		return opt
	}
	if strings.TrimSpace(s) == first {
		return opt // no argument, nothing to hide
	}
	return name + " " + Redacted
}

// RedactOptions applies RedactOption to each option line, returning a new slice.
func RedactOptions(opts []string) []string {
	out := make([]string, len(opts))
	for i, o := range opts {
		out[i] = RedactOption(o)
	}
	return out
}
