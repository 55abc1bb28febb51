package engine

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbiddenImports keeps the engine sans-IO (docs/architecture.md).
var forbiddenImports = []string{
	"net", "os", "os/exec", "syscall",
	"golang.org/x/sys/", "github.com/vishvananda/", "github.com/godbus/",
}

// forbiddenTimeCalls would let the engine read the clock or sleep behind the session's back.
var forbiddenTimeCalls = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"AfterFunc": true, "NewTimer": true, "NewTicker": true, "Tick": true,
}

func importForbidden(path, rel string) bool {
	if path == "net" && strings.HasPrefix(rel, "internal/tlspipe/") {
		return false
	}
	for _, f := range forbiddenImports {
		if strings.HasSuffix(f, "/") && strings.HasPrefix(path, f) || path == f ||
			// net/... sub-packages (net/netip, net/http) are just as forbidden as net.
			f == "net" && strings.HasPrefix(path, "net/") {
			return true
		}
	}
	return false
}

func TestEngineDependencies(t *testing.T) {
	fset := token.NewFileSet()
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel := filepath.ToSlash(path)
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		n++
		timeName := ""
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if importForbidden(p, rel) {
				t.Errorf("%s imports %q", rel, p)
			}
			if p == "time" {
				timeName = "time"
				if imp.Name != nil {
					timeName = imp.Name.Name
				}
			}
		}
		if timeName == "" || timeName == "_" {
			return nil
		}
		ast.Inspect(f, func(node ast.Node) bool {
			sel, ok := node.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == timeName && forbiddenTimeCalls[sel.Sel.Name] {
				t.Errorf("%s: uses time.%s; the engine takes time as an argument", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("checked only %d files; walking the engine tree failed", n)
	}
}

func TestImportForbidden(t *testing.T) {
	for _, tc := range []struct {
		path, file string
		want       bool
	}{
		{"net", "client.go", true},
		{"net/netip", "client.go", true},
		{"net", "internal/tlspipe/pipe.go", false},
		{"os", "internal/tlspipe/pipe.go", true},
		{"golang.org/x/sys/unix", "wire/wire.go", true},
		{"github.com/vishvananda/netlink", "x.go", true},
		{"github.com/godbus/dbus/v5", "x.go", true},
		{"crypto/tls", "client.go", false},
		{"network", "client.go", false},
	} {
		t.Run(tc.path+"@"+tc.file, func(t *testing.T) {
			if got := importForbidden(tc.path, tc.file); got != tc.want {
				t.Errorf("importForbidden(%q, %q) = %v, want %v", tc.path, tc.file, got, tc.want)
			}
		})
	}
}
