// Package procfs reads the process table of /proc: the fields of
// /proc/PID/stat that the agent needs to find and kill the processes of a
// code context or a terminal session.
package procfs

import (
	"bytes"
	"os"
	"strconv"
)

// Proc is one process as /proc/PID/stat shows it.
type Proc struct {
	PID, PPID, Pgrp, Sid int
	State                byte
}

// Live reports whether the process has not exited (is no zombie).
func (p Proc) Live() bool { return p.State != 'Z' && p.State != 'X' }

// Read lists the processes visible in root (normally /proc). Processes
// that exit while it reads are left out.
func Read(root string) []Proc {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	procs := make([]Proc, 0, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if p, ok := Stat(root, pid); ok {
			procs = append(procs, p)
		}
	}
	return procs
}

// Stat reads process pid from root (normally /proc); false when there is
// no such process (or its stat cannot be parsed).
func Stat(root string, pid int) (Proc, bool) {
	stat, err := os.ReadFile(root + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Proc{}, false
	}
	return ParseStat(pid, stat)
}

// ParseStat parses "pid (comm) state ppid pgrp session ...". comm may
// contain spaces and parentheses, so fields start after the last ')'.
func ParseStat(pid int, stat []byte) (Proc, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return Proc{}, false
	}
	f := bytes.Fields(stat[i+2:])
	if len(f) < 4 || len(f[0]) != 1 {
		return Proc{}, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgrp, err2 := strconv.Atoi(string(f[2]))
	sid, err3 := strconv.Atoi(string(f[3]))
	if err1 != nil || err2 != nil || err3 != nil {
		return Proc{}, false
	}
	return Proc{PID: pid, PPID: ppid, Pgrp: pgrp, Sid: sid, State: f[0][0]}, true
}
