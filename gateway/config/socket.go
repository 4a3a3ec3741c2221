package config

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// ControlSocket reads only the control_socket of the config file at path
// (DefaultControlSocket if unset), so that the CLI can find a running
// gateway even when the rest of the file no longer validates (it was
// edited after the gateway started). Only an unreadable file, broken YAML
// or a control_socket that is not a string are errors.
func ControlSocket(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	var doc struct {
		ControlSocket string `yaml:"control_socket"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("config %s: control_socket: %w", path, err)
	}
	if doc.ControlSocket == "" {
		return DefaultControlSocket, nil
	}
	return doc.ControlSocket, nil
}
