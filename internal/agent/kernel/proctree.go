package kernel

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// tagVar is the environment variable that marks every process started
// from a context: its value is the context's random tag. Processes keep
// it through fork, setsid and double-fork daemonizing, so the agent finds
// them after they left the driver's session and were reparented.
const tagVar = "SDBX_CONTEXT"

// proc is one line of /proc/PID/stat that matters here.
type proc struct {
	pid, ppid, pgrp, sid int
	state                byte
}

// readProcs lists the processes visible in procRoot (normally /proc).
func readProcs(procRoot string) []proc {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil
	}
	procs := make([]proc, 0, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		stat, err := os.ReadFile(procRoot + "/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		if p, ok := parseStat(pid, stat); ok {
			procs = append(procs, p)
		}
	}
	return procs
}

// parseStat parses "pid (comm) state ppid pgrp session ...". comm may
// contain spaces and parentheses, so fields start after the last ')'.
func parseStat(pid int, stat []byte) (proc, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return proc{}, false
	}
	f := bytes.Fields(stat[i+2:])
	if len(f) < 4 || len(f[0]) != 1 {
		return proc{}, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgrp, err2 := strconv.Atoi(string(f[2]))
	sid, err3 := strconv.Atoi(string(f[3]))
	if err1 != nil || err2 != nil || err3 != nil {
		return proc{}, false
	}
	return proc{pid: pid, ppid: ppid, pgrp: pgrp, sid: sid, state: f[0][0]}, true
}

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
	procs := readProcs(procRoot)
	self := os.Getpid()
	parent := make(map[int]int, len(procs))
	for _, p := range procs {
		parent[p.pid] = p.ppid
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
		if p.pid == self || p.pid == 1 || p.state == 'Z' || p.state == 'X' {
			continue
		}
		switch {
		case sid > 0 && (p.sid == sid || p.pgrp == sid):
		case driver > 0 && descends(p.pid):
		case tag != "" && hasTag(procRoot, p.pid, tag):
		default:
			continue
		}
		out = append(out, p.pid)
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
