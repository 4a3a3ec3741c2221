package quality

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// The leaf packages (overlap, peering, routing, ipsec, nat) meet on
// standard types: they import neither each other nor gateway/
// (docs/architecture.md, "Rooms"). The one exception is api, the control
// API's vocabulary, which imports nothing of vgate: peering decides the
// states and reasons it defines.
func TestDependencyDirection(t *testing.T) {
	leaves := []string{"overlap", "peering", "routing", "ipsec", "nat"}
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
			if imp == module+"/api" {
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

// importsOf is the vgate packages p imports directly (non-test files).
func importsOf(p pkg) []string {
	var out []string
	for _, imp := range p.Imports {
		if imp == module || strings.HasPrefix(imp, module+"/") {
			out = append(out, imp)
		}
	}
	return out
}

// The seams around the control API: api is a leaf; the metrics collector
// reads api.Metrics, not the gateway; the CLI speaks the control API and
// reaches the daemon and the laptop client only through their entry
// packages.
func TestAPIDependencies(t *testing.T) {
	allowed := map[string][]string{
		module + "/api":             {},
		module + "/gateway/control": {module + "/api"},
		module + "/gateway/metrics": {module + "/api", module + "/gateway/connlimit"},
		module + "/cmd/vgate": {
			module + "/api",
			module + "/gateway/control",
			module + "/gateway/config",
			module + "/gateway/keys",
			module + "/gateway/daemon", // vgate run
			module + "/gateway/kernel", // vgate check: IP forwarding
			module + "/gateway/laptop", // vgate connect
			module + "/gateway/relay",  // vgate relay
			module + "/overlap",        // prefix lists
		},
	}
	seen := 0
	for _, p := range listPackages(t) {
		ok, ruled := allowed[p.ImportPath]
		if !ruled {
			continue
		}
		seen++
		for _, imp := range importsOf(p) {
			if !slices.Contains(ok, imp) {
				t.Errorf("%s imports %s; it may import only %q of vgate", p.ImportPath, imp, ok)
			}
		}
	}
	if seen != len(allowed) {
		t.Errorf("found %d of the %d ruled packages", seen, len(allowed))
	}
	// The collector does not import the gateway even indirectly.
	for _, p := range listPackages(t) {
		if p.ImportPath != module+"/gateway/metrics" && p.ImportPath != module+"/api" {
			continue
		}
		if slices.Contains(p.Deps, module+"/gateway") {
			t.Errorf("%s depends on %s/gateway", p.ImportPath, module)
		}
	}
}

// Decisions are never taken by matching error text: no strings.Contains,
// HasPrefix, HasSuffix or EqualFold (nor their bytes twins), and no == or
// != (nor a switch), on the result of an Error() call, in non-test code.
func TestNoErrorTextMatching(t *testing.T) {
	matchers := map[string]bool{"Contains": true, "HasPrefix": true, "HasSuffix": true, "EqualFold": true, "Index": true}
	fset := token.NewFileSet()
	for _, p := range listPackages(t) {
		for _, name := range p.GoFiles {
			path := filepath.Join(p.Dir, name)
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if bin, ok := n.(*ast.BinaryExpr); ok && (bin.Op == token.EQL || bin.Op == token.NEQ) {
					if isErrorCall(bin.X) || isErrorCall(bin.Y) {
						t.Errorf("%s: %s on an error's text: decide by errors.Is/As or a code", fset.Position(bin.Pos()), bin.Op)
					}
					return true
				}
				if sw, ok := n.(*ast.SwitchStmt); ok && sw.Tag != nil && isErrorCall(sw.Tag) {
					t.Errorf("%s: switch on an error's text: decide by errors.Is/As or a code", fset.Position(sw.Pos()))
					return true
				}
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || !matchers[sel.Sel.Name] {
					return true
				}
				if pkg, ok := sel.X.(*ast.Ident); !ok || (pkg.Name != "strings" && pkg.Name != "bytes") {
					return true
				}
				for _, arg := range call.Args {
					if isErrorCall(arg) {
						t.Errorf("%s: %s.%s on an error's text: decide by errors.Is/As or a code", fset.Position(call.Pos()), sel.X, sel.Sel.Name)
					}
				}
				return true
			})
		}
	}
}

