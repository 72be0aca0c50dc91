package kernel

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/sdbx/sdbx/internal/agent/procfs"
)

// tagVar is the environment variable that marks every process started
// from a context: its value is the context's random tag. Processes keep
// it through fork, setsid and double-fork daemonizing, so the agent finds
// them after they left the driver's session and were reparented.
const tagVar = "SDBX_CONTEXT"

// hasTag reports whether the environment the process was started with
// holds tagVar=tag.
func hasTag(procRoot string, pid int, tag string) bool {
	env, err := os.ReadFile(procRoot + "/" + strconv.Itoa(pid) + "/environ")
	if err != nil || len(env) == 0 {
		return false
	}
	entry := []byte(tagVar + "=" + tag + "\x00")
	return bytes.HasPrefix(env, entry) || bytes.Contains(env, append([]byte{0}, entry...))
}

// contextProcs returns the live processes of a context: those in the
// session (and process group) the driver leads, sid; the descendants of
// the driver process (driver > 0 only while its pid cannot have been
// reused: it was not reaped yet); and those whose environment carries the
// context's tag. The agent itself and PID 1 are never returned. Zombies
// are left out: they are dead already.
//
// A session id stays allocated while any process is in the session, so
// matching it never hits an unrelated process.
func contextProcs(procRoot string, driver, sid int, tag string) []int {
	procs := procfs.Read(procRoot)
	self := os.Getpid()
	parent := make(map[int]int, len(procs))
	for _, p := range procs {
		parent[p.PID] = p.PPID
	}
	descends := func(pid int) bool {
		for i := 0; i < 64 && pid > 1; i++ {
			if pid == driver {
				return true
			}
			pid = parent[pid]
		}
		return false
	}
	var out []int
	for _, p := range procs {
		if p.PID == self || p.PID == 1 || !p.Live() {
			continue
		}
		switch {
		case sid > 0 && (p.Sid == sid || p.Pgrp == sid):
		case driver > 0 && descends(p.PID):
		case tag != "" && hasTag(procRoot, p.PID, tag):
		default:
			continue
		}
		out = append(out, p.PID)
	}
	return out
}

// procIsOurs reports whether procRoot shows the processes of our own PID
// namespace: its "self" is our pid.
func procIsOurs(procRoot string) bool {
	self, err := os.Readlink(procRoot + "/self")
	return err == nil && self == strconv.Itoa(os.Getpid())
}

// killContextProcs sends SIGKILL to the processes of a context (see
// contextProcs) until none is left, or gives up after a bounded number of
// rounds (a process that forks faster than it is killed; the sandbox's
// pids limit bounds that). It returns how many signals it sent.
func killContextProcs(procRoot string, driver, sid int, tag string) int {
	sent := 0
	if !procIsOurs(procRoot) {
		// The pids in procRoot are not ours (a /proc of another PID
		// namespace): fall back to the session and the driver.
		for _, pid := range []int{-sid, driver} {
			if pid != 0 && syscall.Kill(pid, syscall.SIGKILL) == nil {
				sent++
			}
		}
		return sent
	}
	for round := range 50 {
		pids := contextProcs(procRoot, driver, sid, tag)
		if len(pids) == 0 {
			return sent
		}
		for _, pid := range pids {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				sent++
			}
		}
		// Give the signalled processes a moment to become zombies.
		time.Sleep(time.Duration(min(round+1, 10)) * time.Millisecond)
	}
	return sent
}
