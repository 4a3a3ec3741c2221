package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/vgate-project/vgate/gateway/keys"
)

func cmdKeygen(args []string, stdout io.Writer) error {
	fs := newFlags("keygen", os.Stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	k, err := keys.GeneratePrivate()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, k.Base64())
	return err
}

func cmdPubkey(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := newFlags("pubkey", os.Stderr)
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