// isErrorCall says whether e is a call x.Error() (possibly converted, as
// in []byte(err.Error())).
func isErrorCall(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Error" && len(call.Args) == 0 {
		return true
	}
	if len(call.Args) == 1 { // a conversion
		return isErrorCall(call.Args[0])
	}
	return false
}

// The detector itself finds what it must.
func TestIsErrorCall(t *testing.T) {
	for src, want := range map[string]bool{
		`err.Error()`:             true,
		`[]byte(err.Error())`:     true,
		`e.Msg`:                   false,
		`fmt.Sprint(err)`:         false,
		`strings.ToLower("x")`:    false,
		`errs[0].Error()`:         true,
		`string(x.y.z.Error())`:   true,
		`err.Error("unexpected")`: false,
	} {
		e, err := parser.ParseExpr(src)
		if err != nil {
			t.Fatal(err)
		}
		if got := isErrorCall(e); got != want {
			t.Errorf("isErrorCall(%s) = %v, want %v", src, got, want)
		}
	}
}

// The planner is pure (docs/architecture.md, "The flow"): facts of the
// running system (resolved endpoints, underlay MTUs, kernel routes) are
// gathered before planning and handed in. So gateway/plan depends on no
// package that touches the system: none that runs a tunnel or a server,
// nor the kernel's or the name server's (it takes their values from the
// pure gateway/route and gateway/names/zone), nor the BGP speaker (it
// takes routing's values from the pure routing/spec), nor netlink, GoBGP
// or wireguard-go; it imports no OS package directly, and calls no
// resolver, dialer or listener of package net. Every package it reaches
// counts, through any import.
func TestPlanIsPure(t *testing.T) {
	const planPkg = module + "/gateway/plan"
	forbidden := func(dep string) bool {
		for _, m := range []string{"golang.zx2c4.com/wireguard", "github.com/vishvananda/netlink", "github.com/vishvananda/netns",
			"github.com/osrg/gobgp"} {
			if dep == m || strings.HasPrefix(dep, m+"/") {
				return true
			}
		}
		for _, p := range []string{"gateway/dataplane", "gateway/p2s", "gateway/wgbind", "gateway/relay",
			"gateway/laptop", "gateway/daemon", "gateway/control", "gateway/enroll", "gateway/statefile",
			"gateway/kernel"} {
			if dep == module+"/"+p || strings.HasPrefix(dep, module+"/"+p+"/") {
				return true
			}
		}
		// The name server and the BGP speaker themselves, not their pure
		// values (gateway/names/zone, routing/spec).
		return dep == module+"/gateway" || dep == module+"/gateway/names" || dep == module+"/routing"
	}
	osImports := []string{"os", "os/exec", "syscall", "golang.org/x/sys/unix", "github.com/vishvananda/netlink"}
	netCalls := prefixMatcher("Dial", "Listen", "Resolve", "Lookup", "Interface")
	fset := token.NewFileSet()
	seen := false
	for _, p := range listPackages(t) {
		if p.ImportPath != planPkg {
			continue
		}
		seen = true
		if len(p.Deps) < 2 {
			t.Fatalf("%s: no dependencies listed: the check reads nothing", planPkg)
		}
		for _, dep := range p.Deps {
			if forbidden(dep) {
				t.Errorf("%s depends on %s: the planner runs nothing", planPkg, dep)
			}
		}
		for _, imp := range p.Imports {
			if slices.Contains(osImports, imp) {
				t.Errorf("%s imports %s: gather the fact before planning", planPkg, imp)
			}
		}
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "net" && netCalls(sel.Sel.Name) {
					t.Errorf("%s: net.%s in the planner: gather it before planning", fset.Position(call.Pos()), sel.Sel.Name)
				}
				return true
			})
		}
	}
	if !seen {
		t.Errorf("package %s not found", planPkg)
	}
}

