package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

const filesUsage = `Usage: sdbx files <command> [flags]

  ls [--json] ID [DIR]             list a directory (default /workspace): TYPE SIZE MODE MODIFIED NAME
  cat ID PATH                      print a file on stdout
  put [--parents] ID LOCAL PATH    upload the local file LOCAL ("-": stdin) to PATH, streamed
  get ID PATH [LOCAL]              download PATH to LOCAL (a file or a directory; default: stdout)
  rm [-r] ID PATH...               delete files; -r: directories with everything in them
  stat [--json] ID PATH            describe PATH: TYPE SIZE MODE MODIFIED PATH
  mkdir [-p] ID PATH               create the directory PATH; -p: with its parents, no error if it exists
  mv [-f] ID FROM TO               move (rename) FROM to TO; -f: replace an existing TO
  watch [-r] [--json] ID DIR       print changes below DIR as they happen (TIME TYPE PATH) until
                                   interrupted; -r: subdirectories too

Sandbox paths are absolute (/workspace/data.csv). Contents are streamed both
ways, never held in memory whole.

Every command takes --url URL (env SDBX_URL, default ` + defaultServerURL + `)
and --api-key KEY (env SDBX_API_KEY).
`

func (c *cli) files(ctx context.Context, args []string) (int, error) {
	if len(args) == 0 {
		return 0, usagef("files: missing command (ls, cat, put, get, rm, stat, mkdir, mv, watch; see sdbx files -h)")
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "ls", "list":
		return 0, c.filesList(ctx, rest)
	case "cat":
		return 0, c.filesGet(ctx, "files cat", rest, false)
	case "get":
		return 0, c.filesGet(ctx, "files get", rest, true)
	case "put":
		return 0, c.filesPut(ctx, rest)
	case "rm", "delete":
		return 0, c.filesRemove(ctx, rest)
	case "stat":
		return 0, c.filesStat(ctx, rest)
	case "mkdir":
		return 0, c.filesMakeDir(ctx, rest)
	case "mv", "move":
		return 0, c.filesMove(ctx, rest)
	case "watch":
		return 0, c.filesWatch(ctx, rest)
	case "help", "-h", "--help":
		fmt.Fprint(c.stdout, filesUsage)
		return 0, nil
	}
	return 0, usagef("files: unknown command %q (see sdbx files -h)", sub)
}

func (c *cli) filesList(ctx context.Context, args []string) error {
	fs := newFlagSet("files ls")
	cf := addConnFlags(fs)
	asJSON := fs.Bool("json", false, "print the listing as JSON")
	pos, err := parseInterspersed(fs, "files ls", args)
	if err != nil {
		return c.help(err, filesUsage, fs)
	}
	if len(pos) == 0 || len(pos) > 2 {
		return usagef("files ls: want ID [DIR], got %d arguments (see sdbx files -h)", len(pos))
	}
	dir := ""
	if len(pos) == 2 {
		dir = pos[1]
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	list, err := client.ListFiles(ctx, pos[0], dir)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONTo(c.stdout, list)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tSIZE\tMODE\tMODIFIED\tNAME")
	for _, e := range list.Entries {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", e.Type, e.Size, orDash(e.Mode), formatTime(e.ModifiedAt), tabSafe(e.Name))
	}
	return tw.Flush()
}

// filesGet serves `files cat ID PATH` and `files get ID PATH [LOCAL]`.
func (c *cli) filesGet(ctx context.Context, verb string, args []string, local bool) error {
	fs := newFlagSet(verb)
	cf := addConnFlags(fs)
	pos, err := parseInterspersed(fs, verb, args)
	if err != nil {
		return c.help(err, filesUsage, fs)
	}
	switch {
	case !local && len(pos) != 2:
		return usagef("%s: want ID PATH, got %d arguments (see sdbx files -h)", verb, len(pos))
	case local && (len(pos) < 2 || len(pos) > 3):
		return usagef("%s: want ID PATH [LOCAL], got %d arguments (see sdbx files -h)", verb, len(pos))
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	f, err := client.ReadFile(ctx, pos[0], pos[1])
	if err != nil {
		return err
	}
	defer f.Close()
	if len(pos) < 3 || pos[2] == "-" {
		_, err := io.Copy(c.stdout, f)
		return err
	}
	return saveFile(pos[2], f)
}

// saveFile writes r to the local path dst (into it, under the remote name,
// when dst is a directory). The content goes to a temporary file that
// replaces dst only once complete, so a broken transfer never leaves a
// short file behind.
func saveFile(dst string, f *sdbx.FileReader) error {
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		dst = filepath.Join(dst, f.Name)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".sdbx-get-*")
	if err != nil {
		return fmt.Errorf("%s: %w", dst, pathError(err))
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, f); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("%s: %w", dst, pe.Err)
		}
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", dst, pathError(err))
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("%s: %w", dst, pathError(err))
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("%s: %w", dst, pathError(err))
	}
	done = true
	return nil
}

