package config

import (
	"bytes"
	"strings"

	"github.com/ovpnd/ovpnd/engine/push"
)

// Limits on what the parser reads. They bound memory and time for hostile input; real profiles
// are a few kilobytes.
const (
	// MaxConfigSize is the largest configuration file, inline blocks included.
	MaxConfigSize = 1 << 20
	// MaxLineLength is the longest line outside inline blocks.
	MaxLineLength = 4096
	// MaxInlineSize is the largest single inline block (<ca>...</ca> and the like).
	MaxInlineSize = 256 << 10
	// MaxMaterialSize is the largest certificate, key or credentials file a directive may name.
	MaxMaterialSize = 1 << 20
	// MaxArgs is the most arguments one directive may carry (OpenVPN's own limit is 16 words).
	MaxArgs = 16
	// MaxConnections is the most remotes or <connection> blocks a profile may list.
	MaxConnections = 256
	// MaxListEntries bounds every other list (routes, dhcp-options, pull-filters, ...).
	MaxListEntries = 4096
)

// inlineTags are the blocks that may appear as <tag>...</tag>.
var inlineTags = map[string]bool{
	"ca": true, "cert": true, "key": true, "pkcs12": true, "tls-auth": true, "tls-crypt": true,
	"tls-crypt-v2": true, "auth-user-pass": true, "peer-fingerprint": true, "connection": true,
	"extra-certs": true, "secret": true, "dh": true, "crl-verify": true, "http-proxy-user-pass": true,
	"socks-proxy-user-pass": true,
}

// item is one directive as written: its name, its arguments and, when it was given as an inline
// block (or as NAME [inline] with a block), the block's contents.
type item struct {
	line     int
	name     string
	args     []string
	inline   []byte
	isInline bool
	// blockLine is the line of the <tag> that supplied inline, for error messages.
	blockLine int
}

// argString is the directive's arguments as one string, used to compare repeats.
func (it *item) argString() string {
	s := strings.Join(it.args, " ")
	if it.isInline {
		s += "\x00" + string(it.inline)
	}
	return s
}

// lex splits a configuration into directives the way OpenVPN reads a file: one directive per
// line, # and ; comments at the start of a word, single and double quotes, backslash escapes
// outside single quotes, CRLF line ends, a leading UTF-8 byte-order mark, and inline blocks.
// lineOffset is added to line numbers (for <connection> blocks).
func lex(data []byte, lineOffset int, errf func(line int, format string, args ...any)) []*item {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	lines := strings.Split(string(data), "\n")
	var items []*item
	type block struct {
		tag  string
		line int
		data []byte
	}
	var blocks []block
	for i := 0; i < len(lines); i++ {
		lineNo := lineOffset + i + 1
		raw := strings.TrimSuffix(lines[i], "\r")
		trimmed := strings.TrimSpace(raw)
		if tag, ok := openTag(trimmed); ok {
			if !inlineTags[tag] {
				errf(lineNo, "unknown inline block <%s>", tag)
			}
			end := "</" + tag + ">"
			var b strings.Builder
			closed := false
			j := i + 1
			for ; j < len(lines); j++ {
				l := strings.TrimSpace(strings.TrimSuffix(lines[j], "\r"))
				if l == end {
					closed = true
					break
				}
				if b.Len()+len(l)+1 > MaxInlineSize {
					errf(lineNo, "inline block <%s> is larger than %d bytes", tag, MaxInlineSize)
					return items
				}
				b.WriteString(strings.TrimSuffix(lines[j], "\r"))
				b.WriteByte('\n')
			}
			if !closed {
				errf(lineNo, "inline block <%s> has no closing %s", tag, end)
				return items
			}
			if inlineTags[tag] {
				blocks = append(blocks, block{tag: tag, line: lineNo, data: []byte(b.String())})
			}
			i = j
			continue
		}
		if strings.HasPrefix(trimmed, "</") {
			errf(lineNo, "%s without an opening block", trimmed)
			continue
		}
		if len(raw) > MaxLineLength {
			errf(lineNo, "line is longer than %d bytes", MaxLineLength)
			continue
		}
		words, err := splitWords(raw)
		if err != nil {
			errf(lineNo, "%v", err)
			continue
		}
		if len(words) == 0 {
			continue
		}
		name := strings.TrimPrefix(words[0], "--")
		if len(words)-1 > MaxArgs {
			errf(lineNo, "%s: more than %d arguments", name, MaxArgs)
			continue
		}
		items = append(items, &item{line: lineNo, name: name, args: words[1:]})
	}
	// Bind blocks to NAME [inline] directives; a block nobody names stands for the directive.
	used := make([]bool, len(blocks))
	for _, it := range items {
		if len(it.args) == 0 || it.args[0] != "[inline]" {
			continue
		}
		found := false
		for bi, b := range blocks {
			if !used[bi] && b.tag == it.name {
				used[bi] = true
				it.inline, it.isInline, it.blockLine = b.data, true, b.line
				it.args = it.args[1:]
				found = true
				break
			}
		}
		if !found {
			errf(it.line, "%s [inline] but no <%s> block follows", it.name, it.name)
			it.args = it.args[1:]
			it.isInline = true
		}
	}
	for bi, b := range blocks {
		if used[bi] {
			continue
		}
		items = append(items, &item{line: b.line, name: b.tag, inline: b.data, isInline: true, blockLine: b.line})
	}
	// Keep file order so that conflict messages and printed output follow the source.
	sortItems(items)
	return items
}

func sortItems(items []*item) {
	// Insertion sort: blocks are few and appended at the end.
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && items[j].line < items[j-1].line; j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
}

// openTag reports whether a trimmed line is an opening <tag>.
func openTag(s string) (string, bool) {
	if len(s) < 3 || s[0] != '<' || s[len(s)-1] != '>' || s[1] == '/' {
		return "", false
	}
	tag := s[1 : len(s)-1]
	for _, c := range tag {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	return tag, true
}

// splitWords splits one line into words with the tokenizer pushes use too (push.Words), so a
// pull-filter pattern and the pushed option it filters are read the same way.
func splitWords(line string) ([]string, error) {
	return push.Words(line)
}
