package routing

import (
	"os"
	"testing"
)

// TestMain runs the tests, or, when the test binary was started as a lab
// speaker (labspeaker_test.go), that speaker.
func TestMain(m *testing.M) {
	if sock := os.Getenv(labSpeakerEnv); sock != "" {
		os.Exit(runLabSpeaker(sock))
	}
	os.Exit(m.Run())
}