// prefixMatcher reports whether a name starts with one of prefixes.
func prefixMatcher(prefixes ...string) func(string) bool {
	return func(name string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
}

// The tunnel-kind seam (docs/architecture.md, "Tunnel kinds"): the gateway
// reaches a kind and its tunnels only through the tunnel.Kind and
// tunnel.Tunnel interfaces (gateway/tunnel); each kind lives in its own
// package under gateway/tunnel/. So no type assertion (nor type switch
// case) names a tunnel kind's or a tunnel's concrete type (a non-interface
// type named …Kind or …Tunnel) outside the package that declares it.
func TestNoTunnelKindAssertions(t *testing.T) {
	isKindName := func(name string) bool {
		return strings.HasSuffix(name, "Kind") || strings.HasSuffix(name, "Tunnel")
	}
	const kindsDir = module + "/gateway/tunnel/"
	fset := token.NewFileSet()
	files := map[string][]*ast.File{}        // package → its files
	concrete := map[string]map[string]bool{} // package → its concrete …Kind/…Tunnel types
	kinds := 0
	for _, p := range listPackages(t) {
		concrete[p.ImportPath] = map[string]bool{}
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files[p.ImportPath] = append(files[p.ImportPath], f)
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.TYPE {
					continue
				}
				for _, s := range g.Specs {
					ts := s.(*ast.TypeSpec)
					if _, iface := ts.Type.(*ast.InterfaceType); !iface && isKindName(ts.Name.Name) {
						concrete[p.ImportPath][ts.Name.Name] = true
						if strings.HasPrefix(p.ImportPath, kindsDir) && ts.Name.Name == "Kind" {
							kinds++
						}
					}
				}
			}
		}
	}
	checked := 0
	for _, fs := range files {
		for _, f := range fs {
			imports := map[string]string{} // local name → import path
			for _, im := range f.Imports {
				path := strings.Trim(im.Path.Value, `"`)
				local := path[strings.LastIndex(path, "/")+1:]
				if im.Name != nil {
					local = im.Name.Name
				}
				imports[local] = path
			}
			report := func(pos token.Pos, target ast.Expr) {
				if s, ok := target.(*ast.StarExpr); ok {
					target = s.X
				}
				sel, ok := target.(*ast.SelectorExpr)
				if !ok {
					return // a type of this package: its own kind, or an interface
				}
				pkgName, ok := sel.X.(*ast.Ident)
				if !ok || !concrete[imports[pkgName.Name]][sel.Sel.Name] {
					return
				}
				t.Errorf("%s: type assertion to %s.%s: reach a tunnel kind through its interface", fset.Position(pos), pkgName.Name, sel.Sel.Name)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.TypeAssertExpr:
					if x.Type != nil {
						checked++
						report(x.Pos(), x.Type)
					}
				case *ast.TypeSwitchStmt:
					for _, c := range x.Body.List {
						for _, e := range c.(*ast.CaseClause).List {
							report(e.Pos(), e)
						}
					}
				}
				return true
			})
		}
	}
	if checked == 0 {
		t.Error("no type assertion found at all: the check reads nothing")
	}
	if kinds < 2 {
		t.Errorf("%d tunnel kinds (a type Kind) found under %s, want the WireGuard and IPsec kinds: the check does not see them", kinds, kindsDir)
	}
}

