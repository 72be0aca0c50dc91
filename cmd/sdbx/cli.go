package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// defaultTemplate is the template of `sandbox create` and `run` without
// --template.
const defaultTemplate = "python-3-11"

// cli runs the client verbs. Its fields are what the verbs touch of the
// outside world, so that tests can swap them.
type cli struct {
	stdin  io.Reader // nil reads as empty
	stdout io.Writer
	stderr io.Writer
	env    cliEnv
	// stopSignals restores the default handling of Ctrl-C, so that a second
	// Ctrl-C during cleanup kills the process.
	stopSignals func()
}

// cliMain runs a CLI verb (sandbox, exec, run, key, code, files). ok is
// false when verb is not one of them.
func cliMain(verb string, args []string) (code int, ok bool) {
	switch verb {
	case "sandbox", "exec", "run", "key", "code", "files", "template", "shell":
	default:
		return 0, false
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, env: cliEnvironment(), stopSignals: stop}
	return c.run(ctx, verb, args), true
}

// run runs one verb and returns the exit code, printing any error as one
// line on stderr.
func (c *cli) run(ctx context.Context, verb string, args []string) int {
	var (
		code int
		err  error
	)
	switch verb {
	case "sandbox":
		code, err = c.sandbox(ctx, args)
	case "exec":
		code, err = c.exec(ctx, args)
	case "run":
		code, err = c.runVerb(ctx, args)
	case "key":
		code, err = c.key(ctx, args)
	case "code":
		code, err = c.code(ctx, args)
	case "files":
		code, err = c.files(ctx, args)
	case "template":
		code, err = c.template(ctx, args)
	case "shell":
		code, err = c.shell(ctx, args)
	default:
		err = usagef("unknown command %q", verb)
	}
	if err == nil {
		return code
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	msg := err.Error()
	if errors.Is(err, context.Canceled) {
		msg = "interrupted"
	}
	fmt.Fprintf(c.stderr, "sdbx: %s\n", oneLine(msg))
	return exitCode(err)
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

const sandboxUsage = `Usage: sdbx sandbox <command> [flags]

  create [--template ID] [--name N] [--env K=V]... [--expiry DURATION]
                      create a sandbox and print its id
  ls [--json]         list sandboxes
  status [--json] ID  show one sandbox
  rm ID...            delete sandboxes

Every command takes --url URL (env SDBX_URL, default ` + defaultServerURL + `)
and --api-key KEY (env SDBX_API_KEY).
`

func (c *cli) sandbox(ctx context.Context, args []string) (int, error) {
	if len(args) == 0 {
		return 0, usagef("sandbox: missing command (create, ls, status, rm; see sdbx sandbox -h)")
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "create":
		return 0, c.sandboxCreate(ctx, rest)
	case "ls", "list":
		return 0, c.sandboxList(ctx, rest)
	case "status":
		return 0, c.sandboxStatus(ctx, rest)
	case "rm", "delete":
		return 0, c.sandboxRemove(ctx, rest)
	case "help", "-h", "--help":
		fmt.Fprint(c.stdout, sandboxUsage)
		return 0, nil
	}
	return 0, usagef("sandbox: unknown command %q (see sdbx sandbox -h)", sub)
}

// help prints usage to stdout when the flag set saw -h.
func (c *cli) help(err error, usage string, fs *flag.FlagSet) error {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(c.stdout, usage)
		fmt.Fprintln(c.stdout, "\nFlags:")
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" && f.DefValue != "false" {
				def = " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(c.stdout, "  --%s\n    \t%s%s\n", f.Name, f.Usage, def)
		})
	}
	return err
}

const createUsage = `Usage: sdbx sandbox create [--template ID] [--name N] [--env K=V]... [--expiry DURATION]
                           [--egress none|internet|allowlist] [--allow CIDR|DOMAIN]...

Create a sandbox and print its id (only the id) on stdout. --egress sets
what the sandbox may reach (default: the server's, usually internet);
with allowlist, --allow names each reachable CIDR, domain or *.domain.
`

