package linux

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/runtime/runtimetest"
)

// The probes below try to break out of a sandbox and assert that they
// fail. They run python3 and shell tools from the host's /usr, which the
// sandbox sees through its /usr overlay.

// python runs a python3 program in the sandbox and returns its stdout.
func python(t *testing.T, d runtime.Driver, id, prog string) string {
	t.Helper()
	return runtimetest.MustExec(t, d, id, "python3", "-c", prog)
}

// sh runs a shell command in the sandbox and returns its exit code and
// combined output.
func sh(t *testing.T, d runtime.Driver, id, cmd string) (int, string) {
	t.Helper()
	res, err := runtimetest.Exec(t.Context(), d, id, nil, "sh", "-c", cmd)
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	return res.Code, res.Stdout + res.Stderr
}

func TestIsolationHostFiles(t *testing.T) {
	e := newTestEnv(t)
	canary := runtimetest.NewID(t, "canary")
	secret := runtimetest.NewID(t, "secret")
	var paths []string
	for _, dir := range []string{"/root", "/home", "/tmp", "/srv", e.data} {
		if _, err := os.Stat(dir); err != nil {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(dir) })
		}
		p := filepath.Join(dir, canary)
		if err := os.WriteFile(p, []byte(secret), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(p) })
		paths = append(paths, p)
	}
	id := e.create(t, "files", nil)

	for _, p := range paths {
		if code, out := sh(t, e.d, id, "cat "+p); code == 0 || strings.Contains(out, secret) {
			t.Errorf("host file %s readable in the sandbox: exit %d, %q", p, code, out)
		}
	}
	// Nowhere in the sandbox's tree (proc aside, and /usr, the host's own)
	// is there a file by that name.
	if _, out := sh(t, e.d, id, "find / -path /proc -prune -o -path /usr -prune -o -name "+canary+" -print 2>/dev/null"); out != "" {
		t.Errorf("canary found in the sandbox: %q", out)
	}
	// No host secrets or host trees.
	for _, p := range []string{"/etc/shadow", "/etc/gshadow", "/sys", "/sys/fs/cgroup", "/home", "/srv", "/boot", "/mnt"} {
		if code, _ := sh(t, e.d, id, "test -e "+p); code == 0 {
			t.Errorf("%s exists in the sandbox", p)
		}
	}
	if out := runtimetest.MustExec(t, e.d, id, "cat", "/etc/passwd"); !strings.HasPrefix(out, "root:x:0:0:") || strings.Count(out, "\n") != 2 {
		t.Errorf("/etc/passwd is not the template's: %q", out)
	}
	// The state dir's path shows in mountinfo (overlay options), but
	// nothing under it is reachable.
	if code, _ := sh(t, e.d, id, "ls "+e.d.cfg.StateDir); code == 0 {
		t.Errorf("state dir %s listable in the sandbox", e.d.cfg.StateDir)
	}
	// The agent's socket lives on the host side only.
	if code, _ := sh(t, e.d, id, "find / -path /proc -prune -o -name agent.sock -print | grep -q ."); code == 0 {
		t.Errorf("agent.sock visible in the sandbox")
	}
}

func TestIsolationProcesses(t *testing.T) {
	e := newTestEnv(t)
	host := exec.Command("sleep", "31337")
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Process.Kill(); _ = host.Wait() })
	id := e.create(t, "procs", nil)

	out := python(t, e.d, id, fmt.Sprintf(`
import json, os, signal
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
tids = sorted(int(t) for p in pids for t in os.listdir("/proc/%%d/task" %% p))
cmds = {}
for p in pids:
    try:
        cmds[p] = open("/proc/%%d/cmdline" %% p, "rb").read().replace(b"\0", b" ").decode().strip()
    except OSError:
        pass
alive = []
for p in range(1, min(1 << 16, int(open("/proc/sys/kernel/pid_max").read()))):
    try:
        os.kill(p, 0)
        alive.append(p)
    except ProcessLookupError:
        pass
try:
    os.kill(%d, signal.SIGKILL)
    killed = "killed"
except OSError as e:
    killed = e.strerror
print(json.dumps({"cmds": cmds, "tids": tids, "alive": alive, "kill": killed}))
`, host.Process.Pid))
	var got struct {
		Cmds  map[string]string
		Tids  []int
		Alive []int
		Kill  string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("probe output %q: %v", out, err)
	}
	if !strings.HasPrefix(got.Cmds["1"], agentPath+" agent --listen-fd 3") {
		t.Errorf("PID 1 is %q, want the agent", got.Cmds["1"])
	}
	for pid, cmd := range got.Cmds {
		if pid != "1" && !strings.Contains(cmd, "python3") {
			t.Errorf("unexpected process %s %q visible in the sandbox", pid, cmd)
		}
		if strings.Contains(cmd, "31337") || strings.Contains(cmd, ".test") {
			t.Errorf("host process %s %q visible in the sandbox", pid, cmd)
		}
	}
	// Signals reach exactly the threads that /proc lists, nothing else.
	if !slices.Equal(got.Alive, got.Tids) {
		t.Errorf("kill(pid, 0) reaches %v, /proc lists threads %v", got.Alive, got.Tids)
	}
	if got.Kill == "killed" {
		t.Errorf("kill of host pid %d succeeded", host.Process.Pid)
	}
	if err := host.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("host sleep died: %v", err)
	}
}

