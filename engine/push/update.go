package push

import (
	"fmt"
	"strings"
)

// PUSH_UPDATE (OpenVPN 2.7, options_util.c and options.c update_option/remove_option): a server
// changes options of a live connection. Each option line may start with "-" (remove every
// option of that kind) and/or "?" (optional: skip it instead of failing when it cannot be
// applied). Only the updatable options below may appear; any other option fails the update,
// and OpenVPN then restarts the connection. An option that is set replaces all earlier ones of
// its kind (every route, every dns setting, ...), so an update carries the complete new list
// of each kind it names.

// updatable is OpenVPN 2.7.6's list (options_util.c updatable_options).
var updatable = map[string]bool{
	"block-ipv6": true, "block-outside-dns": true, "dhcp-option": true, "dns": true,
	"ifconfig": true, "ifconfig-ipv6": true, "push-continuation": true, "redirect-gateway": true,
	"redirect-private": true, "route": true, "route-gateway": true, "route-ipv6": true,
	"route-metric": true, "topology": true, "tun-mtu": true, "keepalive": true,
}

// Update is a parsed PUSH_UPDATE.
type Update struct {
	// Reply holds the options the update sets, parsed and filtered exactly like a PUSH_REPLY.
	Reply *Reply
	// Replaced are the kinds (option names) the update sets: their earlier values are
	// dropped and Reply's take their place. redirect-gateway and redirect-private are one kind.
	Replaced []string
	// Removed are the kinds the update removes ("-route").
	Removed []string
}

// Has reports whether the update replaces or removes the option kind name.
func (u *Update) Has(name string) bool {
	for _, l := range [][]string{u.Replaced, u.Removed} {
		for _, n := range l {
			if n == name {
				return true
			}
		}
	}
	return false
}

// UpdateError is a PUSH_UPDATE that must not be applied: OpenVPN restarts the connection.
type UpdateError struct {
	Line int
	Msg  string
}

func (e *UpdateError) Error() string { return fmt.Sprintf("PUSH_UPDATE:%d: %s", e.Line, e.Msg) }

// ParseUpdate reads the option lines of a PUSH_UPDATE (continuations joined) under the
// profile's policy. It returns a *RejectError when a "pull-filter reject" rule matches a
// non-optional option and an *UpdateError for an option that may not be updated.
func ParseUpdate(lines []string, pol Policy) (*Update, error) {
	filters := make([]Filter, len(pol.Filters))
	for i, f := range pol.Filters {
		filters[i] = Filter{Action: f.Action, Text: normalizeFilter(f.Text)}
	}
	u := &Update{}
	var set []string
	var warns []Warning
	warnf := func(line int, format string, args ...any) {
		warns = append(warns, Warning{Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	for i, raw := range lines {
		line := i + 1
		if i >= MaxOptions {
			warnf(line, "more than %d options in PUSH_UPDATE; ignoring the rest", MaxOptions)
			break
		}
		rest := strings.TrimLeft(raw, " \t")
		remove := strings.HasPrefix(rest, "-")
		rest = strings.TrimPrefix(rest, "-")
		optional := strings.HasPrefix(rest, "?")
		rest = strings.TrimPrefix(rest, "?")
		if optional && (rest == "" || rest[0] == '-') {
			// options_util.c: "?" must be followed by an option ("?-x" is malformed).
			return nil, &UpdateError{Line: line, Msg: fmt.Sprintf("malformed option %q", Redact(raw))}
		}
		words, err := Words(rest)
		if err != nil || len(words) == 0 || strings.HasPrefix(words[0], "-") || strings.HasPrefix(words[0], "?") {
			if optional {
				warnf(line, "ignoring malformed optional option %q", Redact(raw))
				continue
			}
			return nil, &UpdateError{Line: line, Msg: fmt.Sprintf("malformed option %q", Redact(raw))}
		}
		name := words[0]
		if !updatable[name] {
			if optional {
				warnf(line, "ignoring optional option %q: it cannot be updated", sanitizeName(name))
				continue
			}
			return nil, &UpdateError{Line: line, Msg: fmt.Sprintf("option %q cannot be updated on a live connection", sanitizeName(name))}
		}
		verdict := Accept
		for _, f := range filters {
			if strings.HasPrefix(canonical(words), f.Text) {
				verdict = f.Action
				break
			}
		}
		if verdict == Reject && !optional {
			return nil, &RejectError{Line: line, Option: redactWords(words)}
		}
		if verdict != Accept {
			warnf(line, "ignoring updated option %q (pull-filter)", redactWords(words))
			continue
		}
		if pol.RouteNoPull && routeNoPull[name] {
			warnf(line, "ignoring updated option %q (route-nopull)", redactWords(words))
			continue
		}
		if name == "push-continuation" {
			continue // joined by the engine already
		}
		kind := updateKind(name)
		if remove {
			if len(words) != 1 {
				warnf(line, "ignoring %q: removing takes no arguments", redactWords(words))
				continue
			}
			u.Removed = appendOnce(u.Removed, kind)
			continue
		}
		set = append(set, canonicalLine(words))
	}
	// Parse numbers its own lines; the update's line numbers only matter for warnings, which
	// name the option anyway.
	r, err := Parse(set, pol)
	if err != nil {
		return nil, err
	}
	r.Warnings = append(warns, r.Warnings...)
	for _, o := range r.Accepted {
		u.Replaced = appendOnce(u.Replaced, updateKind(o.Name))
	}
	u.Reply = r
	return u, nil
}

// updateKind maps an option to the kind an update replaces or removes as a whole.
func updateKind(name string) string {
	if name == "redirect-private" {
		return "redirect-gateway"
	}
	return name
}

// canonicalLine re-quotes canonical words so Parse reads them back unchanged.
func canonicalLine(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		if w == "" || strings.ContainsAny(w, " \t\"'\\#;,") {
			w = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(w) + `"`
		}
		q[i] = w
	}
	return strings.Join(q, " ")
}

func appendOnce(l []string, s string) []string {
	for _, x := range l {
		if x == s {
			return l
		}
	}
	return append(l, s)
}
