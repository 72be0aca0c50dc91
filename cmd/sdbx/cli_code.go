package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// maxCodeBytes is the largest code the server runs (docs/protocol.md);
// the CLI refuses more before reading further.
const maxCodeBytes = 1 << 20

const codeUsage = `Usage: sdbx code [--language L] [--context C] [--timeout DURATION] [--env K=V]... [--json] ID (CODE | -f FILE | -)

Run CODE in a persistent interpreter of sandbox ID: the sandbox's default
context of the language (so variables survive between calls), or --context.
"-" reads the code from stdin, -f FILE from a local file.

What the code prints is streamed to stdout and stderr as it comes; each
rich result (display(...), a figure, the trailing expression) is printed as
its text, or as "[image/png result]" (and the like) for images. When the
code raises, its traceback goes to stderr and sdbx exits 1; when it runs
past --timeout it is interrupted and sdbx exits 124 (the message says
whether the context's state was kept).
`

func (c *cli) code(ctx context.Context, args []string) (int, error) {
	fs := newFlagSet("code")
	cf := addConnFlags(fs)
	language := fs.String("language", "", "python or javascript (default: the context's, or the template's)")
	contextID := fs.String("context", "", "run in this code context (default: the sandbox's default context)")
	var file string
	fs.StringVar(&file, "f", "", "read the code from this local file")
	fs.StringVar(&file, "file", "", "same as -f")
	env := envFlag{}
	fs.Var(env, "env", "environment variable KEY=VALUE for this run (repeatable)")
	var timeout time.Duration
	durationVar(fs, &timeout, "timeout", "interrupt the code after this long, e.g. 5m (default: the server's, 60s)")
	asJSON := fs.Bool("json", false, "print the whole result as JSON at the end instead of streaming")
	pos, err := parseInterspersed(fs, "code", args)
	if err != nil {
		return 0, c.help(err, codeUsage, fs)
	}
	if len(pos) == 0 {
		return 0, usagef("code: missing sandbox ID (see sdbx code -h)")
	}
	id, rest := pos[0], pos[1:]
	var src string
	switch {
	case file != "" && len(rest) > 0:
		return 0, usagef("code: give the code either as an argument or with -f, not both")
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return 0, usagef("-f %q: %v", file, pathError(err))
		}
		defer f.Close()
		if src, err = readCode(f, "-f "+file); err != nil {
			return 0, err
		}
	case len(rest) == 0:
		return 0, usagef("code: missing code: give it as an argument, - for stdin, or -f FILE (see sdbx code -h)")
	case len(rest) > 1:
		return 0, usagef("code: unexpected argument %q (quote the code as one argument)", rest[1])
	case rest[0] == "-":
		if src, err = readCode(c.stdin, "stdin"); err != nil {
			return 0, err
		}
	default:
		src = rest[0]
	}
	client, err := cf.client(c.env)
	if err != nil {
		return 0, err
	}
	opts := []sdbx.CodeOption{sdbx.Language(*language), sdbx.InContext(*contextID), sdbx.Timeout(timeout)}
	if len(env) > 0 {
		opts = append(opts, sdbx.Env(env))
	}
	if !*asJSON {
		opts = append(opts,
			sdbx.OnStdout(func(l sdbx.OutputLine) { fmt.Fprintln(c.stdout, l.Line) }),
			sdbx.OnStderr(func(l sdbx.OutputLine) { fmt.Fprintln(c.stderr, l.Line) }),
			sdbx.OnResult(func(r sdbx.Result) {
				if s := resultText(r); s != "" {
					fmt.Fprintln(c.stdout, s)
				}
			}),
			sdbx.OnError(func(e sdbx.ExecutionError) { fmt.Fprintln(c.stderr, tracebackText(e)) }),
		)
	}
	res, err := client.RunCode(ctx, id, src, opts...)
	if err != nil {
		return 0, err
	}
	if *asJSON {
		if err := writeJSONTo(c.stdout, res); err != nil {
			return 0, err
		}
	}
	if res.Execution.Error != nil {
		return exitError, nil
	}
	return exitOK, nil
}

// readCode reads at most maxCodeBytes of code from r.
func readCode(r io.Reader, what string) (string, error) {
	if r == nil {
		return "", nil
	}
	data, err := io.ReadAll(io.LimitReader(r, maxCodeBytes+1))
	if err != nil {
		return "", usagef("read code from %s: %v", what, pathError(err))
	}
	if len(data) > maxCodeBytes {
		return "", usagef("code from %s: larger than %d bytes", what, maxCodeBytes)
	}
	return string(data), nil
}

// pathError drops the "open NAME:" prefix of a *os.PathError, whose path
// the caller's message already names.
func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// resultText is how a rich result is shown on a terminal: images by their
// type, everything else by its plain text (or its type when it has none).
func resultText(r sdbx.Result) string {
	for _, img := range []struct {
		set  bool
		mime string
	}{
		{r.PNG != "", "image/png"},
		{r.JPEG != "", "image/jpeg"},
		{r.SVG != "", "image/svg+xml"},
		{r.PDF != "", "application/pdf"},
	} {
		if img.set {
			return "[" + img.mime + " result]"
		}
	}
	if r.Text != "" {
		return r.Text
	}
	if f := r.Formats(); len(f) > 0 {
		return "[" + f[0] + " result]"
	}
	return ""
}

// tracebackText is the traceback of e without its final newline, or
// "Name: value" when the interpreter gave none.
func tracebackText(e sdbx.ExecutionError) string {
	if tb := strings.TrimRight(e.Traceback, "\n"); tb != "" {
		return tb
	}
	if e.Value == "" {
		return e.Name
	}
	return e.Name + ": " + e.Value
}