// The gateway's lifecycle (Start, Reload with rollback, Close, the
// applier) uses none of the views (status, metrics, capture, the peering
// watcher): a view reads the running gateway, never the other way round.
// The rule is by package: the views live in gateway/view, which reads the
// gateway's observations (gateway/observe) through an interface; the
// gateway imports no view and the view does not import the gateway, and
// gateway/observe, where they meet, imports neither. As a backstop, no
// method of the gateway returns what a view makes.
func TestLifecycleUsesNoView(t *testing.T) {
	var (
		root    = module + "/gateway"
		view    = module + "/gateway/view"
		observe = module + "/gateway/observe"
	)
	seen := map[string]bool{}
	for _, p := range listPackages(t) {
		seen[p.ImportPath] = true
		var banned []string
		switch p.ImportPath {
		case root:
			banned = []string{view}
		case view:
			banned = []string{root}
		case observe:
			banned = []string{root, view}
		}
		for _, b := range banned {
			if slices.Contains(p.Deps, b) {
				t.Errorf("%s depends on %s", p.ImportPath, b)
			}
		}
	}
	for _, p := range []string{root, view, observe} {
		if !seen[p] {
			t.Errorf("package %s not found: the rule reads nothing", p)
		}
	}
	// The views' results: a gateway method returning one is a view in
	// the lifecycle's package.
	viewTypes := map[string]bool{"api.Status": true, "api.Metrics": true, "api.CaptureSummary": true}
	dir := filepath.Join("..", "..", "gateway")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	methods := 0
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv == nil || !isGatewayRecv(fd.Recv) || fd.Type.Results == nil {
				continue
			}
			methods++
			for _, r := range fd.Type.Results.List {
				if sel, ok := r.Type.(*ast.SelectorExpr); ok {
					if id, ok := sel.X.(*ast.Ident); ok && viewTypes[id.Name+"."+sel.Sel.Name] {
						t.Errorf("%s: (*Gateway).%s returns %s.%s: a view; it belongs in gateway/view", fset.Position(fd.Pos()), fd.Name.Name, id.Name, sel.Sel.Name)
					}
				}
			}
		}
	}
	if methods == 0 {
		t.Error("no method of *Gateway found: the check reads nothing")
	}
}

// isGatewayRecv says whether a method's receiver is *Gateway.
func isGatewayRecv(r *ast.FieldList) bool {
	if len(r.List) != 1 {
		return false
	}
	star, ok := r.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	id, ok := star.X.(*ast.Ident)
	return ok && id.Name == "Gateway"
}

// One type for one thing across the control API's seam: a package that
// reports status builds it in api's types (or embeds them) rather than in
// a copy converted field by field. So no struct outside api mirrors an api
// struct. A struct mirrors one when the fields they share (same name, same
// type) are at least three, at least three quarters of the struct's and at
// least two thirds of the api struct's: a part of a larger api struct (a
// device's counters within a peering's status) is not a mirror. Types are
// compared by name, package qualifiers dropped (netip.Prefix is Prefix; a
// []Device is not a []PortDevice). A struct's fields are the ones it can
// be used with: an embedded struct of the module is replaced by its
// promoted fields (two embedded halves of a copy are a copy), while an
// embedded api struct, the way to reuse one, and a type from outside the
// module stay one field named by the type.
func TestNoAPIMirrors(t *testing.T) {
	// Structs that may mirror an api struct, with the reason.
	allowed := map[string]string{
		// The invite store's file format in state_dir, with the secret's
		// hash the API never shows: it must not change when the API does.
		module + "/gateway/enroll.Invite": "persisted record",
	}
	fset := token.NewFileSet()
	pkgs := listPackages(t)
	names := map[string]string{}
	for _, p := range pkgs {
		names[p.ImportPath] = p.Name
	}
	ix := typeIndex{}
	structs := map[string][]structType{} // by import path
	for _, p := range pkgs {
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			structs[p.ImportPath] = append(structs[p.ImportPath], ix.add(p.ImportPath, f, names)...)
		}
	}
	apiStructs := map[string][]field{}
	for _, st := range structs[module+"/api"] {
		apiStructs[st.name] = ix.fields(st.decl)
	}
	if len(apiStructs) < 10 {
		t.Fatalf("found %d api structs: the check reads nothing", len(apiStructs))
	}
	for _, p := range pkgs {
		if p.ImportPath == module+"/api" {
			continue
		}
		for _, st := range structs[p.ImportPath] {
			fields := ix.fields(st.decl)
			a, shared := mirrored(fields, apiStructs)
			if _, ok := allowed[p.ImportPath+"."+st.name]; a == "" || ok {
				continue
			}
			t.Errorf("%s: struct %s mirrors api.%s (%d shared fields of %d and %d): return or embed api.%s",
				fset.Position(st.pos), st.name, a, shared, len(fields), len(apiStructs[a]), a)
		}
	}
}

