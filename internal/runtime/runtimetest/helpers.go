// Package runtimetest is the conformance suite that every runtime.Driver
// passes (Run), and helpers for tests that start real sandboxes: the sdbx
// binary built once per test process, a minimal /etc, a spec over the
// host's /usr, and a one-call exec.
package runtimetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/runtime"
)

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// binary caches the build of BuildBinary for the test process; a test
// binary builds sdbx at most once however many tests ask.
var binary struct {
	once sync.Once
	path string
	err  error
}

// binDirPrefix names the per-process directories BuildBinary builds into,
// suffixed with the pid so stale ones of finished processes can be swept.
const binDirPrefix = "sdbx-testbin-"

// BuildBinary builds github.com/sdbx/sdbx/cmd/sdbx (static, CGO_ENABLED=0,
// so it runs inside any sandbox root) once per test process and returns
// its path. Directories left by earlier test processes that have exited
// are removed.
func BuildBinary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() { binary.path, binary.err = build() })
	if binary.err != nil {
		t.Fatalf("build sdbx: %v", binary.err)
	}
	return binary.path
}

func build() (string, error) {
	tmp := os.TempDir()
	if ents, err := os.ReadDir(tmp); err == nil {
		for _, e := range ents {
			pid, err := strconv.Atoi(strings.TrimPrefix(e.Name(), binDirPrefix))
			if !strings.HasPrefix(e.Name(), binDirPrefix) || err != nil || pid == os.Getpid() {
				continue
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, fs.ErrNotExist) {
				_ = os.RemoveAll(filepath.Join(tmp, e.Name()))
			}
		}
	}
	dir := filepath.Join(tmp, binDirPrefix+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(goruntime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(dir, "sdbx")
	cmd := exec.Command(goBin, "build", "-o", out, "github.com/sdbx/sdbx/cmd/sdbx")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, stderr.String())
	}
	return out, nil
}

// NewID returns a fresh sandbox id that starts with prefix (keep it short:
// ids are at most 63 bytes).
func NewID(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + "-" + hex.EncodeToString(b)
}

// CgroupDirs lists the cgroups named name at the top of each hierarchy
// mounted under /sys/fs/cgroup (v1: /sys/fs/cgroup/*/name) or of the
// unified one (v2: /sys/fs/cgroup/name), such as a driver's parent
// cgroups, so that a test can check that none is left.
func CgroupDirs(name string) []string {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", name))
	if st, err := os.Stat(filepath.Join("/sys/fs/cgroup", name)); err == nil && st.IsDir() {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", name))
	}
	return dirs
}

// MinimalEtc writes a small /etc (users, groups, hosts, resolver and
// loader configuration, the host's CA certificates) into a new temporary
// directory and returns it, for use as an overlay lower dir. It holds no
// secrets of the host.
func MinimalEtc(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"passwd":        "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"group":         "root:x:0:\nnogroup:x:65534:\n",
		"hosts":         "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"resolv.conf":   "nameserver 127.0.0.1\n",
		"nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"ld.so.cache", "os-release"} {
		b, err := os.ReadFile(filepath.Join("/etc", name))
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat("/etc/ssl/certs"); err == nil {
		if err := os.MkdirAll(filepath.Join(dir, "ssl"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := exec.Command("cp", "-a", "/etc/ssl/certs", filepath.Join(dir, "ssl", "certs")).Run(); err != nil {
			t.Fatalf("copy CA certificates: %v", err)
		}
	}
	return dir
}

// HostSpec returns a spec whose root file system is the host's /usr and
// the given etc directory (from MinimalEtc), both as overlay lower dirs,
// like the host-based templates.
func HostSpec(id, etc string) runtime.Spec {
	return runtime.Spec{
		ID: id,
		Overlays: []runtime.Overlay{
			{Target: "/usr", Lower: []string{"/usr"}},
			{Target: "/etc", Lower: []string{etc}},
		},
	}
}

// Client returns an agent client for sandbox id of d.
func Client(d runtime.Driver, id string) *agentclient.Client {
	return agentclient.New(func(ctx context.Context) (net.Conn, error) { return d.Dial(ctx, id) })
}

// Result is the outcome of Exec.
type Result struct {
	Stdout, Stderr string // lines joined with "\n", each line ended by one
	Code           int
	TimedOut       bool
}

// Exec runs args in sandbox id and collects its output. env may be nil.
func Exec(ctx context.Context, d runtime.Driver, id string, env map[string]string, args ...string) (Result, error) {
	var res Result
	var out, errb strings.Builder
	req := agentproto.ExecRequest{Args: args, Env: env}
	if req.Env == nil {
		req.Env = map[string]string{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
	}
	ev, err := Client(d, id).Exec(ctx, req, func(ev agentproto.Event) {
		switch ev.Type {
		case agentproto.EventStdout:
			out.WriteString(ev.Data + "\n")
		case agentproto.EventStderr:
			errb.WriteString(ev.Data + "\n")
		}
	})
	if err != nil {
		return res, err
	}
	res.Stdout, res.Stderr, res.Code, res.TimedOut = out.String(), errb.String(), ev.ExitCode, ev.TimedOut
	return res, nil
}

// MustExec is Exec that fails the test on an error or a non-zero exit
// code, and returns the standard output.
func MustExec(t testing.TB, d runtime.Driver, id string, args ...string) string {
	t.Helper()
	res, err := Exec(t.Context(), d, id, nil, args...)
	if err != nil {
		t.Fatalf("exec %q in %s: %v", args, id, err)
	}
	if res.Code != 0 {
		t.Fatalf("exec %q in %s: exit code %d\nstdout: %s\nstderr: %s", args, id, res.Code, res.Stdout, res.Stderr)
	}
	return res.Stdout
}

// NetProbe is a Python program for network tests inside a sandbox. Its
// verbs print one line each:
//
//	resolve NAME          the IPv4 address, or "ERR <reason>"
//	connect HOST PORT     "OK" when a TCP connection is made within 3 s, or "ERR <reason>"
//	get URL               the HTTP status of a GET, or "ERR <reason>"
const NetProbe = `
import socket, sys, urllib.request
def run(args):
    verb = args[0]
    try:
        if verb == "resolve":
            return socket.getaddrinfo(args[1], 443, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        if verb == "connect":
            s = socket.create_connection((args[1], int(args[2])), timeout=3)
            s.close()
            return "OK"
        if verb == "get":
            with urllib.request.urlopen(args[1], timeout=20) as r:
                return str(r.status)
    except Exception as e:
        return "ERR " + type(e).__name__ + " " + str(e).replace("\n", " ")
    return "ERR unknown verb"
print(run(sys.argv[1:]))
`

// WantDropped fails unless a NetProbe connect timed out: a dropped SYN
// times out, one that reached a host without a listener is refused.
func WantDropped(t testing.TB, what, got string) {
	t.Helper()
	if !strings.Contains(got, "timed out") {
		t.Errorf("connect to %s = %q; want a time-out (dropped)", what, got)
	}
}