func (c *cli) filesPut(ctx context.Context, args []string) error {
	fs := newFlagSet("files put")
	cf := addConnFlags(fs)
	parents := fs.Bool("parents", false, "create the missing parent directories of PATH")
	pos, err := parseInterspersed(fs, "files put", args)
	if err != nil {
		return c.help(err, filesUsage, fs)
	}
	if len(pos) != 3 {
		return usagef("files put: want ID LOCAL PATH, got %d arguments (see sdbx files -h)", len(pos))
	}
	id, local, remote := pos[0], pos[1], pos[2]
	var content io.Reader = c.stdin
	if local != "-" {
		f, err := os.Open(local)
		if err != nil {
			return usagef("files put: %q: %v", local, pathError(err))
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return usagef("files put: %q: is a directory", local)
		}
		content = f
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	var opts []sdbx.FileOption
	if *parents {
		opts = append(opts, sdbx.CreateParents())
	}
	_, err = client.WriteFile(ctx, id, remote, content, opts...)
	return err
}

func (c *cli) filesRemove(ctx context.Context, args []string) error {
	fs := newFlagSet("files rm")
	cf := addConnFlags(fs)
	recursive := fs.Bool("r", false, "delete directories with everything in them")
	pos, err := parseInterspersed(fs, "files rm", args)
	if err != nil {
		return c.help(err, filesUsage, fs)
	}
	if len(pos) < 2 {
		return usagef("files rm: want ID PATH..., got %d arguments (see sdbx files -h)", len(pos))
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	for _, p := range pos[1:] {
		if err := client.DeleteFile(ctx, pos[0], p, *recursive); err != nil {
			return err
		}
	}
	return nil
}

func (c *cli) filesStat(ctx context.Context, args []string) error {
	fs := newFlagSet("files stat")
	cf := addConnFlags(fs)
	asJSON := fs.Bool("json", false, "print the entry as JSON")
	pos, err := parseInterspersed(fs, "files stat", args)
	if err != nil {
		return c.help(err, filesUsage, fs)
	}
	if len(pos) != 2 {
		return usagef("files stat: want ID PATH, got %d arguments (see sdbx files -h)", len(pos))
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	e, err := client.StatFile(ctx, pos[0], pos[1])
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONTo(c.stdout, e)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tSIZE\tMODE\tMODIFIED\tPATH")
	fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", e.Type, e.Size, orDash(e.Mode), formatTime(e.ModifiedAt), tabSafe(e.Path))
	return tw.Flush()
}

func (c *cli) filesMakeDir(ctx context.Context, args []string) error {
	fs := newFlagSet("files mkdir")
	cf := addConnFlags(fs)
	parents := fs.Bool("p", false, "create missing parent directories; an existing directory is not an error")
	pos, err := parseInterspersed(fs, "files mkdir", args)
	if err != nil {
		return c.help(err, filesUsage, fs)
	}
	if len(pos) != 2 {
		return usagef("files mkdir: want ID PATH, got %d arguments (see sdbx files -h)", len(pos))
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	_, err = client.MakeDir(ctx, pos[0], pos[1], *parents)
	return err
}

func (c *cli) filesMove(ctx context.Context, args []string) error {
	fs := newFlagSet("files mv")
	cf := addConnFlags(fs)
	overwrite := fs.Bool("f", false, "replace an existing TO (a directory replaces only an empty one)")
	pos, err := parseInterspersed(fs, "files mv", args)
	if err != nil {
		return c.help(err, filesUsage, fs)
	}
	if len(pos) != 3 {
		return usagef("files mv: want ID FROM TO, got %d arguments (see sdbx files -h)", len(pos))
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	_, err = client.MoveFile(ctx, pos[0], pos[1], pos[2], *overwrite)
	return err
}
