package agent

import (
	"context"
	"errors"
	"github.com/sdbx/sdbx/internal/agent/kernel"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// reaper reaps every child of the process (ReapAll): the agent's own
// commands and the orphans reparented to it as the init of a PID
// namespace. Statuses of commands it started go to their handlers; the
// others are dropped.
//
// start holds mu across fork and registration, and the reap loop takes mu
// before looking a pid up, so a command that exits at once is never taken
// for an orphan: its status waits on mu until its channel is registered.
type reaper struct {
	log  *slog.Logger
	sigs chan os.Signal

	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
}

var _ kernel.Spawner = (*reaper)(nil)

// newReaper subscribes to SIGCHLD; call run to reap.
func newReaper(log *slog.Logger) *reaper {
	r := &reaper{
		log:     log,
		sigs:    make(chan os.Signal, 1),
		waiting: make(map[int]chan syscall.WaitStatus),
	}
	signal.Notify(r.sigs, syscall.SIGCHLD)
	return r
}

// Start implements kernel.Spawner.
func (r *reaper) Start(path string, argv []string, attr *syscall.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiting[pid] = ch
	return pid, ch, nil
}

// run reaps children whenever SIGCHLD arrives, until ctx is done.
// Signals coalesce, so each round reaps until no zombie is left.
func (r *reaper) run(ctx context.Context) {
	defer signal.Stop(r.sigs)
	for {
		r.reapAll()
		select {
		case <-ctx.Done():
			return
		case <-r.sigs:
		}
	}
}

// reapAll collects every exited child without blocking.
func (r *reaper) reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG|syscall.WALL, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			// ECHILD: no children; 0: none has exited yet.
			return
		}
		r.mu.Lock()
		ch, ok := r.waiting[pid]
		delete(r.waiting, pid)
		r.mu.Unlock()
		if ok {
			ch <- ws
			continue
		}
		r.log.Debug("reaped orphan", "pid", pid, "code", exitCode(ws))
	}
}

// isTemporaryAccept reports whether an Accept error may go away by itself.
func isTemporaryAccept(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}
