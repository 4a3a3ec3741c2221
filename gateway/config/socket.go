package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// ControlSocket reads only the control_socket of the config file at path
// (DefaultControlSocket if unset), so that the CLI can find a running
// gateway even when the rest of the file no longer validates (it was
// edited after the gateway started). Only an unreadable file, broken YAML
// or a control_socket that is not a string are errors.
//
// With broken YAML the socket is still returned beside an error matching
// ErrSyntax (and naming the line of the mistake): the path of a top-level
// "control_socket: PATH" line if the file has one, else
// DefaultControlSocket, so that the CLI can still reach the gateway.
func ControlSocket(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	var doc struct {
		ControlSocket string `yaml:"control_socket"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return "", fmt.Errorf("config %s: control_socket: %w", path, err)
		}
		d := newDoc(path)
		d.syntaxError(data, err)
		return socketLine(data), d.errs[0]
	}
	if doc.ControlSocket == "" {
		return DefaultControlSocket, nil
	}
	return doc.ControlSocket, nil
}

var socketLineRE = regexp.MustCompile(`(?m)^control_socket:[ \t]*("[^"\n]+"|'[^'\n]+'|[^\s#"'\[{][^\s#]*)[ \t]*(?:#.*)?\r?$`)

// socketLine is the value of a top-level control_socket line of a file
// that is not valid YAML, or DefaultControlSocket.
func socketLine(data []byte) string {
	m := socketLineRE.FindSubmatch(data)
	if m == nil {
		return DefaultControlSocket
	}
	return strings.Trim(string(m[1]), `"'`)
}
