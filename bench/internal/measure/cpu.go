package measure

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPU is the CPU time (user + system) spent during a measurement, by who
// spent it: this process (the load generator), the server process and
// the processes inside the sandboxes (agents and interpreters). Fields the
// host could not report are zero.
type CPU struct {
	Client, Server, Sandboxes time.Duration
	// Others is the rest of the host's busy CPU time: other processes,
	// kernel threads and interrupts (zero when /proc/stat is unreadable).
	Others time.Duration
}

// cpuSample is the counters behind CPU at one moment, with the host's
// busy time.
type cpuSample struct {
	CPU
	hostBusy time.Duration
}

// cpuSnapshot reads the counters behind CPU.
func cpuSnapshot(serverPid int, sandboxIDs []string) cpuSample {
	busy, _ := hostCPU()
	return cpuSample{CPU{Client: selfCPU(), Server: processCPU(serverPid), Sandboxes: sandboxCPU(sandboxIDs)}, busy}
}

// Sub returns the CPU spent between before and s; Others is the host's
// busy time not spent by the others.
func (s cpuSample) Sub(before cpuSample) CPU {
	d := CPU{Client: s.Client - before.Client, Server: s.Server - before.Server, Sandboxes: s.Sandboxes - before.Sandboxes}
	if s.hostBusy > 0 && before.hostBusy > 0 {
		d.Others = max(0, s.hostBusy-before.hostBusy-d.Client-d.Server-d.Sandboxes)
	}
	return d
}

// Per divides every field by n.
func (c CPU) Per(n int) CPU {
	if n == 0 {
		return CPU{}
	}
	d := time.Duration(n)
	return CPU{Client: c.Client / d, Server: c.Server / d, Sandboxes: c.Sandboxes / d, Others: c.Others / d}
}

// hostCPU returns the busy and the total CPU time of all the host's CPUs
// so far, from the first line of /proc/stat (idle and iowait are not
// busy).
func hostCPU() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0
		}
		if i >= 8 {
			break // guest times are already in user and nice
		}
		total += time.Duration(n) * clockTick
		if i != 3 && i != 4 {
			busy += time.Duration(n) * clockTick
		}
	}
	return busy, total
}

// Settle flushes the file systems' dirty data and waits until the host's
// CPUs were at least 90 % idle over 500 ms, so that a measurement does
// not share them with the previous one's leftovers (writeback, a deleted
// sandbox's cleanup), for at most maxWait. It returns how long it waited.
func Settle(ctx context.Context, maxWait time.Duration) time.Duration {
	start := time.Now()
	syscall.Sync()
	busy, total := hostCPU()
	for time.Since(start) < maxWait {
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-time.After(500 * time.Millisecond):
		}
		b, t := hostCPU()
		if t > total && float64(b-busy) <= 0.1*float64(t-total) {
			break
		}
		busy, total = b, t
	}
	return time.Since(start)
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTick is the unit of /proc/<pid>/stat times (USER_HZ, 100 on
// Linux).
const clockTick = 10 * time.Millisecond

// processCPU reads utime + stime of pid from /proc (0 when pid is 0 or
// gone).
func processCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(u+s) * clockTick
}

// sandboxCPU sums the CPU usage of the sandboxes' cgroups: cpuacct.usage
// (ns) on cgroup v1, usage_usec of cpu.stat on v2.
func sandboxCPU(ids []string) time.Duration {
	var total time.Duration
	for _, id := range ids {
		if m, _ := filepath.Glob("/sys/fs/cgroup/cpuacct/sdbx-*/" + id + "/cpuacct.usage"); len(m) > 0 {
			for _, f := range m {
				if b, err := os.ReadFile(f); err == nil {
					ns, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
					total += time.Duration(ns)
				}
			}
			continue
		}
		m, _ := filepath.Glob("/sys/fs/cgroup/sdbx-*/" + id + "/cpu.stat")
		for _, f := range m {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
					us, _ := strconv.ParseInt(v, 10, 64)
					total += time.Duration(us) * time.Microsecond
				}
			}
		}
	}
	return total
}

// ServerPid finds the pid of the `sdbx serve` listening on url's address
// by its command line (0 if none is found), for a server this process
// did not start.
func ServerPid(url string) int {
	addr := strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("serve\x00")) && bytes.Contains(b, []byte("\x00"+addr+"\x00")) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			return pid
		}
	}
	return 0
}
