package main

import (
	"context"
	"fmt"
	"text/tabwriter"
)

const keyUsage = `Usage: sdbx key <command> [flags]   (needs the admin key)

  create --name N     create an API key with a tenant of its own; print the secret (only it) on stdout
  ls [--json]         list keys: ID NAME ADMIN CREATED
  rm KEY|NAME...      revoke keys: refused at once, open connections closed

Every command takes --url URL (env SDBX_URL, default ` + defaultServerURL + `)
and --api-key KEY (env SDBX_API_KEY).
`

func (c *cli) key(ctx context.Context, args []string) (int, error) {
	if len(args) == 0 {
		return 0, usagef("key: missing command (create, ls, rm; see sdbx key -h)")
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "create":
		return 0, c.keyCreate(ctx, rest)
	case "ls", "list":
		return 0, c.keyList(ctx, rest)
	case "rm", "revoke", "delete":
		return 0, c.keyRemove(ctx, rest)
	case "help", "-h", "--help":
		fmt.Fprint(c.stdout, keyUsage)
		return 0, nil
	}
	return 0, usagef("key: unknown command %q (see sdbx key -h)", sub)
}

func (c *cli) keyCreate(ctx context.Context, args []string) error {
	fs := newFlagSet("key create")
	cf := addConnFlags(fs)
	name := fs.String("name", "", "key name (1-64 letters, digits, '.', '_', '-')")
	pos, err := parseInterspersed(fs, "key create", args)
	if err != nil {
		return c.help(err, keyUsage, fs)
	}
	if len(pos) > 0 {
		return usagef("key create: unexpected argument %q", pos[0])
	}
	if *name == "" {
		return usagef("key create: --name is required")
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	key, secret, err := client.CreateKey(ctx, *name)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, secret)
	fmt.Fprintf(c.stderr, "created key %s (%s); the secret above is shown only once\n", key.ID, key.Name)
	return nil
}

func (c *cli) keyList(ctx context.Context, args []string) error {
	fs := newFlagSet("key ls")
	cf := addConnFlags(fs)
	asJSON := fs.Bool("json", false, "print a JSON array")
	pos, err := parseInterspersed(fs, "key ls", args)
	if err != nil {
		return c.help(err, keyUsage, fs)
	}
	if len(pos) > 0 {
		return usagef("key ls: unexpected argument %q", pos[0])
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	keys, err := client.ListKeys(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONTo(c.stdout, keys)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tADMIN\tCREATED")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%s\n", k.ID, tabSafe(k.Name), k.Admin, formatTime(k.CreatedAt))
	}
	return tw.Flush()
}

func (c *cli) keyRemove(ctx context.Context, args []string) error {
	fs := newFlagSet("key rm")
	cf := addConnFlags(fs)
	pos, err := parseInterspersed(fs, "key rm", args)
	if err != nil {
		return c.help(err, keyUsage, fs)
	}
	if len(pos) == 0 {
		return usagef("key rm: missing KEY or NAME")
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	for _, k := range pos {
		if err := client.RevokeKey(ctx, k); err != nil {
			return err
		}
	}
	return nil
}
