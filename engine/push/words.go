package push

import (
	"fmt"
	"strings"
)

// Words splits one option line into words the way OpenVPN reads a configuration line (and a
// pushed option): words are separated by blanks, single quotes take everything literally up to
// the next single quote, double quotes group words and honour backslash escapes, a backslash
// outside single quotes takes the next byte literally, and a # or ; that starts a word starts a
// comment. The result is the canonical form everything else works on: no quotes, no escapes.
//
// It is the only tokenizer for option text in ovpnd: profiles (config) and pushes use it, so a
// filter and the option it filters always see the same words.
func Words(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\\':
			if i+1 >= len(line) {
				return nil, fmt.Errorf("backslash at end of line")
			}
			i++
			cur.WriteByte(line[i])
			inWord = true
		case quote == '"':
			if c == '"' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
			inWord = true
		case isBlank(c):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case (c == '#' || c == ';') && !inWord:
			return words, nil
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' || c == '\n'
}

// canonical joins words with single spaces: the text pull-filter patterns are matched against.
func canonical(words []string) string {
	return strings.Join(words, " ")
}

// normalizeFilter collapses each run of blanks in a pull-filter pattern to one space, so that
// "route\t10." matches the canonical "route 10.0.0.0 ...". A trailing blank is kept: it is how
// a profile says "this word and nothing longer" ("route " does not match route-ipv6).
func normalizeFilter(text string) string {
	var b strings.Builder
	blank := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		if isBlank(c) {
			blank = true
			continue
		}
		if blank && b.Len() > 0 {
			b.WriteByte(' ')
		}
		blank = false
		b.WriteByte(c)
	}
	if blank && b.Len() > 0 {
		b.WriteByte(' ')
	}
	return b.String()
}
