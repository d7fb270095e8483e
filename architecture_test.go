package streamfold_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// allowed is ARCHITECTURE.md's import table: the project packages each package
// may import. Packages not listed (cmd/shop, examples, bench) may import
// anything. The table is walked with go list -deps, so a package lists what
// it reaches through others too.
//
// internal holds the framework's plumbing (Kafka configuration, rejoin,
// in-order commits, membership, the seam between groups and the runtime,
// the snapshot envelope): the framework's own packages may use it; its users
// (shop) reach it only through the framework, never by importing it
// themselves (usersOfTheFramework).
var allowed = map[string][]string{
	"codecs":     {},
	"tables":     {"codecs", "internal"},
	"processors": {"tables", "codecs", "internal"},
	"views":      {"tables", "codecs", "internal"},
	"queryapi":   {"codecs"},
	"":           {"processors", "views", "tables", "codecs", "internal"},
	"embedded":   {},
	// internal only through the framework (go list -deps is transitive)
	"shop": {"", "processors", "views", "tables", "codecs", "internal", "outbox"},

	// reads and re-drives <group>-dlq; processors brings tables and codecs
	"deadletters": {"processors", "tables", "codecs", "internal"},

	// the transactional outbox (database/sql), its relays, SQL read-model sinks
	"outbox": {"", "processors", "tables", "codecs", "internal"},

	// serves a topology over HTTP across instances
	"serve": {"", "views", "queryapi", "deadletters", "processors", "tables", "codecs", "internal"},

	// the command line of a service: flags, the embedded broker, run, topology, dlq
	"cli": {"", "serve", "views", "queryapi", "deadletters", "processors", "tables", "codecs", "internal", "embedded"},
}

// usersOfTheFramework may depend on internal through the framework's
// packages but not import it directly.
var usersOfTheFramework = []string{"shop", "examples/clicks"}

func TestArchitecture_GivenAUserOfTheFramework_ThenItImportsNoInternalPackage(t *testing.T) {
	for _, pkg := range usersOfTheFramework {
		out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, module+"/"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for imp := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
			if strings.HasPrefix(imp, module+"/internal/") {
				t.Errorf("%s imports %s: internal is the framework's plumbing", pkg, imp)
			}
		}
	}
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

// envelopeOwner is the one package that reads and writes the snapshot
// envelope's bytes; everyone else asks it.
const envelopeOwner = module + "/internal/envelope"

func TestArchitecture_GivenTheSnapshotEnvelope_ThenOnlyItsPackageSpellsItsBookkeepingMember(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{join .GoFiles \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	needle := []byte(`"_meta"`)
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		pkg, rest, _ := strings.Cut(line, "\t")
		dir, files, _ := strings.Cut(rest, "\t")
		if pkg == envelopeOwner {
			continue
		}
		for _, f := range strings.Fields(files) {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, needle) {
				t.Errorf("%s/%s spells %s: ask internal/envelope instead of parsing the snapshot envelope", pkg, f, needle)
			}
		}
	}
}
