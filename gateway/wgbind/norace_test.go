//go:build !race

package wgbind

const raceEnabled = false
