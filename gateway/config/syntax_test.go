package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSyntaxErrorLines checks that a YAML syntax error names the line of
// the mistake, quoting it, as `vgate check` prints it.
func TestSyntaxErrorLines(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		line       string // the error's "file:N:" prefix
		quote      string // the offending text the message quotes
	}{
		{"unclosed [", "name: a\naddress_spaces: [10.1.0.0/16, 10.2.0.0/16\nlisten_port: 51820\n",
			"f.yaml:2:", `"address_spaces: [10.1.0.0/16, 10.2.0.0/16"`},
		{"unclosed [ spanning lines", "name: a\naddress_spaces: [\n  10.1.0.0/16,\n  10.2.0.0/16\nlisten_port: 1\n",
			"f.yaml:2:", `"address_spaces: ["`},
		{"key indented too deep", "name: a\nlisten_port: 1\npeerings:\n  - name: west\n    network: w\n      endpoint: 1.2.3.4:5\n    address_spaces: [10.2.0.0/16]\n",
			"f.yaml:6:", `"      endpoint: 1.2.3.4:5"`},
		{"key indented too little", "name: a\nlisten_port: 1\npeerings:\n  - name: west\n    network: w\n   endpoint: 1.2.3.4:5\n",
			"f.yaml:6:", `"   endpoint: 1.2.3.4:5"`},
		{"key back at the list's column", "name: a\nlisten_port: 1\npeerings:\n  - name: west\n    network: w\n  endpoint: 1.2.3.4:5\n",
			"f.yaml:6:", `"  endpoint: 1.2.3.4:5"`},
		{"tab indentation", "name: a\npeerings:\n  - name: west\n\tnetwork: w\n",
			"f.yaml:4:", `"\tnetwork: w"`},
		{"missing colon", "name: a\nlisten_port 51820\nmax_tunnels: 3\n",
			"f.yaml:2:", `"listen_port 51820"`},
		{"unclosed double quote", "name: a\nlisten_port: 1\ndns: { zone: \"east.internal }\nstate_dir: /x\n",
			"f.yaml:3:", `"dns: { zone: \"east.internal }"`},
		{"unclosed single quote", "name: 'a\nlisten_port: 1\n",
			"f.yaml:1:", `"name: 'a"`},
		{"duplicate key", "name: a\nlisten_port: 1\nname: b\n",
			"f.yaml:3:", `duplicate key "name" (first at line 1)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), "f.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			var hit string
			for _, l := range strings.Split(err.Error(), "\n") {
				if strings.Contains(l, tc.quote) {
					hit = l
				}
			}
			if !strings.HasPrefix(hit, tc.line) {
				t.Errorf("want a line starting %s quoting %s; got:\n%v", tc.line, tc.quote, err)
			}
		})
	}
}

func TestSyntaxErrorTyped(t *testing.T) {
	_, err := Parse([]byte("name: [\n"), "f.yaml")
	if !errors.Is(err, ErrSyntax) {
		t.Errorf("broken YAML: %v does not match ErrSyntax", err)
	}
	_, err = Parse([]byte("name: a\nbogus: 1\n"), "f.yaml")
	if errors.Is(err, ErrSyntax) {
		t.Errorf("schema problem %v matches ErrSyntax", err)
	}
}

// TestLocateValid: on the files that parse, the locator blames no line
// (so it never moves a correct yaml.v3 line onto valid text).
func TestLocateValid(t *testing.T) {
	files, _ := filepath.Glob("../../deploy/examples/*/*.yaml")
	files = append(files, "testdata/vgate.example.yaml")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		if l := misindented(lines); l != 0 {
			t.Errorf("%s: misindented blames line %d: %q", f, l, lines[l-1])
		}
		if l := unclosedFlow(lines); l != 0 {
			t.Errorf("%s: unclosedFlow blames line %d: %q", f, l, lines[l-1])
		}
		if l := unclosedQuote(lines); l != 0 {
			t.Errorf("%s: unclosedQuote blames line %d: %q", f, l, lines[l-1])
		}
	}
	for _, text := range []string{
		"key:\n- a\n- b\nother: x\n",
		"a:\n  b:\n    - c: 1\n      d: 2\n    - e\n  f: |\n    text: here\n      more\ng: 'it''s'\n",
		"peerings:\n  -   name: x\n      network: y\n",
	} {
		lines := strings.Split(text, "\n")
		if l := misindented(lines); l != 0 {
			t.Errorf("%q: misindented blames line %d", text, l)
		}
	}
}

// Every truncation of the example config, and the example with any one
// line indented by one more space or a tab, parses without a panic and
// every syntax error names a line inside the file.
func TestSyntaxLocatorRobust(t *testing.T) {
	data, err := os.ReadFile("testdata/vgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var docs []string
	for i := 0; i < len(data); i += 7 {
		docs = append(docs, string(data[:i]))
	}
	for i := range lines {
		for _, pre := range []string{" ", "\t"} {
			m := slices.Clone(lines)
			m[i] = pre + m[i]
			docs = append(docs, strings.Join(m, "\n"))
		}
	}
	for _, d := range docs {
		_, err := Parse([]byte(d), "f.yaml")
		var es Errors
		if !errors.As(err, &es) {
			continue
		}
		n := strings.Count(d, "\n") + 1
		for _, e := range es {
			if errors.Is(e, ErrSyntax) && (e.Line < 0 || e.Line > n) {
				t.Errorf("syntax error at line %d of a %d-line file: %v", e.Line, n, e)
			}
		}
	}
}
