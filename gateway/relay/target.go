package relay

// Target is a relay by URL and certificate pin (the plan's
// plan.RelayTarget, converted); zero for none.
type Target struct {
	URL, Pin string
}
