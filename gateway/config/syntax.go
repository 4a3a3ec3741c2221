package config

import (
	"errors"
	"strconv"
	"strings"
)

// ErrSyntax matches (errors.Is) a config problem that is broken YAML: the
// file could not be read as a document at all.
var ErrSyntax = errors.New("YAML syntax error")

// syntaxError records a YAML syntax error. yaml.v3 reports the line of
// the construct it was parsing (off by one for parser errors) rather than
// where the mistake is, so the line is located again from the text, and
// the message quotes the offending line.
func (d *doc) syntaxError(data []byte, err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if sm := yamlLineRE.FindStringSubmatch(msg); sm != nil {
		line, _ = strconv.Atoi(sm[1])
		msg = sm[2]
	}
	lines := strings.Split(string(data), "\n")
	l, note := locateSyntax(lines, line, msg)
	if l > 0 {
		line = l
	}
	if line > 0 && line <= len(lines) {
		if text := strings.TrimRight(lines[line-1], " \t\r"); strings.TrimSpace(text) != "" {
			msg += ": " + strconv.Quote(text)
		}
	}
	if note != "" {
		msg += " (" + note + ")"
	}
	d.errs = append(d.errs, &FieldError{File: d.file, Line: line, Msg: msg, Err: ErrSyntax})
}

// locateSyntax is the 1-based line of the mistake behind yaml.v3's
// message msg reported at line (0 to keep yaml.v3's line) and a note in
// plain words on what is wrong there.
func locateSyntax(lines []string, line int, msg string) (int, string) {
	switch {
	case strings.Contains(msg, "tab character"), strings.Contains(msg, "cannot start any token"):
		for i, l := range lines {
			if ind := l[:len(l)-len(strings.TrimLeft(l, " \t"))]; strings.Contains(ind, "\t") {
				return i + 1, "YAML indents with spaces, never tabs"
			}
		}
	case strings.Contains(msg, "expected ',' or ']'"), strings.Contains(msg, "expected ',' or '}'"):
		if l := unclosedFlow(lines); l > 0 {
			return l, "a '[' or '{' opened on this line is not closed"
		}
	case strings.Contains(msg, "quoted scalar"), strings.Contains(msg, "unexpected end of stream"):
		if l := unclosedQuote(lines); l > 0 {
			return l, "a quote opened on this line is not closed"
		}
		if l := unclosedFlow(lines); l > 0 {
			return l, "a '[' or '{' opened on this line is not closed"
		}
	}
	if l := misindented(lines); l > 0 {
		return l, "its indentation matches no key above it"
	}
	if strings.Contains(msg, "could not find expected ':'") {
		return 0, "a key needs ':' after it"
	}
	return 0, ""
}

// content is line without a trailing comment (a '#' after a blank,
// outside quotes) and trailing blanks.
func content(line string) string {
	var q byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case q != 0:
			if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			q = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return strings.TrimRight(line[:i], " \t\r")
		}
	}
	return strings.TrimRight(line, " \t\r")
}

// unclosedFlow is the line of a '[' or '{' never closed before the flow
// ends, or 0.
func unclosedFlow(lines []string) int {
	depth, open := 0, 0
	for i, l := range lines {
		c := content(l)
		if depth > 0 && strings.TrimSpace(c) != "" && indentOf(l) <= indentOf(lines[open-1]) && !strings.HasPrefix(strings.TrimSpace(c), "]") && !strings.HasPrefix(strings.TrimSpace(c), "}") {
			return open // a new key at the flow's own indentation: the flow never closed
		}
		var q byte
		for j := 0; j < len(c); j++ {
			switch ch := c[j]; {
			case q != 0:
				if ch == q {
					q = 0
				}
			case ch == '"' || ch == '\'':
				q = ch
			case ch == '[' || ch == '{':
				if depth == 0 {
					open = i + 1
				}
				depth++
			case ch == ']' || ch == '}':
				depth--
			}
		}
		if depth < 0 {
			depth = 0
		}
	}
	if depth > 0 {
		return open
	}
	return 0
}

// unclosedQuote is the first line whose value opens a quote that the line
// does not close, or 0.
func unclosedQuote(lines []string) int {
	for i, l := range lines {
		var q byte
		for j := 0; j < len(l); j++ {
			ch := l[j]
			switch {
			case q == '"' && ch == '\\':
				j++
			case q != 0:
				if ch == q {
					if q == '\'' && j+1 < len(l) && l[j+1] == '\'' {
						j++ // '' inside single quotes
						continue
					}
					q = 0
				}
			case (ch == '"' || ch == '\'') && (j == 0 || strings.ContainsRune(" \t[{,:-", rune(l[j-1]))):
				q = ch
			case ch == '#' && (j == 0 || l[j-1] == ' '):
				j = len(l)
			}
		}
		if q != 0 {
			return i + 1
		}
	}
	return 0
}

func indentOf(line string) int { return len(line) - len(strings.TrimLeft(line, " ")) }

// misindented is the first line whose indentation fits no open block: deeper
// than a key that already has a value, or back to a column no enclosing
// block uses (0 if none). Flow collections and block scalars are skipped.
func misindented(lines []string) int {
	type level struct {
		col int
		seq bool // a "- " item list at this column
	}
	stack := []level{{0, false}}
	opens := true // the previous line expects deeper lines (ends in ':')
	scalarCol := -1
	for i, l := range lines {
		c := content(l)
		t := strings.TrimSpace(c)
		if t == "" || t == "---" {
			continue
		}
		ind := indentOf(l)
		if scalarCol >= 0 {
			if ind > scalarCol {
				continue // inside a block scalar
			}
			scalarCol = -1
		}
		if strings.HasPrefix(l[ind:], "\t") {
			return i + 1
		}
		item := strings.HasPrefix(t, "- ") || t == "-"
		top := stack[len(stack)-1]
		switch {
		case ind > top.col:
			if !opens {
				return i + 1
			}
			stack = append(stack, level{ind, item})
		default:
			for len(stack) > 1 && stack[len(stack)-1].col > ind {
				stack = stack[:len(stack)-1]
			}
			top = stack[len(stack)-1]
			if top.col != ind {
				return i + 1
			}
			if top.seq && !item {
				// A list may sit at its key's column; the key's map goes on.
				if len(stack) > 1 && stack[len(stack)-2].col == ind {
					stack = stack[:len(stack)-1]
				} else {
					return i + 1
				}
			} else if item && !top.seq {
				if !opens {
					return i + 1 // a list item among a map's keys
				}
				stack = append(stack, level{ind, true})
			}
		}
		// The content of a "- key: v" item is a map at the key's column.
		body := t
		col := ind
		for strings.HasPrefix(body, "- ") {
			rest := strings.TrimLeft(body[2:], " ")
			col += len(body) - len(rest)
			body = rest
			if strings.Contains(body, ":") || strings.HasPrefix(body, "- ") {
				stack = append(stack, level{col, strings.HasPrefix(body, "- ")})
			}
		}
		opens = strings.HasSuffix(body, ":") || body == "-"
		if strings.HasSuffix(body, "|") || strings.HasSuffix(body, ">") || strings.HasSuffix(body, "|-") || strings.HasSuffix(body, ">-") {
			scalarCol = ind
		}
		if strings.ContainsAny(body, "[{") && strings.Count(body, "[")+strings.Count(body, "{") > strings.Count(body, "]")+strings.Count(body, "}") {
			return 0 // a flow collection spans lines: leave it to yaml.v3
		}
	}
	return 0
}
