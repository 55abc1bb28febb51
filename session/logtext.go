package session

import (
	"strings"
	"unicode/utf8"
)

// safeText makes a log line or state reason safe for every place it goes: the journal, a
// terminal (ovpnd run, ovpnctl), and D-Bus. Much of what is logged comes from the server
// (AUTH_FAILED reasons, INFO messages, names of pushed options), so a hostile server must not
// be able to start a forged log line with a newline, drive the reader's terminal with escape
// sequences, or send invalid UTF-8, which the bus daemon rejects (and for which it drops the
// sender's connection). Control characters (C0, DEL, C1) become \xNN and invalid bytes U+FFFD.
func safeText(s string) string {
	clean := true
	for _, c := range s {
		if c == utf8.RuneError || isControl(c) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		c, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && n <= 1:
			b.WriteRune(utf8.RuneError)
		case isControl(c):
			const hex = "0123456789abcdef"
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4&0xf])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func isControl(c rune) bool {
	return c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)
}
