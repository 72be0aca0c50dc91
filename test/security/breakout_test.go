// Package security is the break-out suite: probes that run inside real
// sandboxes of a real sdbx server (started here on 127.0.0.1) and try to
// reach the host, the server or other sandboxes. Each probe asserts
// containment. It needs root (CI runs it as root).
package security

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
	"github.com/sdbx/sdbx/test/e2e"
)

type suite struct {
	srv     *e2e.Server
	c       *sdbx.Client
	dataDir string
}

func start(t *testing.T) *suite {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the break-out suite needs root (sandboxes use namespaces, cgroups and mounts)")
	}
	ctx := t.Context()
	root, err := e2e.ModuleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, err := e2e.BuildBinary(ctx, root, dir)
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{dataDir: filepath.Join(dir, "data")}
	s.srv, err = e2e.StartServer(ctx, e2e.ServerOptions{
		Bin: bin, DataDir: s.dataDir, APIKey: e2e.RandomKey(),
		Args: []string{"--pool", "none", "--pids", "64", "--memory-mb", "128", "--disk-mb", "256"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.srv.Stop(30 * time.Second); err != nil {
			t.Errorf("stop server: %v", err)
		}
	})
	s.c, err = sdbx.New(sdbx.Config{ServerURL: s.srv.URL, APIKey: s.srv.APIKey, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sandbox creates a sandbox with egress n (zero: the server's default,
// internet) that is deleted when the test ends.
func (s *suite) sandbox(t *testing.T, n sdbx.Network) string {
	t.Helper()
	sb, err := s.c.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: "python-3-11", Network: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.c.DeleteSandbox(context.WithoutCancel(t.Context()), sb.ID) })
	return sb.ID
}

// sh runs a shell command in the sandbox and returns its exit code and
// output (stdout and stderr joined).
func (s *suite) sh(t *testing.T, id, cmd string) (int, string) {
	t.Helper()
	res, err := s.c.RunCommand(t.Context(), id, sdbx.Command{Command: cmd, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	return res.ExitCode, strings.Join(append(res.Stdout, res.Stderr...), "\n")
}

func TestBreakout(t *testing.T) {
	s := start(t)
	// Egress none: the probes below expect loopback only
	// (network_test.go probes the other policies).
	id := s.sandbox(t, sdbx.Network{Egress: sdbx.EgressNone})
	other := s.sandbox(t, sdbx.Network{})

	// Canaries on the host, in places a sandbox must never see.
	canary := "sdbx-canary-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var canaries []string
	for _, dir := range []string{"/root", "/home", "/tmp", "/srv", s.dataDir} {
		p := filepath.Join(dir, canary)
		if err := os.WriteFile(p, []byte("secret"), 0o644); err != nil {
			t.Fatal(err)
		}
		canaries = append(canaries, p)
		t.Cleanup(func() { os.Remove(p) })
	}
	// A host process a sandbox must neither see nor kill.
	sleeper := exec.Command("sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	hostPID := sleeper.Process.Pid
	u, _ := url.Parse(s.srv.URL)
	serverPort := u.Port()
	// Marks in the other sandbox.
	if code, out := s.sh(t, other, "echo other-secret > /workspace/other-mark; (exec -a sdbx-other-mark sleep 300 &) ; true"); code != 0 {
		t.Fatalf("setting up the other sandbox: %s", out)
	}

	// Each probe is a command that exits 0 only when containment holds.
	probes := []struct{ name, cmd string }{
		{"host canary files are not visible", fmt.Sprintf("for f in %s; do test ! -e \"$f\" || { echo \"visible: $f\"; exit 1; }; done; ! grep -rqs %s /root /home /tmp /srv /var 2>/dev/null", strings.Join(canaries, " "), canary)},
		{"host /etc/shadow is absent", "test ! -e /etc/shadow && test ! -e /etc/gshadow"},
		{"the server's data directory is absent", fmt.Sprintf("test ! -e %s", s.dataDir)},
		{"host processes are not visible", fmt.Sprintf("test ! -e /proc/%d || ! grep -q 'sleep' /proc/%d/cmdline 2>/dev/null; ! ps -eo args | grep -q '^sleep 300$'", hostPID, hostPID)},
		{"a host process can't be signalled", fmt.Sprintf("! kill -0 %d 2>/dev/null || ! grep -q sleep /proc/%d/cmdline", hostPID, hostPID)},
		{"PID 1 is the sdbx agent, few processes", "grep -q agent /proc/1/cmdline && test $(ls -d /proc/[0-9]* | wc -l) -lt 20"},
		{"the server's port is unreachable", fmt.Sprintf("! timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/%s' 2>/dev/null", serverPort)},
		{"only the loopback interface, no routes", "test \"$(ls /sys/class/net 2>/dev/null || cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ')\" = lo && test $(tail -n +2 /proc/net/route | wc -l) -eq 0"},
		{"the server's environment is not inherited", "! env | grep -q '^SDBX_' && ! tr '\\0' '\\n' < /proc/1/environ | grep -q '^SDBX_'"},
		{"another sandbox's files are not visible", "! grep -rqs other-secret / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev --exclude-dir=usr 2>/dev/null"},
		{"another sandbox's processes are not visible", "! ps -eo args | grep -q '^sdbx-other-mark'"},
		{"mount is refused", "! mount -t tmpfs none /mnt 2>/dev/null"},
		{"new namespaces are refused", "! unshare -U true 2>/dev/null && ! unshare -m true 2>/dev/null && ! unshare -n true 2>/dev/null"},
		{"chroot and setns are refused", "! chroot / true 2>/dev/null && ! nsenter -t 1 -m true 2>/dev/null"},
		{"no cgroupfs and no /sys", "test ! -e /sys/fs/cgroup && ! awk '$3 ~ /^(cgroup|sysfs)/ {found=1} END {exit !found}' /proc/self/mounts"},
		{"no block devices, mknod refused", "! ls /dev/sd* /dev/vd* /dev/nvme* /dev/mem /dev/kmsg 2>/dev/null && ! mknod /tmp/m c 1 1 2>/dev/null"},
		{"sysctls are read-only", "! sh -c 'echo 1 > /proc/sys/kernel/sysrq' 2>/dev/null && ! sh -c 'echo x > /proc/sys/kernel/hostname' 2>/dev/null"},
		{"kernel modules can't be loaded", "! python3 -c 'import ctypes,sys; l=ctypes.CDLL(None,use_errno=True); sys.exit(0 if l.syscall(175, 0, 0, 0)==0 else 1)'"},
		{"sensitive /proc paths are masked", "test ! -s /proc/kcore && ! sh -c 'echo b > /proc/sysrq-trigger' 2>/dev/null"},
		{"no capabilities, no_new_privs, seccomp filter", "grep -q '^CapEff:\t0000000000000000' /proc/self/status && grep -q '^CapBnd:\t0000000000000000' /proc/self/status && grep -q '^NoNewPrivs:\t1' /proc/self/status && grep -q '^Seccomp:\t2' /proc/self/status"},
		{"writes to /usr stay in the sandbox", "touch /usr/sdbx-probe && test -e /usr/sdbx-probe"},
		{"hostname is the sandbox id, not the host's", fmt.Sprintf("test \"$(hostname)\" = %s", id)},
		{"the clock can't be set", "! date -s '2000-01-01' >/dev/null 2>&1"},
		{"the agent (PID 1) can't be ptraced or read", "! python3 -c 'import ctypes,sys; l=ctypes.CDLL(None); sys.exit(0 if l.ptrace(16, 1, 0, 0)==0 else 1)' && ! cat /proc/1/environ >/dev/null 2>&1 && ! readlink /proc/1/fd/0 >/dev/null 2>&1 && ! cat /proc/1/mem >/dev/null 2>&1"},
		{"the agent ignores signals from inside", "kill -TERM 1; kill -INT 1; kill -HUP 1; sleep 0.2; grep -q agent /proc/1/cmdline"},
	}
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			if code, out := s.sh(t, id, p.cmd); code != 0 {
				t.Errorf("containment broken: %q exited %d: %s", p.cmd, code, out)
			}
		})
	}
	if _, err := os.Stat("/usr/sdbx-probe"); err == nil {
		os.Remove("/usr/sdbx-probe")
		t.Error("a sandbox's write to /usr reached the host")
	}
	if err := sleeper.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the host process died: %v", err)
	}
}

// TestResourceBombs runs a fork bomb, a memory bomb, a busy loop and a
// disk fill in one sandbox and checks that its agent still answers, the
// server still serves, and another sandbox is unaffected.
func TestResourceBombs(t *testing.T) {
	s := start(t)
	victim := s.sandbox(t, sdbx.Network{})
	bystander := s.sandbox(t, sdbx.Network{})
	for _, bomb := range []struct{ name, cmd string }{
		{"fork bomb", "bash -c ':(){ :|:& };:' 2>/dev/null"},
		{"memory bomb", "python3 -c 'x = []\nwhile True: x.append(bytearray(16 << 20))' 2>/dev/null; true"},
		{"busy loop", "timeout 3 python3 -c 'while True: pass'; true"},
		// Leaves its file: the sandbox's disk stays full (--disk-mb 256).
		{"disk fill", "cat /dev/zero > /workspace/fill 2>/dev/null; true"},
	} {
		t.Run(bomb.name, func(t *testing.T) {
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.c.RunCommand(context.WithoutCancel(t.Context()), victim, sdbx.Command{Command: bomb.cmd, Timeout: 5 * time.Second})
			}()
			// While the bomb runs, the server and the other sandbox answer.
			if code, out := s.sh(t, bystander, "echo fine"); code != 0 || out != "fine" {
				t.Errorf("bystander during %s: %d %q", bomb.name, code, out)
			}
			if _, err := s.c.ListSandboxes(t.Context()); err != nil {
				t.Errorf("server during %s: %v", bomb.name, err)
			}
			<-done
			// Afterwards the victim still answers: what the bomb left in its
			// process group was killed when the command ended.
			code, out := s.sh(t, victim, "echo alive")
			if !strings.Contains(out, "alive") {
				t.Errorf("victim after %s: %d %q", bomb.name, code, out)
			}
		})
	}
	// The fill stopped at the quota, and the bystander still writes.
	if code, out := s.sh(t, victim, "dd if=/dev/zero of=/workspace/more bs=1M count=1"); code == 0 || !strings.Contains(out, "Disk quota exceeded") {
		t.Errorf("a write to the filled sandbox: %d %q", code, out)
	}
	if code, out := s.sh(t, bystander, "dd if=/dev/zero of=/workspace/f bs=1M count=64 && rm /workspace/f"); code != 0 {
		t.Errorf("bystander write after the disk fill: %d %q", code, out)
	}
}