func TestIsolationNetwork(t *testing.T) {
	e := newTestEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	id := e.create(t, "net", nil)

	out := python(t, e.d, id, fmt.Sprintf(`
import socket
s = socket.socket()
s.settimeout(2)
try:
    s.connect(("127.0.0.1", %d))
    print("connected")
except OSError as e:
    print(type(e).__name__)
print(sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]))
`, port))
	if !strings.HasPrefix(out, "ConnectionRefusedError\n") {
		t.Errorf("connect to the host's 127.0.0.1:%d from the sandbox: %q, want refused", port, out)
	}
	if !strings.Contains(out, "['lo']") {
		t.Errorf("interfaces in the sandbox: %q, want only lo", out)
	}
	select {
	case <-accepted:
		t.Errorf("the host listener accepted a connection from the sandbox")
	default:
	}
	// The sandbox's own loopback works.
	python(t, e.d, id, `
import socket
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
c = socket.create_connection(l.getsockname()); a, _ = l.accept(); c.send(b"x"); assert a.recv(1) == b"x"
`)
}

// syscallProbe calls denied system calls through libc's syscall(3) and
// prints {name: [return value, errno]}. The arguments are chosen so that,
// without the seccomp filter, the kernel would answer differently (success,
// EBADF, EFAULT or EINVAL) than the filter's EPERM.
const syscallProbe = `
import ctypes, json, mmap, os, platform
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return [r, ctypes.get_errno()]
NEWUSER, NEWNS, NEWNET = 0x10000000, 0x00020000, 0x40000000
calls = {
    "mount": (165, 0, 0, 0, 0, 0), "umount2": (166, 0, 0), "pivot_root": (155, 0, 0),
    "chroot": (161, 0), "unshare_user": (272, NEWUSER), "unshare_ns": (272, NEWNS),
    "setns": (308, -1, 0), "keyctl": (250, 0, -3, 0), "add_key": (248, 0, 0, 0, 0, 0),
    "request_key": (249, 0, 0, 0, 0), "bpf": (321, 0, 0, 0),
    "perf_event_open": (298, 0, 0, -1, -1, 0), "userfaultfd": (323, 0),
    "io_uring_setup": (425, 1, 0), "open_by_handle_at": (304, -1, 0, 0),
    "name_to_handle_at": (303, -1, 0, 0, 0, 0), "fsopen": (430, 0, 0),
    "fsmount": (432, -1, 0, 0), "fspick": (433, -1, 0, 0), "open_tree": (428, -1, 0, 0),
    "move_mount": (429, -1, 0, -1, 0, 0), "mount_setattr": (442, -1, 0, 0, 0, 0),
    "init_module": (175, 0, 0, 0), "finit_module": (313, -1, 0, 0), "delete_module": (176, 0, 0),
    "kexec_load": (246, 0, 0, 0, 0), "reboot": (169, 0, 0, 0, 0), "swapon": (167, 0, 0),
    "swapoff": (168, 0), "syslog": (103, 10, 0, 0), "acct": (163, 0),
    "settimeofday": (164, 0, 0), "clock_settime": (227, 0, 0), "adjtimex": (159, 0),
    "iopl": (172, 3), "ioperm": (173, 0, 1, 1), "clone3": (435, 0, 0),
}
res = {name: sc(*args) for name, args in calls.items()}
# clone with a namespace flag; should it succeed, the child leaves at once.
r = sc(56, NEWUSER | NEWNET | 17, 0, 0, 0, 0)
if r[0] == 0:
    os._exit(0)
if r[0] > 0:
    os.waitpid(r[0], 0)
res["clone_ns"] = r
# A plain fork still works.
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
if platform.machine() == "x86_64":
    # unshare(CLONE_NEWUSER) through the 32-bit ABI (int 0x80, nr 310):
    # push rbx; mov eax, 310; mov ebx, NEWUSER; int 0x80; pop rbx; ret
    code = b"\x53\xb8" + (310).to_bytes(4, "little") + b"\xbb" + NEWUSER.to_bytes(4, "little") + b"\xcd\x80\x5b\xc3"
    buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    fn = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
    res["int80_unshare_user"] = [fn(), 0]
print(json.dumps(res))
`

