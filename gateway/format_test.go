package gateway

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/vgate-project/vgate/gateway/keys"
	"github.com/vgate-project/vgate/gateway/plan"
)

// A gateway printed with any verb shows no key: its last plan holds the
// private key in an unexported field, where fmt does not call the key's
// redacting methods.
func TestGatewayPrintsNoKey(t *testing.T) {
	key, err := keys.GeneratePrivate()
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{applied: plan.State{Host: plan.Host{PrivateKey: key}}}
	raw := key[:]
	forms := []string{
		base64.StdEncoding.EncodeToString(raw),
		fmt.Sprint(raw), // [1 2 3 …]
		fmt.Sprintf("%x", raw),
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		out := fmt.Sprintf(verb, g)
		for _, f := range forms {
			if strings.Contains(out, strings.Trim(f, "[]")) {
				t.Errorf("fmt %s of a gateway shows the private key: %s", verb, out)
			}
		}
	}
}
