package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/google/gopacket/pcapgo"

	"github.com/vgate-project/vgate/api"
)

func cmdCapture(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("capture", stderr)
	peering := fs.String("peering", "", "capture the tunnel of this peering")
	client := fs.String("client", "", "capture this point-to-site client (its packets, denied ones too)")
	count := fs.Int("count", 0, "stop after this many packets (0: only time and size limit the capture)")
	duration := fs.Duration("duration", api.DefaultCaptureDuration, "stop after this long (at most 24h)")
	maxBytes := fs.Int64("max-bytes", api.DefaultCaptureBytes, "stop before the file grows past this many bytes (at most 1 GiB)")
	snaplen := fs.Int("snaplen", 0, "keep at most this many bytes of each packet (0: whole packets)")
	out := fs.String("w", "", "write the pcap file here ('-' for stdout) (required)")
	gf := addGatewayFlags(fs, stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: vgate capture (--peering NAME | --client NAME) [--count N] [--duration D] -w FILE.pcap\n\n"+
			"Writes the decrypted packets entering and leaving one peering's tunnel (or\n"+
			"sent and received by one point-to-site client, denied ones included) as a\n"+
			"pcap file (raw IP) that tcpdump and Wireshark read. Ctrl-C ends it early\n"+
			"and keeps what was captured.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	switch {
	case (*peering == "") == (*client == ""):
		return &exitError{2, errors.New("capture: give exactly one of --peering NAME and --client NAME")}
	case *out == "":
		return &exitError{2, errors.New("capture: -w FILE is required ('-' for stdout)")}
	case *count < 0 || *duration <= 0 || *maxBytes <= 0 || *snaplen < 0:
		return &exitError{2, errors.New("capture: --count and --snaplen must be ≥ 0, --duration and --max-bytes > 0")}
	}
	c, err := gf.client()
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	what := "peering " + *peering
	if *client != "" {
		what = "client " + *client
	}
	q := api.CaptureQuery{Peering: *peering, Client: *client, Count: *count, Duration: *duration, MaxBytes: *maxBytes, Snaplen: *snaplen}
	stream, err := c.Capture(ctx, q)
	if err != nil {
		return fmt.Errorf("capture: %w", gf.explain(err))
	}
	defer stream.Close()

	w, finish, err := openOutput(*out, stdout)
	if err != nil {
		return err
	}
	n, copyErr := copyPcap(w, stream)
	interrupted := ctx.Err() != nil
	if err := finish(); err != nil {
		return fmt.Errorf("capture: %s: %w", *out, err)
	}
	sum, ok := stream.Summary()
	switch {
	case interrupted:
		fmt.Fprintf(stderr, "capture: interrupted; %d packets from %s written to %s\n", n, what, *out)
		return nil
	case copyErr != nil:
		return fmt.Errorf("capture: %d packets written to %s, then: %w", n, *out, copyErr)
	case !ok:
		return fmt.Errorf("capture: %d packets written to %s; the gateway ended the stream without a summary", n, *out)
	case sum.Error != "":
		return fmt.Errorf("capture: %d packets written to %s, then the gateway failed: %s", n, *out, sum.Error)
	}
	fmt.Fprintf(stderr, "capture: %d packets from %s written to %s (stopped by %s", n, what, *out, sum.Stop)
	if sum.Dropped > 0 {
		fmt.Fprintf(stderr, "; %d packets dropped because the capture fell behind", sum.Dropped)
	}
	fmt.Fprintln(stderr, ")")
	if sum.Translated {
		fmt.Fprintf(stderr, "capture: %s has NAT rules: the file shows addresses as they cross the tunnel (as the peer numbers them), not as this side sees them\n", what)
	}
	return nil
}

// openOutput opens the pcap destination. A file is written to a temporary
// name next to it (mode 0600: captures hold traffic) and renamed by finish,
// so an existing file is replaced only by a complete capture.
func openOutput(name string, stdout io.Writer) (io.Writer, func() error, error) {
	if name == "-" {
		return stdout, func() error { return nil }, nil
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return nil, nil, fmt.Errorf("capture: %w", err)
	}
	return f, func() error {
		if err := f.Close(); err != nil {
			os.Remove(f.Name())
			return err
		}
		return os.Rename(f.Name(), name)
	}, nil
}

// copyPcap re-writes the pcap stream record by record, so the file holds
// only whole packets even when the stream is cut (Ctrl-C). It returns the
// packets written.
func copyPcap(w io.Writer, r io.Reader) (int, error) {
	pr, err := pcapgo.NewReader(r)
	if err != nil {
		return 0, fmt.Errorf("pcap stream: %w", err)
	}
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(pr.Snaplen(), pr.LinkType()); err != nil {
		return 0, err
	}
	n := 0
	for {
		data, ci, err := pr.ReadPacketData()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, io.ErrUnexpectedEOF) {
				return n, nil // cut mid-record: keep the whole ones
			}
			return n, err
		}
		if err := pw.WritePacket(ci, data); err != nil {
			return n, err
		}
		n++
	}
}