type field struct{ name, typ string }

// typeDecl is a top-level type declaration: the type it declares, in the
// package and with the imports of its file.
type typeDecl struct {
	pkg     string
	typ     ast.Expr
	imports map[string]string // a file's name for a package: its import path
}

// typeIndex is every top-level type declaration read, by import path and
// name ("github.com/…/api.NeighborStatus").
type typeIndex map[string]typeDecl

type structType struct {
	name string
	pos  token.Pos
	decl typeDecl
}

// add records the type declarations of f, a file of package pkg (names
// maps an import path to its package name, for imports without one), and
// returns its top-level struct types.
func (ix typeIndex) add(pkg string, f *ast.File, names map[string]string) []structType {
	imports := map[string]string{}
	for _, imp := range f.Imports {
		path := strings.Trim(imp.Path.Value, `"`)
		name := names[path]
		if name == "" {
			name = filepath.Base(path)
		}
		if imp.Name != nil {
			name = imp.Name.Name
		}
		imports[name] = path
	}
	var out []structType
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.TYPE {
			continue
		}
		for _, s := range g.Specs {
			ts := s.(*ast.TypeSpec)
			decl := typeDecl{pkg, ts.Type, imports}
			ix[pkg+"."+ts.Name.Name] = decl
			if _, ok := ts.Type.(*ast.StructType); ok {
				out = append(out, structType{ts.Name.Name, ts.Pos(), decl})
			}
		}
	}
	return out
}

// resolve follows a type name used in d's file (through aliases and
// types defined as another named type) to the struct it declares, with
// that struct's key; ok is false for any other type, and for one outside
// the index (outside the module) or in api.
func (ix typeIndex) resolve(d typeDecl, e ast.Expr) (key string, st typeDecl, ok bool) {
	for range 10 { // a chain of names, bounded against a cycle
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
			continue
		case *ast.Ident:
			key = d.pkg + "." + x.Name
		case *ast.SelectorExpr:
			id, isIdent := x.X.(*ast.Ident)
			if !isIdent || d.imports[id.Name] == "" {
				return "", typeDecl{}, false
			}
			key = d.imports[id.Name] + "." + x.Sel.Name
		default:
			return "", typeDecl{}, false
		}
		next, found := ix[key]
		if !found || next.pkg == module+"/api" {
			return "", typeDecl{}, false
		}
		if _, isStruct := next.typ.(*ast.StructType); isStruct {
			return key, next, true
		}
		d, e = next, next.typ
	}
	return "", typeDecl{}, false
}

