package config

import (
	"bytes"
	"cmp"
	"encoding"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vgate-project/vgate/gateway/keys"
)

// FieldError is one problem in a config file, located by field path (e.g.
// "peerings[1].address_spaces[0]") and line.
type FieldError struct {
	File  string
	Line  int    // 0 if unknown (e.g. a required field that is absent)
	Field string // "" for problems of the whole document
	Msg   string
	// Err, when set, is the typed cause (e.g. a *peering.LimitError or an
	// overlap.Conflict) so that callers classify with errors.Is/As.
	Err error
}

// Unwrap returns the typed cause, if any.
func (e *FieldError) Unwrap() error { return e.Err }

// Error formats as "vgate.yaml:12: peerings[1].name: msg".
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a config, in file order.
type Errors []*FieldError

// Unwrap exposes every problem to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Error lists all problems, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Parse decodes a config strictly (unknown fields are errors), applies the
// defaults and validates it. It does not read the private key file; Load
// does. On failure the error is an Errors listing every problem found.
func Parse(data []byte, filename string) (*Config, error) {
	c, d := parse(data, filename)
	if len(d.errs) > 0 {
		return nil, d.sorted()
	}
	return c, nil
}

// ErrUnreadable matches (errors.Is) the error of Load when the config file
// cannot be read at all.
var ErrUnreadable = errors.New("config file cannot be read")

type unreadable struct{ err error }

func (e unreadable) Error() string   { return e.err.Error() }
func (e unreadable) Unwrap() []error { return []error{e.err, ErrUnreadable} }

// Load reads the config file at path, parses and validates it, and loads
// the private key from private_key_file (relative to the config file's
// directory unless absolute). On failure the error is an Errors listing
// every problem found, or a plain error if the file cannot be read.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", unreadable{err})
	}
	c, d := parse(data, path)
	if c != nil && c.PrivateKeyFile != "" {
		kp := c.PrivateKeyFile
		if !filepath.IsAbs(kp) {
			kp = filepath.Join(filepath.Dir(path), kp)
		}
		k, err := keys.LoadPrivateFile(kp)
		if err != nil {
			d.errorf("private_key_file", "%v", err)
		} else {
			c.PrivateKey = k
			checkOwnKey(c, d)
		}
	}
	if c != nil {
		loadPSKs(c, d, filepath.Dir(path)) // ipsec.go
	}
	if len(d.errs) > 0 {
		return nil, d.sorted()
	}
	c.Path = path
	return c, nil
}

// Validate checks an already decoded config (with defaults applied) and
// returns an Errors listing every problem, without line numbers. If
// PrivateKey is set, peerings may not use its public key.
func (c *Config) Validate() error {
	d := newDoc(c.Path)
	validate(c, d)
	if len(d.errs) > 0 {
		return d.sorted()
	}
	return nil
}

// doc collects the problems of one file and knows the line of every field
// path present in it.
type doc struct {
	file   string
	lines  map[string]int  // field path → line
	bad    map[string]bool // paths that failed to decode (further errors there are noise)
	errs   Errors
	budget int // nodes the schema walk may still visit (alias expansion)
	// following holds the anchors being walked through an alias, to
	// refuse an anchor that contains itself instead of recursing forever.
	following map[*yaml.Node]bool
	// rootLine is the line of the document's top mapping: the line of a
	// problem with a top-level field that is absent (0 without a file).
	rootLine int
	// typos are the unknown keys that look like a known field (suggest.go).
	typos []typo
}

func newDoc(file string) *doc {
	return &doc{file: file, lines: map[string]int{}, bad: map[string]bool{}, budget: 100000, following: map[*yaml.Node]bool{}}
}

// parent strips the last component of a field path: "a.b[2]" → "a.b" → "a".
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// lineOf is the line of path, or of its nearest ancestor present, or of
// the document.
func (d *doc) lineOf(path string) int {
	for p := path; p != ""; p = parent(p) {
		if l, ok := d.lines[p]; ok {
			return l
		}
	}
	return d.rootLine
}

