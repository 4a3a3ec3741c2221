package main

import (
	"os"
	"path/filepath"
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
		// Pasted with a space inside, or wrapped over lines.
		{tok[:25] + " " + tok[25:] + "\n", tok},
		{tok[:20] + "\n" + tok[20:40] + "\n" + tok[40:] + "\n\nOn the laptop: x\n", tok},
		{"token: " + tok[:30] + " " + tok[30:] + " (single use)\n", tok},
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

// A token pasted unquoted with a space inside reaches connect as several
// arguments: the pieces are joined (unless one names a file).
func TestTokenPieces(t *testing.T) {
	file := filepath.Join(t.TempDir(), "laptop.conf")
	os.WriteFile(file, nil, 0o600)
	for _, c := range []struct {
		pos  []string
		want bool
	}{
		{nil, false},
		{[]string{"F_tsw"}, true},
		{[]string{"ab", "c-d"}, true},
		{[]string{file}, false},
		{[]string{"laptop.conf"}, false}, // not base64url
	} {
		if got := tokenPieces(c.pos); got != c.want {
			t.Errorf("tokenPieces(%q) = %v, want %v", c.pos, got, c.want)
		}
	}
}