// fields are the fields of the struct d declares, each type written
// without package qualifiers, with Go's promotion rule for embedded
// structs of the module: the shallowest field of a name wins, and two of
// one name at that depth hide each other.
func (ix typeIndex) fields(d typeDecl) []field {
	type at struct {
		field
		depth int
	}
	var all []at
	var walk func(d typeDecl, depth int, path map[string]bool)
	walk = func(d typeDecl, depth int, path map[string]bool) {
		for _, fd := range d.typ.(*ast.StructType).Fields.List {
			typ := unqualified(fd.Type)
			for _, n := range fd.Names {
				all = append(all, at{field{n.Name, typ}, depth})
			}
			if len(fd.Names) > 0 {
				continue
			}
			if key, inner, ok := ix.resolve(d, fd.Type); ok && !path[key] {
				path[key] = true
				walk(inner, depth+1, path)
				delete(path, key)
				continue
			}
			all = append(all, at{field{strings.TrimLeft(typ, "*"), typ}, depth})
		}
	}
	walk(d, 0, map[string]bool{})
	shallowest := map[string]int{}
	count := map[string]int{}
	for _, f := range all {
		if d, ok := shallowest[f.name]; !ok || f.depth < d {
			shallowest[f.name], count[f.name] = f.depth, 0
		}
		if f.depth == shallowest[f.name] {
			count[f.name]++
		}
	}
	var out []field
	for _, f := range all {
		if f.depth == shallowest[f.name] && count[f.name] == 1 {
			out = append(out, f.field)
		}
	}
	return out
}

// unqualified writes a type expression without package qualifiers.
func unqualified(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return x.Sel.Name
	case *ast.StarExpr:
		return "*" + unqualified(x.X)
	case *ast.ArrayType:
		if x.Len == nil {
			return "[]" + unqualified(x.Elt)
		}
		return "[N]" + unqualified(x.Elt)
	case *ast.MapType:
		return "map[" + unqualified(x.Key) + "]" + unqualified(x.Value)
	case *ast.IndexExpr:
		return unqualified(x.X) + "[" + unqualified(x.Index) + "]"
	}
	return fmt.Sprintf("%T", e) // func, chan, struct, interface: equal to no named type
}

// mirrored names the api struct that fields mirror (see TestNoAPIMirrors)
// with the number of fields they share, or "".
func mirrored(fields []field, apiStructs map[string][]field) (string, int) {
	best, most := "", 0
	for name, a := range apiStructs {
		shared := 0
		for _, f := range fields {
			if slices.Contains(a, f) {
				shared++
			}
		}
		if shared >= 3 && 4*shared >= 3*len(fields) && 3*shared >= 2*len(a) &&
			(shared > most || shared == most && name < best) {
			best, most = name, shared
		}
	}
	return best, most
}

// The mirror check finds the copies it was written against and leaves a
// part of a larger api struct alone.
func TestMirrored(t *testing.T) {
	f := func(s string) []field {
		var out []field
		for _, nt := range strings.Split(s, ",") {
			name, typ, _ := strings.Cut(strings.TrimSpace(nt), " ")
			out = append(out, field{name, typ})
		}
		return out
	}
	apiStructs := map[string][]field{
		"ForeignRoute": f("Dst Prefix, Dev string, Gateway Addr, Type string, Protocol int, Metric int"),
		"QueueStatus": f("Discipline string, Qdisc string, Queued int, SendInFlight int, SendBudget int, RecvInFlight int, RecvBudget int," +
			"DroppedCoDel uint64, MarkedCE uint64, DroppedLimit uint64, BudgetResyncs uint64"),
		"Big": f("A int, B int, C int, D int, E int, F int, G int, H int, I int, J int"),
	}
	for src, want := range map[string]string{
		// A copy: the same fields.
		"Dst Prefix, Dev string, Gateway Addr, Type string, Protocol int, Metric int": "ForeignRoute",
		// A copy with two fields renamed and one left out.
		"Qdisc string, Queued int, InFlight int, Budget int, RecvInFlight int, RecvBudget int," +
			"DroppedCoDel uint64, MarkedCE uint64, DroppedLimit uint64, BudgetResyncs uint64": "QueueStatus",
		// Same names, other types.
		"Dst string, Dev string, Gateway string, Type string, Protocol string, Metric string": "",
		// A part of a larger struct.
		"A int, B int, C int": "",
		// Two fields only.
		"Dst Prefix, Dev string": "",
		// Half its own fields.
		"Dst Prefix, Dev string, Gateway Addr, X int, Y int, Z int": "",
	} {
		if got, _ := mirrored(f(src), apiStructs); got != want {
			t.Errorf("mirrored(%s) = %q, want %q", src, got, want)
		}
	}
}