func (d *doc) present(path string) bool { _, ok := d.lines[path]; return ok }

// errorf records a problem at path unless path or an ancestor already
// failed to decode (that error is reported, and a zero value in its place
// would only repeat it).
func (d *doc) errorf(path, format string, args ...any) {
	for p := path; p != ""; p = parent(p) {
		if d.bad[p] {
			return
		}
	}
	d.add(path, d.lineOf(path), fmt.Sprintf(format, args...))
}

// errorw records err at path, keeping it as the typed cause.
func (d *doc) errorw(path string, err error) {
	for p := path; p != ""; p = parent(p) {
		if d.bad[p] {
			return
		}
	}
	d.errs = append(d.errs, &FieldError{File: d.file, Line: d.lineOf(path), Field: path, Msg: err.Error(), Err: err})
}

func (d *doc) add(path string, line int, msg string) {
	d.errs = append(d.errs, &FieldError{File: d.file, Line: line, Field: path, Msg: msg})
}

// decodeErr records a decoding problem at path and marks it bad.
func (d *doc) decodeErr(path string, line int, format string, args ...any) {
	d.add(path, line, fmt.Sprintf(format, args...))
	d.bad[path] = true
}

func (d *doc) sorted() Errors {
	out := slices.Clone(d.errs)
	slices.SortStableFunc(out, func(a, b *FieldError) int { return cmp.Compare(a.Line, b.Line) })
	return out
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError converts an error from yaml.v3 into FieldErrors, parsing the
// "line N:" out of each message.
func (d *doc) yamlError(err error) {
	var msgs []string
	if te := (*yaml.TypeError)(nil); errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for _, m := range msgs {
		line, field := 0, ""
		if sm := yamlLineRE.FindStringSubmatch(m); sm != nil {
			line, _ = strconv.Atoi(sm[1])
			m = sm[2]
			field = d.pathAtLine(line)
		}
		m = strings.TrimPrefix(m, "yaml: ")
		d.decodeErr(field, line, "%s", m)
	}
}

// pathAtLine is the deepest field path that starts on line.
func (d *doc) pathAtLine(line int) string {
	best := ""
	for p, l := range d.lines {
		if l != line {
			continue
		}
		if n, bn := strings.Count(p, ".")+strings.Count(p, "["), strings.Count(best, ".")+strings.Count(best, "["); best == "" || n > bn || (n == bn && p < best) {
			best = p
		}
	}
	return best
}

// parse decodes, defaults and validates. It returns the config decoded so
// far (nil if the document could not be decoded at all) and the problems,
// those that follow only from a misspelt field folded into its problem.
func parse(data []byte, filename string) (*Config, *doc) {
	c, d := parseDoc(data, filename, true)
	return c, d
}

// parseDoc is parse; fold says whether to fold the problems of misspelt
// fields (suggest.go), which parses the corrected file with fold false.
func parseDoc(data []byte, filename string, fold bool) (*Config, *doc) {
	d := newDoc(filename)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil && err != io.EOF {
		d.syntaxError(data, err)
		return nil, d
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.decodeErr("", extra.Line, "only one YAML document is allowed in a config file")
		return nil, d
	} else if err != io.EOF {
		d.syntaxError(data, err)
		return nil, d
	}

	c := new(Config)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		d.rootLine = root.Content[0].Line
		d.walk(root.Content[0], reflect.TypeOf(c).Elem(), "")
		var err error
		if len(d.errs) == 0 {
			// The walk found nothing: decode the original bytes strictly.
			strict := yaml.NewDecoder(bytes.NewReader(data))
			strict.KnownFields(true)
			if err = strict.Decode(c); err == io.EOF {
				err = nil
			}
		} else {
			// Decode what the walk left: bad values are null, unknown
			// keys removed, so every other field is still checked.
			err = root.Decode(c)
		}
		if err != nil {
			d.yamlError(err)
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				return nil, d // not even a partial decode
			}
		}
	}
	for i := range c.Peerings {
		c.Peerings[i].Line = d.lines[fmt.Sprintf("peerings[%d]", i)]
	}
	applyDefaults(c, d)
	validate(c, d)
	if fold {
		d.foldTypos(data, filename)
	}
	return c, d
}

