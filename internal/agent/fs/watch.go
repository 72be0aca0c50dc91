package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// watchMask is what a watch asks inotify for on each directory.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_ATTRIB |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF |
	unix.IN_EXCL_UNLINK | unix.IN_ONLYDIR

// pairWait is how long a move's first half waits for its second half in a
// later read before it counts as a move out of the tree.
const pairWait = 10 * time.Millisecond

// WatchOptions modify Watch.
type WatchOptions struct {
	// Recursive also watches every directory below the watched one,
	// including those created (or moved in) later.
	Recursive bool
	// MaxQueue bounds the changes queued for a reader that does not keep
	// up (then one overflow change replaces those dropped); 0 means
	// agentproto.MaxWatchQueue.
	MaxQueue int
	// MaxDirs bounds the directories a recursive watch watches; 0 means
	// agentproto.MaxWatchDirs.
	MaxDirs int
}

// Watcher reports the changes below one directory (see Watch). Next
// returns them; Close stops the watch.
type Watcher struct {
	file *os.File // the inotify descriptor, in the runtime's poller
	ifd  int
	r    *root
	opts WatchOptions
	top  string // sandbox path of the watched directory
	wg   sync.WaitGroup

	// Owned by the reading goroutine (and Watch before it starts).
	dirs  map[int]string // wd → sandbox path
	wds   map[string]int // sandbox path → wd
	moves map[uint32]pendingMove

	mu      sync.Mutex
	queue   []agentproto.Change
	lastMod map[string]bool // paths whose last queued change is "modified"
	lost    bool            // changes were dropped since the queue was taken
	ended   bool
	endErr  error // io.EOF: the watched directory went away
	wake    chan struct{}
}

// pendingMove is the first half of a rename, waiting for its second.
type pendingMove struct {
	path  string
	isDir bool
	temp  string // the change a temporary file's rename stands for, or ""
}

// Watch starts watching the directory p and returns once the watches are
// in place: every change made after Watch returns is reported by Next.
//
// Errors: errdefs.ErrInvalidArgument for a bad path,
// errdefs.ErrNotFound, errdefs.ErrConflict when p is not a directory
// ("not a directory"), errdefs.ErrPermissionDenied, errdefs.ErrUnavailable
// when the host's inotify limits are reached.
func (f *FS) Watch(ctx context.Context, p string, opts WatchOptions) (*Watcher, error) {
	const op = "watch"
	abs, rel, err := cleanPath(op, p)
	if err != nil {
		return nil, err
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = agentproto.MaxWatchQueue
	}
	if opts.MaxDirs <= 0 {
		opts.MaxDirs = agentproto.MaxWatchDirs
	}
	r, err := f.open(op, abs)
	if err != nil {
		return nil, err
	}
	fd, err := r.openat(rel, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		r.close()
		if err == unix.ENOTDIR {
			return nil, fmt.Errorf("%s %s: not a directory: %w", op, abs, errdefs.ErrConflict)
		}
		return nil, pathError(op, abs, err)
	}
	ifd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		r.close()
		return nil, fmt.Errorf("%s %s: inotify: %v: %w", op, abs, errnoOf(err), errdefs.ErrUnavailable)
	}
	w := &Watcher{
		file: os.NewFile(uintptr(ifd), "inotify"), ifd: ifd, r: r, opts: opts, top: abs,
		dirs: map[int]string{}, wds: map[string]int{}, moves: map[uint32]pendingMove{},
		lastMod: map[string]bool{}, wake: make(chan struct{}, 1),
	}
	err = w.add(abs, fd)
	unix.Close(fd)
	if err == nil && opts.Recursive {
		err = w.scan(ctx, abs, false)
	}
	if err != nil {
		w.file.Close()
		r.close()
		return nil, pathError(op, abs, err)
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.read()
	}()
	return w, nil
}

// add watches the directory fd (an open descriptor of sandbox path abs).
func (w *Watcher) add(abs string, fd int) error {
	if len(w.dirs) >= w.opts.MaxDirs {
		w.push(agentproto.Change{Type: agentproto.ChangeOverflow})
		return nil
	}
	// inotify takes a path: the descriptor's /proc link names exactly the
	// directory that was resolved inside the root.
	wd, err := unix.InotifyAddWatch(w.ifd, fmt.Sprintf("/proc/self/fd/%d", fd), watchMask)
	if err == unix.ENOSPC {
		return fmt.Errorf("too many directories to watch (the host's inotify watch limit): %w", errdefs.ErrUnavailable)
	}
	if err != nil {
		return err
	}
	if old, ok := w.dirs[wd]; ok {
		delete(w.wds, old)
	}
	w.dirs[wd] = abs
	w.wds[abs] = wd
	return nil
}

