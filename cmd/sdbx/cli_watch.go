package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// filesWatch prints the changes below a sandbox directory until
// interrupted, the directory is deleted or the sandbox goes away.
func (c *cli) filesWatch(ctx context.Context, args []string) error {
	fs := newFlagSet("files watch")
	cf := addConnFlags(fs)
	recursive := fs.Bool("r", false, "also watch the directories below, including new ones")
	asJSON := fs.Bool("json", false, "print one JSON object per change")
	pos, err := parseInterspersed(fs, "files watch", args)
	if err != nil {
		return c.help(err, filesUsage, fs)
	}
	if len(pos) != 2 {
		return usagef("files watch: want ID PATH, got %d arguments (see sdbx files -h)", len(pos))
	}
	client, err := cf.client(c.env)
	if err != nil {
		return err
	}
	w, err := client.WatchDir(ctx, pos[0], pos[1], sdbx.WatchOptions{Recursive: *recursive})
	if err != nil {
		return err
	}
	defer w.Close()
	enc := json.NewEncoder(c.stdout)
	for ev := range w.Events {
		if *asJSON {
			if err := enc.Encode(struct {
				sdbx.WatchEvent
				Timestamp int64 `json:"timestamp"`
			}{ev, ev.Timestamp.UnixMilli()}); err != nil {
				return err
			}
			continue
		}
		line := ev.Timestamp.Local().Format(time.TimeOnly+".000") + " " + ev.Type
		if ev.Path != "" {
			line += " " + ev.Path
		}
		if ev.IsDir {
			line += "/"
		}
		if ev.OldPath != "" {
			line += " (from " + ev.OldPath + ")"
		}
		if _, err := fmt.Fprintln(c.stdout, line); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil // interrupted
	}
	return w.Err()
}
