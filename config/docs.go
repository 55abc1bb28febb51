package config

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/ovpnd/ovpnd/engine/push"
)

// Markers around the generated part of docs/config.md.
const (
	docsBegin = "<!-- BEGIN DIRECTIVES (generated from config/directives.go by `go test ./config -run TestDocs -update`) -->"
	docsEnd   = "<!-- END DIRECTIVES -->"

	refusedBegin = "<!-- BEGIN REFUSED (generated from config/directives.go by `go test ./config -run TestDocs -update`) -->"
	refusedEnd   = "<!-- END REFUSED -->"
)

// writeRefusedDocs lists the refused directives and why, sorted by name, for the
// "Differences from OpenVPN 2.6" section.
func writeRefusedDocs(w io.Writer) {
	ds := append([]*directive(nil), directiveList...)
	sort.Slice(ds, func(i, j int) bool { return ds[i].name < ds[j].name })
	for _, d := range ds {
		if d.status == refused {
			fmt.Fprintf(w, "- `%s`: %s.\n", d.name, d.doc)
		}
	}
}

// writeDirectiveDocs renders the directive table as Markdown, sorted by name.
func writeDirectiveDocs(w io.Writer) {
	ds := append([]*directive(nil), directiveList...)
	sort.Slice(ds, func(i, j int) bool { return ds[i].name < ds[j].name })
	fmt.Fprintln(w, "| Directive | Status | Inline | In `<connection>` | Pushable | Syntax | Meaning |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return ""
	}
	for _, d := range ds {
		pushable := push.Pushable(d.name)
		fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s | `%s` | %s |\n", d.name, statusNames[d.status], yes(d.inline), yes(d.conn), yes(pushable),
			strings.ReplaceAll(d.syntax, "|", "\\|"), strings.ReplaceAll(d.doc, "|", "\\|"))
	}
}