func (c *cli) sandboxCreate(ctx context.Context, args []string) error {
	fs := newFlagSet("sandbox create")
	cf := addConnFlags(fs)
	tmpl := fs.String("template", defaultTemplate, "template id")
	name := fs.String("name", "", "sandbox name (1-128 characters)")
	env := envFlag{}
	fs.Var(env, "env", "environment variable KEY=VALUE (repeatable)")
	var expiry time.Duration
	durationVar(fs, &expiry, "expiry", "lifetime, e.g. 30m (default: the server's)")
	egress := fs.String("egress", "", "network egress: none, internet or allowlist (default: the server's)")
	var allow listFlag
	fs.Var(&allow, "allow", "with --egress allowlist: a reachable CIDR, domain or *.domain (repeatable)")
	pos, err := parseInterspersed(fs, "sandbox create", args)
	if err != nil {
		return c.help(err, createUsage, fs)
	}
	if len(pos) > 0 {
		return usagef("sandbox create: unexpected argument %q (see sdbx sandbox create -h)", pos[0])
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	sb, err := client.CreateSandbox(ctx, sdbx.CreateSandboxOptions{
		TemplateID: *tmpl, Name: *name, Env: env, Expiry: expiry,
		Network: sdbx.Network{Egress: *egress, Allow: allow},
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, sb.ID)
	return nil
}

const listUsage = `Usage: sdbx sandbox ls [--json]

List sandboxes: ID NAME TEMPLATE STATUS CREATED.
`

func (c *cli) sandboxList(ctx context.Context, args []string) error {
	fs := newFlagSet("sandbox ls")
	cf := addConnFlags(fs)
	asJSON := fs.Bool("json", false, "print a JSON array")
	pos, err := parseInterspersed(fs, "sandbox ls", args)
	if err != nil {
		return c.help(err, listUsage, fs)
	}
	if len(pos) > 0 {
		return usagef("sandbox ls: unexpected argument %q", pos[0])
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	list, err := client.ListSandboxes(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONTo(c.stdout, list)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTEMPLATE\tSTATUS\tCREATED")
	for _, sb := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", sb.ID, orDash(tabSafe(sb.Name)), sb.TemplateID, sb.Status, formatTime(sb.CreatedAt))
	}
	return tw.Flush()
}

const statusUsage = `Usage: sdbx sandbox status [--json] ID

Show one sandbox as "key: value" lines (or JSON).
`

func (c *cli) sandboxStatus(ctx context.Context, args []string) error {
	fs := newFlagSet("sandbox status")
	cf := addConnFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, "sandbox status", args)
	if err != nil {
		return c.help(err, statusUsage, fs)
	}
	if len(pos) != 1 {
		return usagef("sandbox status: want exactly one sandbox ID, got %d (see sdbx sandbox status -h)", len(pos))
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	sb, err := client.GetSandbox(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONTo(c.stdout, sb)
	}
	writeStatus(c.stdout, sb)
	return nil
}

// writeStatus prints a sandbox as "key: value" lines.
func writeStatus(w io.Writer, sb *sdbx.Sandbox) {
	expires := "never"
	if sb.ExpiresAt != nil {
		expires = formatTime(*sb.ExpiresAt)
	}
	fmt.Fprintf(w, "id: %s\nname: %s\ntemplate: %s\nstatus: %s\ncreated: %s\nupdated: %s\nexpires: %s\n",
		sb.ID, oneLine(sb.Name), sb.TemplateID, sb.Status, formatTime(sb.CreatedAt), formatTime(sb.UpdatedAt), expires)
	if sb.Network.Egress != "" {
		fmt.Fprintf(w, "network: %s\n", strings.Join(append([]string{sb.Network.Egress}, sb.Network.Allow...), " "))
	}
	for _, k := range slices.Sorted(maps.Keys(sb.EnvVars)) {
		fmt.Fprintf(w, "env: %s=%s\n", k, oneLine(sb.EnvVars[k]))
	}
	if sb.Error != "" {
		fmt.Fprintf(w, "error: %s\n", oneLine(sb.Error))
	}
}

const rmUsage = `Usage: sdbx sandbox rm ID...

Delete sandboxes. Stops at the first failure.
`

func (c *cli) sandboxRemove(ctx context.Context, args []string) error {
	fs := newFlagSet("sandbox rm")
	cf := addConnFlags(fs)
	pos, err := parseInterspersed(fs, "sandbox rm", args)
	if err != nil {
		return c.help(err, rmUsage, fs)
	}
	if len(pos) == 0 {
		return usagef("sandbox rm: missing sandbox ID (see sdbx sandbox rm -h)")
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	for _, id := range pos {
		if err := client.DeleteSandbox(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// tabSafe keeps a value from breaking the table's columns.
func tabSafe(s string) string {
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
}
