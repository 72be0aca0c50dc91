package linux

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// InitVerb is the hidden sdbx subcommand that runs InitMain. The driver
// starts "<Exe> __init"; cmd/sdbx dispatches it.
const InitVerb = "__init"

// File descriptors of init (os/exec ExtraFiles start at 3).
const (
	// listenFD is the agent's listening unix socket, which init receives
	// with its config; it stays open across the exec so the agent serves
	// on it (sdbx agent --listen-fd 3). Closed when init starts.
	listenFD = 3
	// configFD is init's end of the control socket (SOCK_SEQPACKET). Its
	// first message is the initConfig as JSON, with two descriptors: the
	// listener and the log file (which becomes stdout and stderr). The
	// second is the go-ahead byte, sent at once when init moves itself
	// into its cgroups, else once the driver has moved it; then EOF. EOF
	// without it (the server died) makes init give up.
	configFD = 4
	// statusFD gets an error message when setup fails. It is close-on-exec,
	// so EOF without a message means the agent was executed.
	statusFD = 5
)

// maxConfig bounds the config message.
const maxConfig = 1 << 20

// Paths inside the sandbox.
const (
	// agentPath is where the sdbx executable is bind-mounted read-only.
	agentDir  = "/.sdbx"
	agentPath = agentDir + "/sdbx"
	// workspacePath is the persistent working directory.
	workspacePath = "/workspace"
)

// initConfig is what the driver sends to init over the config pipe.
type initConfig struct {
	// ID is the sandbox id, also its hostname.
	ID string `json:"id"`
	// Rootfs is the host directory on which the new root is mounted.
	Rootfs string `json:"rootfs"`
	// Overlays are mounted in this order; a Target of "/" is the root.
	Overlays []overlayMount `json:"overlays"`
	// Workspace and Home are host directories bound at /workspace and /root.
	Workspace string `json:"workspace"`
	Home      string `json:"home"`
	// Exe is the host path of the sdbx executable.
	Exe string `json:"exe"`
	// TmpMB sizes the tmpfs mounts (/, /tmp, /var/tmp, /dev/shm).
	TmpMB int64 `json:"tmpMB"`
	// Env is the complete environment of the agent.
	Env []string `json:"env"`
	// Procs, when set, is the agent's GOMAXPROCS: the sandbox's CPU limit
	// rounded up. Go would size itself to the cgroup's CPU quota, but the
	// sandbox has no cgroupfs to read it from.
	Procs int `json:"procs,omitempty"`
	// ResolvConf, when set, is the host file bound read-only at
	// /etc/resolv.conf (the driver rewrites it when the policy changes).
	ResolvConf string `json:"resolvConf,omitempty"`
	// CgroupTasks, when set, are the files init's thread writes "0" to
	// in order to move itself into the sandbox's cgroups (cgroups.SelfMove):
	// the thread that executes the agent, so the agent is all in them.
	CgroupTasks []string `json:"cgroupTasks,omitempty"`
}

// goAhead is the byte the driver sends on the control socket when init may
// execute the agent.
const goAhead = 'g'

// overlayMount is one overlayfs mount with its per-sandbox directories.
type overlayMount struct {
	Target string   `json:"target"`
	Lower  []string `json:"lower"`
	Upper  string   `json:"upper"`
	Work   string   `json:"work"`
}

// InitMain is the sandbox's first process. The driver starts it in new
// mount, pid, network, uts and ipc namespaces; it builds the sandbox's
// root filesystem, locks itself down and executes the agent, which becomes
// PID 1. It returns only on failure, after reporting the error to the
// driver through the status pipe.
func InitMain(args []string) int {
	// Capabilities, no_new_privs, seccomp and unshare act on the calling
	// thread: everything from here to the exec must run on this one.
	goruntime.LockOSThread()
	for _, fd := range []int{configFD, statusFD} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || len(args) != 0 {
			fmt.Fprintln(os.Stderr, "sdbx __init: internal command, started by the sdbx server")
			return 2
		}
	}
	status := os.NewFile(statusFD, "status")
	err := runInit()
	fmt.Fprintf(status, "%v", err)
	fmt.Fprintf(os.Stderr, "sdbx init: %v\n", err)
	return 1
}