// The mirror check reads a struct's fields as Go promotes them: a copy of
// an api struct split into embedded halves is a copy, an embedded api
// struct is one field, and a name two embedded structs share at one depth
// is no field.
func TestMirroredEmbedded(t *testing.T) {
	files := map[string]string{
		module + "/api": `package api
type QueueStatus struct {
	Discipline, Qdisc string
	Queued, SendInFlight, SendBudget, RecvInFlight, RecvBudget int
	DroppedCoDel, MarkedCE, DroppedLimit, BudgetResyncs uint64
}
type ForeignRoute struct {
	Dst Prefix; Dev string; Gateway Addr; Type string; Protocol, Metric int
}`,
		"example.com/counts": `package counts
type Queue struct {
	Queued, SendInFlight, SendBudget, RecvInFlight, RecvBudget int
	DroppedCoDel, MarkedCE, DroppedLimit, BudgetResyncs uint64
}
type Alias = Queue`,
		"example.com/p": `package p
import (
	"github.com/vgate-project/vgate/api"
	c "example.com/counts"
	"net/netip"
)
type names struct{ Discipline, Qdisc string }
type counts struct {
	Queued, SendInFlight, SendBudget, RecvInFlight, RecvBudget int
	DroppedCoDel, MarkedCE, DroppedLimit, BudgetResyncs uint64
}
// Two halves of a copy.
type Halves struct {
	names
	*counts
}
// A half from another package, through an alias and a defined type.
type local c.Alias
type Imported struct {
	names
	local
}
// Nested: the halves one level down.
type Nested struct{ Halves }
// The api struct embedded, with more beside it.
type Embeds struct {
	api.QueueStatus
	Note string
}
// Dst and Dev in both halves: neither is promoted.
type dstDev struct {
	Dst netip.Prefix
	Dev string
	Gateway netip.Addr
}
type dstDevType struct {
	Dst netip.Prefix
	Dev, Type string
}
type Ambiguous struct {
	dstDev
	dstDevType
	Protocol int
}
// An own field hides a promoted one of its name.
type Shadows struct {
	dstDev
	Dst, Dev string
	Type string
}
// Embedding in a cycle.
type loopA struct {
	*loopB
	Qdisc string
}
type loopB struct {
	*loopA
	Discipline string
}`,
	}
	fset := token.NewFileSet()
	ix := typeIndex{}
	names := map[string]string{module + "/api": "api", "example.com/counts": "counts", "example.com/p": "p"}
	structs := map[string]typeDecl{}
	for path, src := range files {
		f, err := parser.ParseFile(fset, path+".go", src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range ix.add(path, f, names) {
			structs[path+"."+st.name] = st.decl
		}
	}
	apiStructs := map[string][]field{}
	for _, name := range []string{"QueueStatus", "ForeignRoute"} {
		apiStructs[name] = ix.fields(structs[module+"/api."+name])
	}
	if n := len(apiStructs["QueueStatus"]); n != 11 {
		t.Fatalf("api.QueueStatus has %d fields, want 11", n)
	}
	for name, want := range map[string]string{
		"Halves":    "QueueStatus",
		"Imported":  "QueueStatus",
		"Nested":    "QueueStatus",
		"Embeds":    "",
		"Ambiguous": "",
		"Shadows":   "",
		"loopA":     "",
	} {
		d, ok := structs["example.com/p."+name]
		if !ok {
			t.Fatalf("struct %s not read", name)
		}
		fields := ix.fields(d)
		if got, _ := mirrored(fields, apiStructs); got != want {
			t.Errorf("%s: fields %v mirror %q, want %q", name, fields, got, want)
		}
	}
}
