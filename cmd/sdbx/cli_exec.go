package main

import (
	"context"
	"fmt"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

const (
	// runExpiryMargin is added to the command's timeout to give a `run`
	// sandbox its expiry: if the CLI dies before it can delete the sandbox,
	// the server still removes it.
	runExpiryMargin = 10 * time.Minute
	// serverDefaultTimeout is the server's command timeout when none is
	// given (docs/protocol.md).
	serverDefaultTimeout = 60 * time.Second
	// cleanupTimeout bounds the delete of a `run` sandbox.
	cleanupTimeout = 30 * time.Second
)

const execUsage = `Usage: sdbx exec [--env K=V]... [--cwd DIR] [--timeout DURATION] [--detach] ID -- CMD [ARGS...]

Run CMD with ARGS (argv, no shell; use sh -c '...' for a shell) in sandbox ID,
stream its stdout and stderr as they come, and exit with its exit code
(124 if it ran past --timeout).

With --detach, start CMD as a background process instead, print its process
id and exit at once (the process keeps running; see docs/cli.md).
`

func (c *cli) exec(ctx context.Context, args []string) (int, error) {
	fs := newFlagSet("exec")
	cf := addConnFlags(fs)
	env := envFlag{}
	fs.Var(env, "env", "environment variable KEY=VALUE for the command (repeatable)")
	cwd := fs.String("cwd", "", "working directory, an absolute path (default: the template's)")
	var timeout time.Duration
	durationVar(fs, &timeout, "timeout", "kill the command after this long, e.g. 5m (default: the server's, 60s)")
	detach := fs.Bool("detach", false, "start CMD in the background and print its process id")
	pos, argv, err := parseCommandLine(fs, "exec", args, 1)
	if err != nil {
		return 0, c.help(err, execUsage, fs)
	}
	client, err := cf.client(c.env)
	if err != nil {
		return 0, err
	}
	if *detach {
		return c.startDetached(ctx, client, pos[0], sdbx.Command{Args: argv, Env: env, Cwd: *cwd, Timeout: timeout})
	}
	return c.runCommand(ctx, client, pos[0], sdbx.Command{Args: argv, Env: env, Cwd: *cwd, Timeout: timeout})
}

// runCommand runs cmd, streaming its output to the CLI's stdout/stderr, and
// returns the command's exit code.
func (c *cli) runCommand(ctx context.Context, client *sdbx.Client, id string, cmd sdbx.Command) (int, error) {
	res, err := client.RunCommand(ctx, id, cmd,
		sdbx.OnStdout(func(l sdbx.OutputLine) { fmt.Fprintln(c.stdout, l.Line) }),
		sdbx.OnStderr(func(l sdbx.OutputLine) { fmt.Fprintln(c.stderr, l.Line) }),
	)
	if err != nil {
		return 0, err
	}
	return commandExitCode(res.ExitCode), nil
}

const runUsage = `Usage: sdbx run [--template ID] [--name N] [--env K=V]... [--cwd DIR] [--timeout DURATION] -- CMD [ARGS...]

Create a sandbox, run CMD in it (streaming its output), delete the sandbox
(also on Ctrl-C) and exit with the command's exit code.
`

func (c *cli) runVerb(ctx context.Context, args []string) (int, error) {
	fs := newFlagSet("run")
	cf := addConnFlags(fs)
	tmpl := fs.String("template", defaultTemplate, "template id")
	name := fs.String("name", "", "sandbox name")
	env := envFlag{}
	fs.Var(env, "env", "environment variable KEY=VALUE (repeatable)")
	cwd := fs.String("cwd", "", "working directory, an absolute path (default: the template's)")
	var timeout time.Duration
	durationVar(fs, &timeout, "timeout", "kill the command after this long, e.g. 5m (default: the server's, 60s)")
	_, argv, err := parseCommandLine(fs, "run", args, 0)
	if err != nil {
		return 0, c.help(err, runUsage, fs)
	}
	client, err := cf.client(c.env)
	if err != nil {
		return 0, err
	}
	expiry := timeout
	if expiry == 0 {
		expiry = serverDefaultTimeout
	}
	expiry += runExpiryMargin
	sb, err := client.CreateSandbox(ctx, sdbx.CreateSandboxOptions{TemplateID: *tmpl, Name: *name, Env: env, Expiry: expiry})
	if err != nil {
		return 0, err
	}
	code, runErr := c.runCommand(ctx, client, sb.ID, sdbx.Command{Args: argv, Cwd: *cwd, Timeout: timeout})

	// Delete even after Ctrl-C; a second Ctrl-C now kills the CLI.
	if c.stopSignals != nil {
		c.stopSignals()
	}
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := client.DeleteSandbox(cleanupCtx, sb.ID); err != nil {
		if runErr != nil {
			fmt.Fprintf(c.stderr, "sdbx: delete sandbox %s: %s\n", sb.ID, oneLine(err.Error()))
			return 0, runErr
		}
		return 0, fmt.Errorf("delete sandbox %s: %w", sb.ID, err)
	}
	return code, runErr
}