// runInit returns only on failure.
func runInit() error {
	cfg, err := readConfig(configFD)
	if err != nil {
		return err
	}
	// A spare init started at a lower priority (spareNice); this thread
	// becomes the agent, at the normal one.
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, 0); err != nil {
		return fmt.Errorf("reset priority: %w", err)
	}
	// The root is built while the driver wires the network (and, without
	// CgroupTasks, moves this process into its cgroups): the agent is
	// executed only after the go-ahead.
	if err := moveSelf(cfg.CgroupTasks); err != nil {
		return err
	}
	// Device nodes and mount points get exactly the modes asked for.
	unix.Umask(0)
	if err := buildRoot(&cfg); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(cfg.ID)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	if err := pivotRoot(cfg.Rootfs); err != nil {
		return err
	}
	unix.Umask(0o022)
	if err := os.Chdir(workspacePath); err != nil {
		return fmt.Errorf("chdir %s: %w", workspacePath, err)
	}
	if err := awaitGoAhead(configFD); err != nil {
		return err
	}
	// Now that the process sits in its own cgroups, a cgroup namespace
	// rooted there hides the host's cgroup paths (/proc/self/cgroup shows
	// "/"). Done before this, the namespace root would be the server's
	// cgroup.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("unshare cgroup namespace: %w", err)
	}
	// Every inherited or Go-runtime descriptor except stdio and the
	// listener closes on exec (the status pipe too: that is how the driver
	// learns that the exec happened).
	if err := unix.CloseRange(listenFD+1, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	if err := lockDown(); err != nil {
		return err
	}
	argv := []string{agentPath, "agent", "--listen-fd", fmt.Sprint(listenFD)}
	if cfg.Procs > 0 {
		argv = append(argv, "--procs", fmt.Sprint(cfg.Procs))
	}
	err = syscall.Exec(agentPath, argv, cfg.Env)
	return fmt.Errorf("exec agent: %w", err)
}

// moveSelf moves the calling thread into the sandbox's cgroups by writing
// "0" to each of files (v1 tasks files). Only this thread moves; it is
// the one that executes the agent (InitMain locked it), and exec leaves
// the agent with this thread alone, so the whole agent sits in them.
func moveSelf(files []string) error {
	for _, f := range files {
		if err := writeFile(f, "0"); err != nil {
			return fmt.Errorf("move into cgroup %s: %w", filepath.Dir(f), err)
		}
	}
	return nil
}

// readConfig receives the config message: the JSON initConfig with the
// listener, placed at listenFD, and the log file, placed at stdout and
// stderr. It blocks until the driver has a sandbox for this init.
func readConfig(ctrl int) (initConfig, error) {
	var cfg initConfig
	buf := make([]byte, maxConfig)
	oob := make([]byte, unix.CmsgSpace(2*4))
	n, oobn, flags, _, err := unix.Recvmsg(ctrl, buf, oob, unix.MSG_CMSG_CLOEXEC)
	for errors.Is(err, unix.EINTR) {
		n, oobn, flags, _, err = unix.Recvmsg(ctrl, buf, oob, unix.MSG_CMSG_CLOEXEC)
	}
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if n == 0 {
		return cfg, errors.New("read config: the driver closed the control socket")
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		return cfg, errors.New("read config: message truncated")
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return cfg, fmt.Errorf("read config: want one control message with the descriptors (%d, %v)", len(msgs), err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 2 {
		return cfg, fmt.Errorf("read config: want the listener and the log file (%d descriptors, %v)", len(fds), err)
	}
	// dup3 without O_CLOEXEC: the agent inherits these.
	for _, m := range [][2]int{{fds[0], listenFD}, {fds[1], 1}, {fds[1], 2}} {
		if err := unix.Dup3(m[0], m[1], 0); err != nil {
			return cfg, fmt.Errorf("place descriptor %d: %w", m[1], err)
		}
	}
	unix.Close(fds[0])
	unix.Close(fds[1])
	if err := json.Unmarshal(buf[:n], &cfg); err != nil {
		return cfg, fmt.Errorf("decode config: %w", err)
	}
	return cfg, nil
}

// awaitGoAhead reads the rest of the control socket: the go-ahead byte,
// then EOF. Anything else (EOF alone: the driver died) is an error.
func awaitGoAhead(ctrl int) error {
	var got []byte
	buf := make([]byte, 16)
	for {
		n, err := unix.Read(ctrl, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for the go-ahead: %w", err)
		}
		if n == 0 {
			break
		}
		if got = append(got, buf[:n]...); len(got) > 1 {
			break
		}
	}
	if string(got) != string(rune(goAhead)) {
		return fmt.Errorf("no go-ahead from the driver (got %q)", got)
	}
	return nil
}

// loopbackUp brings up lo, the only interface of the new network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: get flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: set up: %w", err)
	}
	return nil
}

// pivotRoot makes root the root of the mount namespace and detaches the
// host's root. root must be a mount point and propagation must be private
// (buildRoot did both).
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("pivot_root: chdir: %w", err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one at the
	// same place, so no put_old directory is needed inside the sandbox.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("pivot_root: make old root slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("pivot_root: detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("pivot_root: chdir /: %w", err)
	}
	return nil
}