func applyDefaults(c *Config, d *doc) {
	if c.ListenPort == 0 && !d.present("listen_port") {
		c.ListenPort = DefaultListenPort
	}
	if c.MaxTunnels == 0 && !d.present("max_tunnels") {
		c.MaxTunnels = DefaultMaxTunnels
	}
	if c.ControlSocket == "" {
		c.ControlSocket = DefaultControlSocket
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.BGP != nil && !c.BGP.RouterID.IsValid() && c.TunnelAddress.Is4() {
		c.BGP.RouterID = c.TunnelAddress
	}
	if p := c.PointToSite; p != nil {
		if p.ListenPort == 0 && !d.present("point_to_site.listen_port") {
			p.ListenPort = DefaultP2SPort
		}
		if p.MaxClients == 0 && !d.present("point_to_site.max_clients") {
			p.MaxClients = DefaultMaxClients
		}
		// With the gateway's name server, clients use it (validate
		// refuses point_to_site.dns beside dns).
		if c.DNS != nil && c.TunnelAddress.IsValid() && (len(p.DNS) == 0 || slices.Equal(p.DNS, []netip.Addr{c.TunnelAddress})) {
			p.DNS = []netip.Addr{c.TunnelAddress}
			if c.DNS.Zone != "" {
				p.DNSSearch = []string{strings.ToLower(strings.TrimSuffix(c.DNS.Zone, "."))}
			}
		}
	}
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	offableType     = reflect.TypeFor[offable]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// describe names what a value of type t is written as.
func describe(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[netip.Prefix]():
		return "a prefix such as 10.1.0.0/16"
	case reflect.TypeFor[netip.Addr]():
		return "an IP address"
	case reflect.TypeFor[keys.PublicKey]():
		return "a base64 WireGuard public key"
	case durationType:
		return "a duration such as 25s"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a whole number from 0 to %d", uint64(1)<<t.Bits()-1)
	case reflect.Slice:
		return "a list"
	case reflect.Struct:
		return "a mapping of fields"
	}
	return t.String()
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

func nullify(n *yaml.Node) {
	*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
}

// walk checks node n against the Go type t that path decodes into: it
// records the line of every field path, reports unknown and duplicate keys
// (and removes them) and values that do not decode into their type (and
// replaces them with null), so that one decode afterwards yields every
// other field and the problems come out with their paths and lines.
func (d *doc) walk(n *yaml.Node, t reflect.Type, path string) {
	if d.budget--; d.budget < 0 {
		if d.budget == -1 {
			d.decodeErr("", n.Line, "document too large or its aliases expand too much")
		}
		return
	}
	if path != "" {
		if _, ok := d.lines[path]; !ok {
			d.lines[path] = n.Line
		}
	}
	line := d.lineOf(path)
	if path == "" {
		line = n.Line
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || !d.follow(n.Alias, path, line) {
			return
		}
		defer delete(d.following, n.Alias)
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if reflect.PointerTo(t).Implements(offableType) && n.Kind == yaml.ScalarNode {
		if !isOff(n) {
			d.decodeErr(path, line, "want off or %s, got %q", describe(t), n.Value)
			nullify(n)
		}
		return
	}
	scalar := reflect.PointerTo(t).Implements(textUnmarshaler) || t == durationType ||
		(t.Kind() != reflect.Struct && t.Kind() != reflect.Slice && t.Kind() != reflect.Map)
	switch {
	case scalar:
		if n.Kind != yaml.ScalarNode {
			d.decodeErr(path, line, "want %s, got %s", describe(t), kindName(n))
			nullify(n)
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			var te *yaml.TypeError
			if errors.As(err, &te) {
				d.decodeErr(path, line, "want %s, got %q", describe(t), n.Value)
			} else if t == reflect.TypeFor[keys.PublicKey]() {
				// Do not echo: it may be a mistyped private key.
				d.decodeErr(path, line, "want %s (base64 of 32 bytes, as wg pubkey prints)", describe(t))
			} else {
				// netip errors read `ParsePrefix("x"): why`; keep the why.
				why := err.Error()
				if i := strings.LastIndex(why, ": "); i >= 0 {
					why = why[i+2:]
				}
				d.decodeErr(path, line, "%q is not %s (%s)", n.Value, describe(t), why)
			}
			nullify(n)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.decodeErr(path, line, "want a list (e.g. [a, b]), got %s", kindName(n))
			nullify(n)
			return
		}
		et := t.Elem()
		for et.Kind() == reflect.Pointer {
			et = et.Elem()
		}
		for i, item := range n.Content {
			ip := fmt.Sprintf("%s[%d]", path, i)
			d.walk(item, t.Elem(), ip)
			target := item
			if target.Kind == yaml.AliasNode && target.Alias != nil {
				target = target.Alias
			}
			if target.Kind != yaml.ScalarNode || target.ShortTag() != "!!null" {
				continue
			}
			// yaml.v3 drops null list items, which would shift the
			// indexes of the items after them: keep a zero value instead.
			if !d.bad[ip] {
				d.decodeErr(ip, d.lineOf(ip), "empty list item")
			}
			if et.Kind() == reflect.Struct {
				*item = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: item.Line, Column: item.Column}
			} else {
				*item = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Line: item.Line, Column: item.Column}
			}
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.decodeErr(path, line, "want %s, got %s", describe(t), kindName(n))
			nullify(n)
			return
		}
		d.walkStruct(n, t, path, map[string]int{})
	}
}

// follow marks anchor target as being walked, or reports it contains
// itself.
func (d *doc) follow(target *yaml.Node, path string, line int) bool {
	if d.following[target] {
		d.decodeErr(path, line, "anchor %q contains itself", target.Anchor)
		return false
	}
	d.following[target] = true
	return true
}

func (d *doc) walkStruct(n *yaml.Node, t reflect.Type, path string, seen map[string]int) {
	if d.budget--; d.budget < 0 {
		return
	}
	fields := map[string]reflect.StructField{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" && f.IsExported() {
			fields[name] = f
		}
	}
	kept := n.Content[:0:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged := v
			if merged.Kind == yaml.AliasNode && merged.Alias != nil {
				merged = merged.Alias
			}
			var sources []*yaml.Node
			if merged.Kind == yaml.SequenceNode {
				sources = merged.Content
			} else {
				sources = []*yaml.Node{merged}
			}
			for _, s := range sources {
				if s.Kind == yaml.AliasNode && s.Alias != nil {
					s = s.Alias
				}
				if s.Kind != yaml.MappingNode {
					d.decodeErr(path, k.Line, "<< merges only mappings")
					continue
				}
				if d.follow(s, path, k.Line) {
					d.walkStruct(s, t, path, map[string]int{}) // explicit keys override merged ones
					delete(d.following, s)
				}
			}
			kept = append(kept, k, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.decodeErr(path, k.Line, "keys must be plain names")
			continue
		}
		child := k.Value
		if path != "" {
			child = path + "." + k.Value
		}
		f, ok := fields[k.Value]
		if !ok {
			known := slices.Sorted(func(yield func(string) bool) {
				for name := range fields {
					if !yield(name) {
						return
					}
				}
			})
			d.unknownField(child, k, known) // suggest.go
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.decodeErr(child, k.Line, "duplicate key %q (first at line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		d.lines[child] = k.Line
		d.walk(v, f.Type, child)
		kept = append(kept, k, v)
	}
	n.Content = kept
}
