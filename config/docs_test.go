package config

import (
	"bytes"
	"flag"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/ovpnd/ovpnd/engine/push"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/config.md")

const docsPath = "../docs/config.md"

// TestDocs checks that docs/config.md lists exactly the directive table, and the refused
// directives in its "Differences from OpenVPN 2.6" section.
func TestDocs(t *testing.T) {
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	want := s
	for _, part := range []struct {
		begin, end string
		write      func(w io.Writer)
	}{{docsBegin, docsEnd, writeDirectiveDocs}, {refusedBegin, refusedEnd, writeRefusedDocs}} {
		i, j := strings.Index(want, part.begin), strings.Index(want, part.end)
		if i < 0 || j < i {
			t.Fatalf("%s lacks the %q and %q markers", docsPath, part.begin, part.end)
		}
		var gen bytes.Buffer
		part.write(&gen)
		want = want[:i+len(part.begin)] + "\n" + gen.String() + want[j:]
	}
	if want == s {
		return
	}
	if *update {
		if err := os.WriteFile(docsPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is out of date with the directive table; run go test ./config -run TestDocs -update", docsPath)
}

// TestTableConsistency checks invariants the parser relies on.
func TestTableConsistency(t *testing.T) {
	for _, d := range directiveList {
		if d.doc == "" || d.syntax == "" {
			t.Errorf("%s: missing doc or syntax", d.name)
		}
		if d.status == supported && d.apply == nil {
			t.Errorf("%s: supported without apply", d.name)
		}
		if d.inline && !inlineTags[d.name] {
			t.Errorf("%s: inline but not an inline tag", d.name)
		}
	}
	for _, name := range push.Names() {
		if table[name] == nil {
			t.Errorf("pushable %s is not in the directive table", name)
		}
	}
	for tag := range inlineTags {
		if table[tag] == nil {
			t.Errorf("inline tag %s is not in the directive table", tag)
		}
	}
}