func TestIsolationSyscalls(t *testing.T) {
	if goruntime.GOARCH != "amd64" {
		t.Skip("the probe uses amd64 system call numbers")
	}
	e := newTestEnv(t)
	id := e.create(t, "sys", nil)
	out := python(t, e.d, id, syscallProbe)
	var got map[string][2]int64
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("probe output %q: %v", out, err)
	}
	eperm, enosys := int64(syscall.EPERM), int64(syscall.ENOSYS)
	for name, r := range got {
		want := [2]int64{-1, eperm}
		switch name {
		case "clone3":
			want = [2]int64{-1, enosys} // so libc falls back to clone
		case "int80_unshare_user":
			want = [2]int64{-enosys, 0} // every foreign-ABI call
		}
		if r != want {
			t.Errorf("%s = %v, want %v", name, r, want)
		}
	}
	if len(got) < 39 {
		t.Errorf("probe reported %d calls: %s", len(got), out)
	}
	// The same through the usual tools.
	for _, cmd := range []string{
		"mount -t tmpfs none /mnt", "unshare -U true", "unshare -m true", "unshare -n true",
		"nsenter -t 1 -m true", "chroot / true", "mknod /tmp/x c 1 3",
		"hostname evil", "chown 1000 /workspace",
	} {
		if code, out := sh(t, e.d, id, cmd); code == 0 {
			t.Errorf("%q succeeded in the sandbox: %q", cmd, out)
		}
	}
	if out := runtimetest.MustExec(t, e.d, id, "hostname"); strings.TrimSpace(out) != id {
		t.Errorf("hostname = %q, want %s", out, id)
	}
}

func TestIsolationPrivileges(t *testing.T) {
	e := newTestEnv(t)
	id := e.create(t, "priv", nil)
	for _, pid := range []string{"self", "1"} {
		out := runtimetest.MustExec(t, e.d, id, "cat", "/proc/"+pid+"/status")
		fields := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				fields[k] = strings.TrimSpace(v)
			}
		}
		want := map[string]string{
			"Uid": "0\t0\t0\t0", "CapInh": "0000000000000000", "CapPrm": "0000000000000000",
			"CapEff": "0000000000000000", "CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
			"NoNewPrivs": "1", "Seccomp": "2",
		}
		for k, v := range want {
			if fields[k] != v {
				t.Errorf("/proc/%s/status %s = %q, want %q", pid, k, fields[k], v)
			}
		}
	}
	// The sandbox's cgroup namespace is rooted at its own cgroup.
	for _, line := range strings.Split(strings.TrimSpace(runtimetest.MustExec(t, e.d, id, "cat", "/proc/self/cgroup")), "\n") {
		if !strings.HasSuffix(line, ":/") {
			t.Errorf("/proc/self/cgroup line %q reveals a host cgroup path", line)
		}
	}
	// Masked and read-only parts of /proc.
	if out := runtimetest.MustExec(t, e.d, id, "cat", "/proc/kallsyms", "/proc/keys", "/proc/timer_list"); out != "" {
		t.Errorf("masked /proc files are readable: %.200q", out)
	}
	if code, _ := sh(t, e.d, id, "echo 1 > /proc/sys/kernel/domainname"); code == 0 {
		t.Errorf("/proc/sys is writable")
	}
	// Writable where it should be; executables of the template run.
	runtimetest.MustExec(t, e.d, id, "sh", "-c", "echo x > /tmp/x && echo x > /var/tmp/x && echo x > /root/x && echo x > /dev/shm/x && echo x > /workspace/x")
	// The agent's binary cannot be replaced.
	if code, _ := sh(t, e.d, id, "echo x > "+agentPath); code == 0 {
		t.Errorf("%s is writable", agentPath)
	}
}

