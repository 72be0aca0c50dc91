package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/sdbx/sdbx/internal/config"
	"github.com/sdbx/sdbx/internal/template"
	sdbx "github.com/sdbx/sdbx/sdk/go"
)

const templateUsage = `Usage: sdbx template <command> [flags]

  ls [--json]                 list the templates you can use (built-ins and your own)
  logs [-f] ID                print the output of the template's last build; -f: follow
                              a build in progress until it ends (exit 1 if it failed)
  build --all | ID...         make built-in templates ready on this machine: fetch the
                              layers they need (Node.js from the npm registry), with
                              progress; run as root on the server's machine, before
                              or while it runs, with the server's --data-dir

ls and logs take --url URL (env SDBX_URL, default ` + defaultServerURL + `) and --api-key KEY
(env SDBX_API_KEY). build takes --data-dir DIR (env SDBX_DATA_DIR, default
/var/lib/sdbx).
`

func (c *cli) template(ctx context.Context, args []string) (int, error) {
	if len(args) == 0 {
		return 0, usagef("template: missing command (ls, logs, build; see sdbx template -h)")
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "ls", "list":
		return 0, c.templateList(ctx, rest)
	case "logs":
		return 0, c.templateLogs(ctx, rest)
	case "build":
		return 0, c.templateBuild(ctx, rest)
	case "help", "-h", "--help":
		fmt.Fprint(c.stdout, templateUsage)
		return 0, nil
	}
	return 0, usagef("template: unknown command %q (see sdbx template -h)", sub)
}

// templateLogs prints a template's build output; with -f it follows a
// build in progress and fails when the build failed.
func (c *cli) templateLogs(ctx context.Context, args []string) error {
	fs := newFlagSet("template logs")
	cf := addConnFlags(fs)
	follow := fs.Bool("f", false, "follow a build in progress until it ends")
	pos, err := parseInterspersed(fs, "template logs", args)
	if err != nil {
		return c.help(err, templateUsage, fs)
	}
	if len(pos) != 1 {
		return usagef("template logs: want ID, got %d arguments (see sdbx template -h)", len(pos))
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	var werr error
	end, err := client.TemplateLogs(ctx, pos[0], *follow, func(line string) {
		if _, err := fmt.Fprintln(c.stdout, line); err != nil && werr == nil {
			werr = err
		}
	})
	if err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	if *follow && end.Status == sdbx.TemplateFailed {
		return fmt.Errorf("template %s: build failed: %s", pos[0], end.Error)
	}
	return nil
}

func (c *cli) templateList(ctx context.Context, args []string) error {
	fs := newFlagSet("template ls")
	cf := addConnFlags(fs)
	asJSON := fs.Bool("json", false, "print a JSON array")
	pos, err := parseInterspersed(fs, "template ls", args)
	if err != nil {
		return c.help(err, templateUsage, fs)
	}
	if len(pos) > 0 {
		return usagef("template ls: unexpected argument %q", pos[0])
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	var all []sdbx.Template
	for page := 1; ; page++ {
		tp, err := client.ListTemplates(ctx, page, 100)
		if err != nil {
			return err
		}
		all = append(all, tp.Templates...)
		if len(tp.Templates) == 0 || len(all) >= tp.Total {
			break
		}
	}
	if *asJSON {
		if all == nil {
			all = []sdbx.Template{}
		}
		return writeJSONTo(c.stdout, all)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tLANGUAGE\tVERSION\tSTATUS\tERROR")
	for _, t := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, tabSafe(t.Name), t.Language, tabSafe(t.Version), t.Status, tabSafe(oneLine(t.Error)))
	}
	return tw.Flush()
}

func (c *cli) templateBuild(ctx context.Context, args []string) error {
	fs := newFlagSet("template build")
	all := fs.Bool("all", false, "every built-in template")
	dataDir := fs.String("data-dir", "", "the server's state directory (env SDBX_DATA_DIR, default /var/lib/sdbx)")
	ids, err := parseInterspersed(fs, "template build", args)
	if err != nil {
		return c.help(err, templateUsage, fs)
	}
	if *all == (len(ids) > 0) {
		return usagef("template build: give --all or template ids, not both or neither")
	}
	if os.Geteuid() != 0 {
		return errors.New("template build needs root (it writes the server's data directory)")
	}
	var cargs []string
	if *dataDir != "" {
		cargs = []string{"--data-dir", *dataDir}
	}
	cfg, err := config.Load(cargs, c.stderr)
	if err != nil {
		return usagef("template build: %v", err)
	}
	catalog, err := template.NewCatalog(ctx, template.Config{
		DataDir: cfg.DataDir, Log: slog.New(slog.DiscardHandler), RegistryMirror: cfg.RegistryMirror,
	})
	if err != nil {
		return err
	}
	defer catalog.Close()
	start := time.Now()
	err = catalog.Prepare(ctx, ids, func(id, line string) {
		fmt.Fprintf(c.stdout, "[%6.1fs] %-20s %s\n", time.Since(start).Seconds(), id, oneLine(line))
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "[%6.1fs] done\n", time.Since(start).Seconds())
	return nil
}
