package quality

import (
	"encoding/json"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/vgate-project/vgate"

type pkg struct {
	ImportPath string
	Dir        string
	Doc        string
	Name       string
	GoFiles    []string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// The leaf packages (overlap, peering, routing, ipsec) meet on standard
// types: they import neither each other nor gateway/ (STYLE.md, "Shape").
func TestDependencyDirection(t *testing.T) {
	leaves := []string{"overlap", "peering", "routing", "ipsec"}
	isLeaf := func(path string) (string, bool) {
		for _, l := range leaves {
			if path == module+"/"+l || strings.HasPrefix(path, module+"/"+l+"/") {
				return l, true
			}
		}
		return "", false
	}
	for _, p := range listPackages(t) {
		self, ok := isLeaf(p.ImportPath)
		if !ok {
			continue
		}
		for _, imp := range p.Deps {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			if other, ok := isLeaf(imp); ok && other == self {
				continue
			}
			t.Errorf("%s imports %s: leaf packages depend only on the standard library and third-party modules", p.ImportPath, imp)
		}
	}
}

// Every package says what it owns.
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no package doc comment", p.ImportPath)
		}
	}
}

func TestGofmt(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got, err := format.Source(src)
		if err != nil {
			t.Errorf("%s: %v", path, err)
		} else if string(got) != string(src) {
			t.Errorf("%s is not gofmt-formatted", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
