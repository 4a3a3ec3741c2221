package main

import (
	"strings"
	"testing"
)

// '--invite -' takes the bare token, or finds it in the whole output of
// 'vgate client invite' saved to a file.
func TestTokenFromInput(t *testing.T) {
	tok := "vgate-invite2.GEDO5BKAW4p53OTF4ETwk3t8PJ1KD8x7P5F_tsw"
	invite := "invite for client erin (groups devs), single use, valid until 2026-12-02 11:00:27:\n\n" +
		tok + "\n\nOn the laptop: vgate connect --invite " + tok + "\n"
	for _, c := range []struct{ in, want string }{
		{tok + "\n", tok},
		{"  " + tok, tok},
		{invite, tok},
		{"not a token\nsecond line\n", "not a token"},
	} {
		got, err := tokenFromInput(strings.NewReader(c.in))
		if err != nil || got != c.want {
			t.Errorf("tokenFromInput(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if _, err := tokenFromInput(strings.NewReader("")); err == nil {
		t.Error("empty input: no error")
	}
}
