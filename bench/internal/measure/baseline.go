package measure

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// oneShot is the program every baseline runs once per sandbox.
var oneShot = []string{"/usr/bin/python3", "-c", "print(1)"}

// timeRuns runs the command that mk returns n times (plus one untimed
// warm-up), checks that each printed "1", and summarizes the wall times.
func timeRuns(ctx context.Context, n int, mk func(i int) *exec.Cmd) (Summary, error) {
	var d []time.Duration
	for i := 0; i < n+1; i++ {
		cmd := mk(i)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		t0 := time.Now()
		out, err := cmd.Output()
		el := time.Since(t0)
		if err != nil {
			return Summary{}, fmt.Errorf("%s: %v: %s", cmd.Args[0], err, bytes.TrimSpace(stderr.Bytes()))
		}
		if strings.TrimSpace(string(out)) != "1" {
			return Summary{}, fmt.Errorf("%s printed %q, want 1", cmd.Args[0], out)
		}
		if err := ctx.Err(); err != nil {
			return Summary{}, err
		}
		if i > 0 {
			d = append(d, el)
		}
	}
	return Summarize(d), nil
}

// BubblewrapArgs is the bwrap command line of the bubblewrap baseline: a
// fresh sandbox with every namespace unshared, the host's /usr read-only,
// a new /proc and a minimal /dev, running python3 -c 'print(1)'.
func BubblewrapArgs() []string {
	return append([]string{"bwrap", "--ro-bind", "/usr", "/usr",
		"--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
		"--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
		"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
		"--unshare-all", "--die-with-parent", "--new-session"}, oneShot...)
}

// Bubblewrap times n one-shot bubblewrap sandboxes (BubblewrapArgs).
func Bubblewrap(ctx context.Context, n int) (Summary, error) {
	args := BubblewrapArgs()
	return timeRuns(ctx, n, func(int) *exec.Cmd { return exec.CommandContext(ctx, args[0], args[1:]...) })
}

// Runc times n × `runc run` of an OCI bundle built in a temporary
// directory from the host: config.json from `runc spec`, a rootfs with
// the host's /usr bind-mounted read-only, running python3 -c 'print(1)'.
// runc's state goes to the temporary directory too, which is removed.
func Runc(ctx context.Context, n int) (Summary, error) {
	dir, err := os.MkdirTemp("", "sdbx-bench-runc-")
	if err != nil {
		return Summary{}, err
	}
	defer os.RemoveAll(dir)
	if err := ociBundle(ctx, dir); err != nil {
		return Summary{}, err
	}
	state := filepath.Join(dir, "state")
	prefix := "sdbx-bench-" + strconv.Itoa(os.Getpid()) + "-"
	return timeRuns(ctx, n, func(i int) *exec.Cmd {
		return exec.CommandContext(ctx, "runc", "--root", state, "run", "--bundle", dir, prefix+strconv.Itoa(i))
	})
}

// ociBundle writes an OCI bundle into dir (see Runc).
func ociBundle(ctx context.Context, dir string) error {
	spec := exec.CommandContext(ctx, "runc", "spec", "--bundle", dir)
	if out, err := spec.CombinedOutput(); err != nil {
		return fmt.Errorf("runc spec: %v: %s", err, out)
	}
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"usr", "proc", "dev", "tmp", "sys"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	for _, l := range []string{"lib", "lib64", "bin", "sbin"} {
		if err := os.Symlink("usr/"+l, filepath.Join(rootfs, l)); err != nil {
			return err
		}
	}
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("runc spec wrote an unreadable config.json: %w", err)
	}
	proc, ok1 := cfg["process"].(map[string]any)
	root, ok2 := cfg["root"].(map[string]any)
	mounts, ok3 := cfg["mounts"].([]any)
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("runc spec wrote a config.json without process, root or mounts")
	}
	proc["terminal"], proc["args"] = false, oneShot
	root["path"], root["readonly"] = "rootfs", true
	cfg["mounts"] = append(mounts, map[string]any{
		"destination": "/usr", "type": "bind", "source": "/usr", "options": []string{"rbind", "ro"},
	})
	if b, err = json.MarshalIndent(cfg, "", "\t"); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// jupyterScript times execute round trips of `x += 1` on a local ipykernel
// through jupyter_client's blocking client and prints the p50 and p99 in
// microseconds.
const jupyterScript = `
import sys, time
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name="python3")
try:
    kc.execute_interactive("x = 0", timeout=30)
    n = int(sys.argv[1]); t = []
    for i in range(n + 100):
        t0 = time.perf_counter()
        kc.execute_interactive("x += 1", timeout=30)
        if i >= 100: t.append(time.perf_counter() - t0)
    t.sort(); print(int(t[(len(t)+1)//2 - 1] * 1e6), int(t[(99*len(t)+99)//100 - 1] * 1e6))
finally:
    kc.stop_channels(); km.shutdown_kernel(now=True)
`

// Jupyter times n warm `x += 1` round trips on a local Jupyter kernel
// (Debian python3-ipykernel and python3-jupyter-client) and returns the
// p50 and p99.
func Jupyter(ctx context.Context, n int) (p50, p99 time.Duration, err error) {
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", "-c", jupyterScript, strconv.Itoa(n)).Output()
	if err != nil {
		return 0, 0, fmt.Errorf("jupyter kernel: %v (install python3-ipykernel python3-jupyter-client)", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("jupyter kernel: unexpected output %q", out)
	}
	a, err1 := strconv.Atoi(f[0])
	b, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("jupyter kernel: unexpected output %q", out)
	}
	return time.Duration(a) * time.Microsecond, time.Duration(b) * time.Microsecond, nil
}

// SocketIO times n warm `y += 1` code:run round trips through the
// official socket.io-client (bench/socketio/roundtrip.mjs under repo,
// npm-installed on first use) and returns the p50 and p99.
func SocketIO(ctx context.Context, repo, url, key, sandboxID string, n int) (p50, p99 time.Duration, err error) {
	dir := filepath.Join(repo, "bench", "socketio")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io-client")); err != nil {
		install := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--silent")
		install.Dir, install.Stderr = dir, os.Stderr
		if err := install.Run(); err != nil {
			return 0, 0, fmt.Errorf("npm install in %s: %w", dir, err)
		}
	}
	cmd := exec.CommandContext(ctx, "node", "roundtrip.mjs")
	cmd.Dir, cmd.Stderr = dir, os.Stderr
	cmd.Env = append(os.Environ(), "SDBX_URL="+url, "SDBX_API_KEY="+key, "SDBX_SANDBOX="+sandboxID, "N="+strconv.Itoa(n))
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("socket.io-client: %w", err)
	}
	var p struct{ P50, P99 int }
	if err := json.Unmarshal(out, &p); err != nil {
		return 0, 0, fmt.Errorf("socket.io-client: unexpected output %q", out)
	}
	return time.Duration(p.P50) * time.Microsecond, time.Duration(p.P99) * time.Microsecond, nil
}