// scan watches the directories below abs; with report, everything found
// is reported as created (it appeared before its directory was watched).
func (w *Watcher) scan(ctx context.Context, abs string, report bool) error {
	_, rel, err := cleanPath("watch", abs)
	if err != nil {
		return err
	}
	fd, err := w.r.openat(rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
			return nil // gone or replaced meanwhile
		}
		return err
	}
	dir := os.NewFile(uintptr(fd), abs)
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil && !errors.Is(err, io.EOF) {
		return errnoOf(err)
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, temp := tempKind(name); temp {
			continue
		}
		var st unix.Stat_t
		if fstatat(fd, name, &st) != nil {
			continue
		}
		child := path.Join(abs, name)
		if report {
			w.push(agentproto.Change{Type: agentproto.ChangeCreated, Path: child, IsDir: isDir(&st), TS: time.Now().UnixMilli()})
		}
		if !isDir(&st) {
			continue
		}
		cfd, err := unix.Openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		err = w.add(child, cfd)
		unix.Close(cfd)
		if err != nil {
			return err
		}
		if err := w.scan(ctx, child, report); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the watch and waits for its goroutine.
func (w *Watcher) Close() {
	w.file.Close()
	w.wg.Wait()
	w.r.close()
}

// Next waits for changes and returns those queued, oldest first (an
// overflow change where some were dropped). It returns io.EOF once the
// watched directory is gone and every change was returned, ctx's error
// when ctx ends, and the error that stopped the watch otherwise.
func (w *Watcher) Next(ctx context.Context) ([]agentproto.Change, error) {
	for {
		w.mu.Lock()
		batch := w.queue
		if w.lost {
			batch = append(batch, agentproto.Change{Type: agentproto.ChangeOverflow, TS: time.Now().UnixMilli()})
		}
		ended, endErr := w.ended, w.endErr
		w.queue, w.lost = nil, false
		clear(w.lastMod)
		w.mu.Unlock()
		if len(batch) > 0 {
			return batch, nil
		}
		if ended {
			return nil, endErr
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.wake:
		}
	}
}

// push queues c, coalescing a "modified" with a queued one of its path
// and dropping it when the queue is full.
func (w *Watcher) push(c agentproto.Change) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.Type == agentproto.ChangeOverflow {
		w.lost = true
	} else {
		if c.Type == agentproto.ChangeModified && w.lastMod[c.Path] {
			return
		}
		if len(w.queue) >= w.opts.MaxQueue {
			w.lost = true
		} else {
			w.queue = append(w.queue, c)
			w.lastMod[c.Path] = c.Type == agentproto.ChangeModified
			if c.OldPath != "" {
				delete(w.lastMod, c.OldPath)
			}
		}
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// end records why the watch stopped.
func (w *Watcher) end(err error) {
	w.mu.Lock()
	w.ended, w.endErr = true, err
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// read turns inotify events into changes until Close or the watched
// directory goes away.
func (w *Watcher) read() {
	buf := make([]byte, 64*1024)
	for {
		if len(w.moves) > 0 {
			_ = w.file.SetReadDeadline(time.Now().Add(pairWait))
		} else {
			_ = w.file.SetReadDeadline(time.Time{})
		}
		n, err := w.file.Read(buf)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.flushMoves()
			continue
		case errors.Is(err, os.ErrClosed):
			w.end(context.Canceled)
			return
		case err != nil:
			w.end(fmt.Errorf("watch %s: reading inotify: %v: %w", w.top, errnoOf(err), errdefs.ErrInternal))
			return
		}
		if w.handle(buf[:n]) {
			w.flushMoves()
			w.end(io.EOF)
			return
		}
	}
}

// handle processes one read's events; it reports whether the watched
// directory is gone.
func (w *Watcher) handle(b []byte) bool {
	now := time.Now().UnixMilli()
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			return false
		}
		name := string(bytes.TrimRight(b[unix.SizeofInotifyEvent:end], "\x00"))
		b = b[end:]
		if w.event(int(ev.Wd), ev.Mask, ev.Cookie, name, now) {
			return true
		}
	}
	return false
}

