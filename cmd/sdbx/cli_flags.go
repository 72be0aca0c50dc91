package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// envFlag collects repeated --env KEY=VALUE flags.
type envFlag map[string]string

func (e envFlag) String() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(e)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + e[k])
	}
	return b.String()
}

func (e envFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", v)
	}
	e[k] = val
	return nil
}

// listFlag collects repeated flags; a value may hold several entries
// separated by commas.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for e := range strings.SplitSeq(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			*l = append(*l, e)
		}
	}
	return nil
}

// nonNegativeDuration is a duration flag that refuses negative values.
type nonNegativeDuration struct{ d *time.Duration }

func (n nonNegativeDuration) String() string {
	if n.d == nil || *n.d == 0 {
		return ""
	}
	return n.d.String()
}

func (n nonNegativeDuration) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q: want a duration like 30s or 5m", v)
	}
	if d < 0 {
		return fmt.Errorf("%q: must not be negative", v)
	}
	*n.d = d
	return nil
}

func durationVar(fs *flag.FlagSet, p *time.Duration, name, usage string) {
	fs.Var(nonNegativeDuration{p}, name, usage)
}

// newFlagSet returns a flag set that reports errors instead of printing
// them, so that each verb prints exactly one error line.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// flagError turns an error of flag.Parse into a usage error naming the
// flag, e.g. `--env "FOO": want KEY=VALUE`.
func flagError(verb string, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	msg := err.Error()
	// flag reports bad values as `invalid value "x" for flag -env: <why>`;
	// rephrase as `--env "x": <why>`.
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		if _, after, ok := strings.Cut(rest, " for flag -"); ok {
			name, why, _ := strings.Cut(after, ": ")
			return usagef("--%s %s", name, why)
		}
	}
	return usagef("%s: %s (see sdbx %s -h)", verb, msg, verb)
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments, and returns the positionals. Everything after
// "--" is positional.
func parseInterspersed(fs *flag.FlagSet, verb string, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, flagError(verb, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag.Parse consumed a "--" if the remaining args do not start
		// where it stopped: then everything left is positional.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseCommandLine parses `[flags] POS1..POSn [flags] [--] CMD [ARGS...]`:
// flags may be mixed with the first npos positionals; the command starts
// after them (or after "--") and is taken verbatim.
func parseCommandLine(fs *flag.FlagSet, verb string, args []string, npos int) (pos, cmd []string, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nil, flagError(verb, err)
		}
		rest := fs.Args()
		dashed := len(rest) < len(args) && args[len(args)-len(rest)-1] == "--"
		if len(pos) == npos || len(rest) == 0 || dashed {
			if len(pos) < npos {
				n := min(npos-len(pos), len(rest))
				pos = append(pos, rest[:n]...)
				rest = rest[n:]
			}
			cmd = rest
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < npos {
		return nil, nil, usagef("%s: missing sandbox ID (see sdbx %s -h)", verb, verb)
	}
	if len(cmd) == 0 {
		return nil, nil, usagef("%s: missing command after -- (see sdbx %s -h)", verb, verb)
	}
	return pos, cmd, nil
}
