package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/vgate-project/vgate/gateway/keys"
)

func cmdKeygen(args []string, stdout, stderr io.Writer) error {
	fset := newFlags("keygen", stderr)
	output := fset.String("output", "", "write the key to this new file (mode 0600) instead of stdout")
	force := fset.Bool("force", false, "with --output: replace an existing file")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if err := noArgs(fset); err != nil {
		return err
	}
	k, err := keys.GeneratePrivate()
	if err != nil {
		return err
	}
	if *output == "" {
		_, err = fmt.Fprintln(stdout, k.Base64())
		return err
	}
	if *force {
		// Remove rather than truncate: a new file gets mode 0600 even if
		// the old one was readable by others.
		if fi, err := os.Lstat(*output); err == nil && fi.Mode().IsRegular() {
			if err := os.Remove(*output); err != nil {
				return fmt.Errorf("keygen: --output %s: %w", *output, err)
			}
		}
	}
	if err := writeSecretFile(*output, k.Base64()+"\n"); err != nil { // client.go: O_EXCL, 0600
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("keygen: --output %s exists; not overwriting it (--force replaces it)", *output)
		}
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(stderr, "vgate: private key written to %s (mode 0600); public key %s\n", *output, k.Public())
	return nil
}

func cmdPubkey(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("pubkey", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 1024)).ReadString('\n')
	if err != nil && err != io.EOF {
		return fmt.Errorf("pubkey: read stdin: %w", err)
	}
	k, err := keys.ParsePrivate(line)
	if err != nil {
		return fmt.Errorf("pubkey: stdin: %w", err)
	}
	_, err = fmt.Fprintln(stdout, k.Public().String())
	return err
}