// event handles one inotify event; it reports whether the watched
// directory is gone.
func (w *Watcher) event(wd int, mask, cookie uint32, name string, now int64) bool {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		w.push(agentproto.Change{Type: agentproto.ChangeOverflow})
		return false
	}
	dir, ok := w.dirs[wd]
	if !ok {
		return false
	}
	isDirEv := mask&unix.IN_ISDIR != 0
	if mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0 {
		if dir == w.top && w.wds[w.top] == wd {
			// The watched directory itself was deleted or moved away.
			w.push(agentproto.Change{Type: agentproto.ChangeDeleted, Path: w.top, IsDir: true, TS: now})
			return true
		}
		// Below it, the parent's events report the change.
		if mask&unix.IN_IGNORED != 0 {
			delete(w.dirs, wd)
			if w.wds[dir] == wd {
				delete(w.wds, dir)
			}
		}
		return false
	}
	p := path.Join(dir, name)
	temp, isTemp := tempKind(name)
	switch {
	case mask&unix.IN_MOVED_FROM != 0:
		w.moves[cookie] = pendingMove{path: p, isDir: isDirEv, temp: temp}
	case mask&unix.IN_MOVED_TO != 0:
		from, paired := w.moves[cookie]
		delete(w.moves, cookie)
		switch {
		case isTemp:
			// A temporary file moved to another temporary name: nothing.
		case paired && from.temp != "":
			w.push(agentproto.Change{Type: from.temp, Path: p, TS: now})
		case paired:
			w.renamed(from.path, p, isDirEv)
			w.push(agentproto.Change{Type: agentproto.ChangeRenamed, Path: p, OldPath: from.path, IsDir: isDirEv, TS: now})
		default:
			w.push(agentproto.Change{Type: agentproto.ChangeCreated, Path: p, IsDir: isDirEv, TS: now})
			w.addNew(p, isDirEv)
		}
	case isTemp:
		// The inside of an atomic write: its rename is the change.
	case mask&unix.IN_CREATE != 0:
		w.push(agentproto.Change{Type: agentproto.ChangeCreated, Path: p, IsDir: isDirEv, TS: now})
		w.addNew(p, isDirEv)
	case mask&unix.IN_DELETE != 0:
		w.push(agentproto.Change{Type: agentproto.ChangeDeleted, Path: p, IsDir: isDirEv, TS: now})
	case mask&(unix.IN_MODIFY|unix.IN_ATTRIB) != 0:
		w.push(agentproto.Change{Type: agentproto.ChangeModified, Path: p, IsDir: isDirEv, TS: now})
	}
	return false
}

// addNew watches a directory that appeared in a recursive watch, and
// reports what was put in it before the watch was in place.
func (w *Watcher) addNew(p string, isDir bool) {
	if !isDir || !w.opts.Recursive {
		return
	}
	_, rel, err := cleanPath("watch", p)
	if err != nil {
		return
	}
	fd, err := w.r.openat(rel, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return // gone already; its deletion follows
	}
	err = w.add(p, fd)
	unix.Close(fd)
	if err == nil {
		err = w.scan(context.Background(), p, true)
	}
	if err != nil {
		w.push(agentproto.Change{Type: agentproto.ChangeOverflow})
	}
}

// renamed moves the watches at and below from to to.
func (w *Watcher) renamed(from, to string, isDir bool) {
	if !isDir {
		return
	}
	for wd, p := range w.dirs {
		rest, ok := strings.CutPrefix(p, from)
		if !ok || rest != "" && rest[0] != '/' {
			continue
		}
		delete(w.wds, p)
		w.dirs[wd] = to + rest
		w.wds[to+rest] = wd
	}
}

// flushMoves reports the moves whose second half did not come: moves out
// of the watched tree, which stop the watches below them.
func (w *Watcher) flushMoves() {
	for cookie, m := range w.moves {
		delete(w.moves, cookie)
		if m.temp != "" {
			continue
		}
		w.push(agentproto.Change{Type: agentproto.ChangeDeleted, Path: m.path, IsDir: m.isDir, TS: time.Now().UnixMilli()})
		if !m.isDir {
			continue
		}
		for wd, p := range w.dirs {
			if p == m.path || strings.HasPrefix(p, m.path+"/") {
				_, _ = unix.InotifyRmWatch(w.ifd, uint32(wd))
				delete(w.dirs, wd)
				delete(w.wds, p)
			}
		}
	}
}