func TestIsolationEnvironment(t *testing.T) {
	secret := runtimetest.NewID(t, "secret")
	t.Setenv("SDBX_TEST_SERVER_SECRET", secret)
	e := newTestEnv(t)
	id := e.create(t, "env", nil)
	for _, cmd := range []string{"cat /proc/1/environ", "env", "cat /proc/self/environ"} {
		if _, out := sh(t, e.d, id, cmd); strings.Contains(out, secret) {
			t.Errorf("%q shows the server's environment: %q", cmd, out)
		}
	}
	// The agent is non-dumpable: code in the sandbox can't read its
	// environment at all.
	if code, out := sh(t, e.d, id, "cat /proc/1/environ"); code == 0 {
		t.Errorf("the agent's environment is readable from the sandbox: %q", out)
	}
}

// Writes to an overlay land in the sandbox's upper dir: not on the host,
// not in another sandbox, and they survive Stop and Start.
func TestIsolationOverlayWrites(t *testing.T) {
	e := newTestEnv(t)
	a := e.create(t, "ovla", nil)
	b := e.create(t, "ovlb", nil)
	name := runtimetest.NewID(t, "probe")
	hostPath := filepath.Join("/usr/local", name)
	runtimetest.MustExec(t, e.d, a, "sh", "-c", "echo written > "+hostPath)
	if _, err := os.Stat(hostPath); err == nil {
		os.Remove(hostPath)
		t.Fatalf("a write to %s in the sandbox reached the host", hostPath)
	}
	if code, _ := sh(t, e.d, b, "test -e "+hostPath); code == 0 {
		t.Errorf("sandbox %s sees %s written by %s", b, hostPath, a)
	}
	// Another sandbox's workspace and processes are out of reach.
	runtimetest.MustExec(t, e.d, a, "sh", "-c", "echo mine > /workspace/"+name+"; sleep 4242 > /dev/null 2>&1 &")
	if _, out := sh(t, e.d, b, "find / -path /proc -prune -o -name "+name+" -print 2>/dev/null"); out != "" {
		t.Errorf("sandbox %s finds %q", b, out)
	}
	if _, out := sh(t, e.d, b, "ps -eo args"); strings.Contains(out, "4242") {
		t.Errorf("sandbox %s sees the processes of %s: %q", b, a, out)
	}
	if err := e.d.Stop(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Start(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if out := runtimetest.MustExec(t, e.d, a, "cat", hostPath); out != "written\n" {
		t.Errorf("%s after Stop and Start = %q", hostPath, out)
	}
	if _, out := sh(t, e.d, a, "ps -eo args"); strings.Contains(out, "4242") {
		t.Errorf("a process survived Stop: %q", out)
	}
}

// With an overlay at "/", the whole tree persists; symlinks the sandbox
// leaves in it cannot redirect the driver's mounts or mkdirs to the host.
func TestRootOverlay(t *testing.T) {
	e := newTestEnv(t)
	rootLower := t.TempDir()
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := os.Symlink("usr/"+l, filepath.Join(rootLower, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/nonexistent", filepath.Join(rootLower, "dangling")); err != nil {
		t.Fatal(err)
	}
	id := e.create(t, "rootovl", func(s *runtime.Spec) {
		s.Overlays = []runtime.Overlay{
			{Target: "/", Lower: []string{rootLower}},
			{Target: "/usr", Lower: []string{"/usr"}},
			{Target: "/etc", Lower: []string{e.etc}},
		}
	})
	runtimetest.MustExec(t, e.d, id, "sh", "-c", "mkdir -p /opt/app && echo persisted > /opt/app/f")
	if err := e.d.Stop(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	// What a sandbox could leave in its root's upper dir: /run pointing
	// at a host path.
	escape := filepath.Join(t.TempDir(), "escape")
	upper := e.d.layout(id).upper(0)
	if err := os.RemoveAll(filepath.Join(upper, "run")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(escape, filepath.Join(upper, "run")); err != nil {
		t.Fatal(err)
	}
	err := e.d.Start(t.Context(), id)
	if _, serr := os.Stat(escape); serr == nil {
		t.Fatalf("Start created %s on the host through a symlink of the sandbox", escape)
	}
	if err == nil {
		if out := runtimetest.MustExec(t, e.d, id, "cat", "/opt/app/f"); out != "persisted\n" {
			t.Errorf("/opt/app/f after Stop and Start = %q", out)
		}
	}
	os.Remove(filepath.Join(upper, "run"))
	if err := e.d.Start(t.Context(), id); err != nil {
		t.Fatalf("Start after removing the symlink: %v", err)
	}
	if out := runtimetest.MustExec(t, e.d, id, "cat", "/opt/app/f"); out != "persisted\n" {
		t.Errorf("/opt/app/f after Stop and Start = %q", out)
	}
}

func TestLimitPIDs(t *testing.T) {
	e := newTestEnv(t)
	const limit = 32
	id := e.create(t, "pids", func(s *runtime.Spec) { s.Resources.PIDs = limit })
	out := python(t, e.d, id, `
import os, signal, time
kids, err = [], None
for _ in range(500):
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
for k in kids:
    os.kill(k, signal.SIGKILL)
for k in kids:
    os.waitpid(k, 0)
print(len(kids), err)
`)
	var n, errno int
	if _, err := fmt.Sscan(out, &n, &errno); err != nil {
		t.Fatalf("probe output %q: %v", out, err)
	}
	if n >= limit || errno != int(syscall.EAGAIN) {
		t.Fatalf("forked %d children, then errno %d; want fewer than %d and EAGAIN", n, errno, limit)
	}
	// A real fork bomb, stopped by the command timeout (the agent kills
	// the command's process group).
	bomb := agentproto.ExecRequest{Args: []string{"bash", "-c", "f(){ f | f & }; f; sleep 5"}, TimeoutMs: 1500}
	if _, err := runtimetest.Client(e.d, id).Exec(t.Context(), bomb, nil); err != nil {
		t.Logf("fork bomb with timeout: %v", err)
	}
	waitAnswers(t, e.d, id)
}

// waitAnswers waits until the sandbox runs a command again (the kernel may
// take a moment to reap what a bomb left), failing after 30 s.
func waitAnswers(t *testing.T, d runtime.Driver, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := runtimetest.Exec(t.Context(), d, id, nil, "echo", "alive")
		if err == nil && res.Code == 0 && res.Stdout == "alive\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox does not answer: %+v, %v", res, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestLimitMemory(t *testing.T) {
	e := newTestEnv(t)
	id := e.create(t, "mem", func(s *runtime.Spec) { s.Resources.MemoryMB = 64 })
	res, err := runtimetest.Exec(t.Context(), e.d, id, nil, "python3", "-c", "b = bytearray(512 << 20); print('survived')")
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	if res.Code != 128+int(syscall.SIGKILL) || strings.Contains(res.Stdout, "survived") {
		t.Fatalf("allocating 512 MiB under a 64 MiB limit: %+v, want killed by SIGKILL", res)
	}
	if n := oomKills(t, e.d, id); n < 1 {
		t.Fatalf("the cgroup counted %d OOM kills", n)
	}
	waitAnswers(t, e.d, id)
	if _, err := runtimetest.Client(e.d, id).Ping(t.Context()); err != nil {
		t.Fatalf("Ping after the OOM kill: %v", err)
	}
}

// oomKills reads the OOM-kill counter of the sandbox's memory cgroup.
func oomKills(t *testing.T, d *Driver, id string) int {
	t.Helper()
	var file string
	switch g := d.cg.(type) {
	case *cgroupV1:
		file = filepath.Join(g.dir("memory", id), "memory.oom_control")
	case *cgroupV2:
		file = filepath.Join(g.path(id), "memory.events")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatalf("no oom_kill in %s: %s", file, b)
	return 0
}

// Every thread of the agent sits in each of the sandbox's cgroups, seen
// from the host: init moves its own thread (v1) or the driver moves it.
func TestCgroupPlacement(t *testing.T) {
	e := newTestEnv(t)
	id := e.create(t, "cg", nil)
	// Once it answers, the agent has started its threads.
	if _, err := runtimetest.Client(e.d, id).Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	pid, err := readPid(e.d.layout(id).pidFile())
	if err != nil {
		t.Fatal(err)
	}
	var ctrls []string
	switch g := e.d.cg.(type) {
	case *cgroupV1:
		for c := range g.parents {
			ctrls = append(ctrls, c)
		}
	case *cgroupV2:
		ctrls = []string{""}
	}
	want := "/" + e.d.cfg.CgroupParent + "/" + id
	// An agent outside its cgroups survives Delete: kill it here.
	defer func() {
		if t.Failed() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) < 2 {
		t.Fatalf("the agent has %d threads; want its reserve too", len(tasks))
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/cgroup", pid, task.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, ctrl := range ctrls {
			found := false
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				f := strings.SplitN(line, ":", 3)
				if len(f) == 3 && slices.Contains(strings.Split(f[1], ","), ctrl) {
					found = true
					if f[2] != want {
						t.Errorf("thread %s of the agent: %s cgroup %s, want %s", task.Name(), ctrl, f[2], want)
					}
				}
			}
			if !found {
				t.Errorf("thread %s of the agent: no %q cgroup in %q", task.Name(), ctrl, b)
			}
		}
	}
}
