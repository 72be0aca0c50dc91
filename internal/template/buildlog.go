package template

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// droppedNote starts a build log whose beginning was dropped.
const droppedNote = "[earlier output dropped]"

// buildLog keeps the last maxBuildLog bytes of a build's output, as
// lines, and wakes followers as lines are added.
type buildLog struct {
	mu      sync.Mutex
	buf     []byte // complete lines, each ended by '\n'
	total   int64  // bytes ever added: buf holds [total-len(buf), total)
	ended   bool
	changed chan struct{} // closed (and replaced) on every change
}

func newBuildLog() *buildLog { return &buildLog{changed: make(chan struct{})} }

func (l *buildLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, line...)
	l.buf = append(l.buf, '\n')
	l.total += int64(len(line)) + 1
	if over := len(l.buf) - maxBuildLog; over > 0 {
		cut := over
		if i := strings.IndexByte(string(l.buf[over:]), '\n'); i >= 0 {
			cut += i + 1
		}
		l.buf = l.buf[cut:]
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// end marks the build over: followers return once they have read all.
func (l *buildLog) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended = true
	close(l.changed)
	l.changed = make(chan struct{})
}

// String is the log as kept (with a note when its start was dropped).
func (l *buildLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total > int64(len(l.buf)) {
		return droppedNote + "\n" + string(l.buf)
	}
	return string(l.buf)
}

// since returns the lines from absolute offset pos on (a note first when
// some of them were dropped), the offset after them, whether the build
// has ended and a channel closed at the next change.
func (l *buildLog) since(pos int64) ([]string, int64, bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lines []string
	start := l.total - int64(len(l.buf))
	if pos < start {
		lines = append(lines, droppedNote)
		pos = start
	}
	if rest := string(l.buf[pos-start:]); rest != "" {
		lines = append(lines, strings.Split(strings.TrimSuffix(rest, "\n"), "\n")...)
	}
	return lines, l.total, l.ended, l.changed
}

// BuildLogs calls onLine for each line of the output of a template's
// last build, in order, and returns the template as it is at the end.
// With follow and a build in progress, it waits for new lines until the
// build ends (or ctx does); otherwise it returns after the lines kept so
// far. The last 1 MiB of a build's output is kept, with the template's
// record, so a failed build's output can be read after a restart.
//
// Errors: errdefs.ErrNotFound for an unknown id or another tenant's
// template; ctx's error when it ends first.
func (c *Catalog) BuildLogs(ctx context.Context, tenant, id string, follow bool, onLine func(string)) (Template, error) {
	c.mu.Lock()
	e := c.find(id)
	if e == nil || !e.visibleTo(tenant) {
		c.mu.Unlock()
		return Template{}, fmt.Errorf("template %q: %w", id, errdefs.ErrNotFound)
	}
	log, saved := e.log, e.t.BuildLog
	c.mu.Unlock()
	if log == nil {
		// Built by an earlier process (or a built-in): the saved log.
		if saved != "" {
			for _, line := range strings.Split(strings.TrimSuffix(saved, "\n"), "\n") {
				onLine(line)
			}
		}
		return c.snapshotOf(e), nil
	}
	var pos int64
	for {
		lines, next, ended, changed := log.since(pos)
		pos = next
		for _, line := range lines {
			onLine(line)
		}
		if ended || !follow {
			return c.snapshotOf(e), nil
		}
		select {
		case <-ctx.Done():
			return Template{}, ctx.Err()
		case <-changed:
		}
	}
}

// snapshotOf returns e's template under the lock.
func (c *Catalog) snapshotOf(e *entry) Template {
	c.mu.Lock()
	defer c.mu.Unlock()
	return e.t
}
