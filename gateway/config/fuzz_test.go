package config

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParse checks that Parse never panics, that every problem it reports
// is a located FieldError, and that an accepted config is stable: it
// re-validates cleanly, and parsing it again or after a YAML round trip
// yields the same config.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("testdata/vgate.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{full, minimal, string(example), "", "name: [", "- a\n", minimal + "x: 1\n", minimal + ipsecPeering, natHub} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			es, ok := err.(Errors)
			if !ok || len(es) == 0 {
				t.Fatalf("error %T %v is not a non-empty Errors", err, err)
			}
			for _, e := range es {
				if e == nil || e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("malformed FieldError %#v", e)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config does not re-validate: %v", err)
		}
		c2, err := Parse(data, "fuzz.yaml")
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("second Parse differs: %v", err)
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		c3, err := Parse(out, "fuzz.yaml")
		if err != nil {
			t.Fatalf("round trip refused: %v\n%s", err, out)
		}
		// Compared as YAML: nil and empty lists are the same config.
		if out3, err := yaml.Marshal(c3); err != nil || string(out3) != string(out) {
			t.Fatalf("round trip changed the config:\n%s\n---\n%s", out, out3)
		}
	})
}

func TestPublicKeyNotEchoed(t *testing.T) {
	bad := "c2VjcmV0LXByaXZhdGUta2V5LXR5cG8K"
	es := parseErrors(t, minimal+"peerings:\n"+peer("west", "vnet-west", bad, "[10.2.0.0/16]"))
	if strings.Contains(es.Error(), bad) {
		t.Errorf("error echoes the key text: %v", es)
	}
}
