package config

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Typos. An unknown field that is a small edit away from a field valid at
// its path is most likely that field misspelt: the problem says `did you
// mean "address_spaces"?`, and the problems that follow only from the
// misspelling (the field it was meant to be is then missing, and what
// depends on it fails too) are folded into that one message instead of
// being listed beside it. Which problems follow from it is decided by
// parsing the file again with the misspelt keys corrected: a problem that
// goes away was caused by them.

// typo is an unknown key that looks like a known field.
type typo struct {
	err          *FieldError
	line, column int    // of the key in the file (1-based)
	key, want    string // as written, and the field it is likely meant to be
}

// suggest returns the known name closest to name by edit distance, if it
// is close enough to be a misspelling ("" otherwise). Ties go to the
// first name in known order.
func suggest(name string, known []string) string {
	best, bestD := "", -1
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), k); bestD < 0 || d < bestD {
			best, bestD = k, d
		}
	}
	if bestD < 0 || bestD > max(2, len(best)/4) || bestD >= len(best) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// unknownField records an unknown key k at path child, among the fields
// known there, with a suggestion when one is close.
func (d *doc) unknownField(child string, k *yaml.Node, known []string) {
	want := suggest(k.Value, known)
	if want == "" {
		d.decodeErr(child, k.Line, "unknown field %q (known here: %s)", k.Value, strings.Join(known, ", "))
		return
	}
	d.decodeErr(child, k.Line, "unknown field %q: did you mean %q?", k.Value, want)
	if k.Style == 0 { // plain: its text in the file is exactly k.Value
		d.typos = append(d.typos, typo{err: d.errs[len(d.errs)-1], line: k.Line, column: k.Column, key: k.Value, want: want})
	}
}

// fixTypos returns data with every recorded misspelt key replaced by its
// suggestion, or nil if the keys cannot be found where the parser saw
// them.
func (d *doc) fixTypos(data []byte) []byte {
	lines := bytes.SplitAfter(data, []byte("\n"))
	for _, t := range d.typos {
		if t.line < 1 || t.line > len(lines) {
			return nil
		}
		l := lines[t.line-1]
		at := t.column - 1 // yaml.v3 columns count characters; keys are ASCII here
		if at < 0 || at+len(t.key) > len(l) || string(l[at:at+len(t.key)]) != t.key {
			return nil
		}
		fixed := make([]byte, 0, len(l)+len(t.want)-len(t.key))
		fixed = append(fixed, l[:at]...)
		fixed = append(fixed, t.want...)
		fixed = append(fixed, l[at+len(t.key):]...)
		lines[t.line-1] = fixed
	}
	return bytes.Join(lines, nil)
}

// foldTypos drops the problems that only the misspelt keys cause (they
// are absent when the file is parsed with the keys corrected) and says on
// each misspelling's problem how many it explains. A problem counts as
// the same when its field and message are.
func (d *doc) foldTypos(data []byte, filename string) {
	if len(d.typos) == 0 {
		return
	}
	fixed := d.fixTypos(data)
	if fixed == nil {
		return
	}
	_, fd := parseDoc(fixed, filename, false)
	remains := map[string]bool{}
	for _, e := range fd.errs {
		remains[e.Field+"\x00"+e.Msg] = true
	}
	isTypo := map[*FieldError]bool{}
	for _, t := range d.typos {
		isTypo[t.err] = true
	}
	kept := d.errs[:0:0]
	var folded []string
	for _, e := range d.errs {
		if isTypo[e] || remains[e.Field+"\x00"+e.Msg] {
			kept = append(kept, e)
			continue
		}
		if f := cmp.Or(e.Field, "the document"); !slices.Contains(folded, f) {
			folded = append(folded, f)
		}
	}
	d.errs = kept
	if len(folded) == 0 {
		return
	}
	note := fmt.Sprintf(" (this also explains the problem with %s)", strings.Join(folded, ", "))
	if len(d.typos) > 1 {
		note = fmt.Sprintf(" (the misspelt fields also explain the problems with %s)", strings.Join(folded, ", "))
	}
	for _, t := range d.typos {
		t.err.Msg += note
	}
}
