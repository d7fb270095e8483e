package streamfold_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// allowed is ARCHITECTURE.md's import table: the project packages each package
// may import. Packages not listed (cmd/shop) may import anything.
var allowed = map[string][]string{
	"codecs":     {},
	"tables":     {"codecs"},
	"processors": {"tables", "codecs"},
	"views":      {"tables", "codecs"},
	"queryapi":   {"codecs"},
	"":           {"processors", "views", "tables", "codecs"},
	"embedded":   {},
	"shop":       {"", "processors", "views", "tables", "codecs"},

	// reads and re-drives <group>-dlq; processors brings tables and codecs
	"deadletters": {"processors", "tables", "codecs"},

	// serves a topology over HTTP across instances
	"serve": {"", "views", "queryapi", "deadletters", "processors", "tables", "codecs", "internal"},
}

// forbiddenExternal lists outside modules a package must not depend on.
var forbiddenExternal = map[string][]string{
	"queryapi": {"github.com/lovoo/goka", "github.com/IBM/sarama"},
}

const module = "github.com/streamfold/streamfold"

func TestArchitecture_GivenImportTable_ThenEveryPackageKeepsIt(t *testing.T) {
	for pkg, may := range allowed {
		path := module
		if pkg != "" {
			path += "/" + pkg
		}
		out, err := exec.Command("go", "list", "-deps", path).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", path, err)
		}
		for dep := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
			for _, bad := range forbiddenExternal[pkg] {
				if strings.HasPrefix(dep, bad) {
					t.Errorf("%s depends on %s", path, dep)
				}
			}
			if dep == path || (dep != module && !strings.HasPrefix(dep, module+"/")) {
				continue
			}
			rel := strings.TrimPrefix(strings.TrimPrefix(dep, module), "/")
			top, _, _ := strings.Cut(rel, "/")
			if top == pkg || slices.Contains(may, top) {
				continue
			}
			t.Errorf("%s imports %s, which ARCHITECTURE.md does not allow", path, dep)
		}
	}
}
