package config

import (
	"gopkg.in/yaml.v3"
)

// offValue is the scalar that turns a timed feature off (`probe: off`,
// `bfd: off`) where a mapping of its timing is otherwise expected.
const offValue = "off"

// offable is a mapping type that also takes the scalar "off".
type offable interface{ setOff() }

func (p *Probe) setOff() { *p = Probe{Off: true} }
func (b *BFD) setOff()   { *b = BFD{Off: true} }

// UnmarshalYAML takes `probe: off` or the mapping.
func (p *Probe) UnmarshalYAML(n *yaml.Node) error {
	if isOff(n) {
		p.setOff()
		return nil
	}
	type plain Probe
	return n.Decode((*plain)(p))
}

// UnmarshalYAML takes `bfd: off` or the mapping.
func (b *BFD) UnmarshalYAML(n *yaml.Node) error {
	if isOff(n) {
		b.setOff()
		return nil
	}
	type plain BFD
	return n.Decode((*plain)(b))
}

func isOff(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == offValue
}

// MarshalYAML writes `probe: off` back as it was written.
func (p Probe) MarshalYAML() (any, error) {
	if p.Off {
		return offValue, nil
	}
	type plain Probe
	return plain(p), nil
}

// MarshalYAML writes `bfd: off` back as it was written.
func (b BFD) MarshalYAML() (any, error) {
	if b.Off {
		return offValue, nil
	}
	type plain BFD
	return plain(b), nil
}
