// Package quality holds checks of the code base itself, run as tests:
// dependency direction between the top-level packages, a doc comment on
// every package, and gofmt.
package quality
