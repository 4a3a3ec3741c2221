package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"rsc.io/qr"

	"github.com/vgate-project/vgate/api"
	"github.com/vgate-project/vgate/gateway/control"
)

func cmdClientInvite(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("client invite", stderr)
	var groups stringList
	fs.Var(&groups, "group", "group the client will belong to (repeat, or comma-separate)")
	expires := fs.Duration("expires", 0, "how long the invite is valid (default 24h, at most 720h)")
	showQR := fs.Bool("qr", false, "print the token as a QR code too")
	revoke := fs.Bool("revoke", false, "revoke the pending invite NAME instead")
	asJSON := fs.Bool("json", false, "print the invite as JSON")
	gf := addGatewayFlags(fs, stderr)
	name, err := oneName(fs, args)
	if err != nil {
		return err
	}
	if *revoke {
		if len(groups) > 0 || *expires != 0 || *showQR {
			return &exitError{2, errors.New("client invite --revoke NAME takes no other flags")}
		}
		c, ctx, cancel, err := gf.connect()
		if err != nil {
			return err
		}
		defer cancel()
		inv, err := c.RevokeInvite(ctx, name)
		if err != nil {
			return gf.explain(err)
		}
		if *asJSON {
			return printJSON(stdout, inv)
		}
		fmt.Fprintf(stdout, "invite %s revoked; its token is refused from now on\n", inv.Name)
		return nil
	}
	return createInvite(gf, name, groups, *expires, *showQR, *asJSON, stdout)
}

// createInvite asks the gateway for an invite and prints its token (and
// QR code).
func createInvite(gf *gatewayFlags, name string, groups []string, expires time.Duration, showQR, asJSON bool, stdout io.Writer) error {
	if expires < 0 {
		return &exitError{2, fmt.Errorf("--expires %v must be positive", expires)}
	}
	c, ctx, cancel, err := gf.connect()
	if err != nil {
		return err
	}
	defer cancel()
	inv, err := c.Invite(ctx, api.InviteRequest{Name: name, Groups: groups, Expires: expires})
	if err != nil {
		return gf.explain(err)
	}
	if asJSON {
		return printJSON(stdout, inv)
	}
	if showQR {
		code, err := qr.Encode(inv.Token, qr.M)
		if err != nil {
			return fmt.Errorf("qr code: %w", err)
		}
		fmt.Fprint(stdout, renderQR(code))
	}
	fmt.Fprintf(stdout, "invite for client %s (groups %s), single use, valid until %s:\n\n%s\n\n",
		inv.Name, strings.Join(inv.Groups, ","), inv.Expires.Local().Format(dateTimeZone), inv.Token)
	fmt.Fprintf(stdout, "On the laptop: vgate connect --invite %s\n", inv.Token)
	fmt.Fprintf(stdout, "It enrolls at %s (certificate %s). Revoke: vgate client revoke %s\n", inv.URL, inv.Pin, inv.Name)
	return nil
}

// clientList is what `vgate client list` shows: the clients, then the
// invites. Its JSON is the clients array alone, as before invites.
type clientList struct {
	Clients []api.ClientInfo
	Invites []api.InviteInfo
}

func (l clientList) MarshalJSON() ([]byte, error) {
	if l.Clients == nil {
		l.Clients = []api.ClientInfo{}
	}
	return json.Marshal(l.Clients)
}

// clientsAndInvites fetches both; a gateway without enrollment has no
// invites.
func clientsAndInvites(c *control.Client, ctx context.Context) (clientList, error) {
	clients, err := c.Clients(ctx)
	if err != nil {
		return clientList{}, err
	}
	invites, err := c.Invites(ctx)
	if err != nil && !errors.Is(err, api.CodeNoEnroll) && !errors.Is(err, api.CodeNoP2S) {
		return clientList{}, err
	}
	return clientList{Clients: clients, Invites: invites}, nil
}

// printInvites lists the pending invites.
func printInvites(w io.Writer, list []api.InviteInfo) {
	var pending []api.InviteInfo
	for _, i := range list {
		if i.State == "pending" {
			pending = append(pending, i)
		}
	}
	if len(pending) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INVITE\tGROUPS\tSTATE\tEXPIRES")
	for _, i := range pending {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", i.Name, strings.Join(i.Groups, ","), i.State, i.Expires.Local().Format(dateTimeZone))
	}
	tw.Flush()
}
