package linux

import (
	"errors"
	"fmt"
	"slices"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Securebits (linux/securebits.h); x/sys/unix does not define them.
const (
	secbitNoRoot                  = 1 << 0
	secbitNoRootLocked            = 1 << 1
	secbitKeepCapsLocked          = 1 << 5
	secbitNoCapAmbientRaise       = 1 << 6
	secbitNoCapAmbientRaiseLocked = 1 << 7
)

// deniedSyscalls fail with EPERM inside the sandbox: they change mounts or
// namespaces, load code into the kernel, reach the host's clock, keys,
// swap, logs or quotas, or widen the kernel's attack surface (bpf,
// perf_event_open, userfaultfd, io_uring, whose operations seccomp cannot
// see). Most already fail for lack of capabilities; the filter is the
// second wall. Names the running architecture does not have are skipped.
//
// Left allowed on purpose: ptrace, process_vm_readv/writev, kcmp (they
// only reach processes of the same sandbox, all of which run as the same
// uid without capabilities, and debuggers and strace need them) and
// personality (gdb and setarch use it; it only weakens the caller).
var deniedSyscalls = []string{
	// mounts and namespaces
	"mount", "umount2", "umount", "pivot_root", "chroot", "unshare", "setns",
	"fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "open_tree_attr",
	"move_mount", "mount_setattr",
	// kernel code and state
	"kexec_load", "kexec_file_load", "init_module", "finit_module",
	"delete_module", "bpf", "perf_event_open", "lookup_dcookie",
	"reboot", "swapon", "swapoff", "syslog", "acct", "quotactl",
	"quotactl_fd", "nfsservctl", "_sysctl", "uselib",
	// keys
	"keyctl", "add_key", "request_key",
	// file handles bypass path permission checks
	"open_by_handle_at", "name_to_handle_at",
	// clocks
	"settimeofday", "stime", "clock_settime", "clock_adjtime", "adjtimex",
	// hardware and memory tricks
	"iopl", "ioperm", "userfaultfd", "io_uring_setup", "io_uring_enter",
	"io_uring_register", "vm86", "vm86old", "fanotify_init",
}

// nsCloneFlags are the clone(2) flags that create namespaces; a clone with
// any of them fails with EPERM.
const nsCloneFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// errnoAction returns the seccomp action that fails a call with errno.
func errnoAction(errno unix.Errno) seccomp.Action {
	return seccomp.ActionErrno | seccomp.Action(errno)
}

// seccompProgram assembles the sandbox's filter: a deny-list on the native
// architecture, and ENOSYS for every call made through another ABI (the
// library's own program allows foreign-architecture calls, which on amd64
// with IA-32 emulation would let int 0x80 bypass the deny-list).
func seccompProgram() ([]bpf.RawInstruction, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	var names []string
	for _, n := range deniedSyscalls {
		if _, ok := info.SyscallNames[n]; ok && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	groups := []seccomp.SyscallGroup{{Names: names, Action: seccomp.ActionErrno}}
	if _, ok := info.SyscallNames["clone3"]; ok {
		// clone3 passes its flags in memory, out of the filter's reach:
		// ENOSYS makes glibc and Go fall back to clone, which is filtered.
		groups = append(groups, seccomp.SyscallGroup{Names: []string{"clone3"}, Action: errnoAction(unix.ENOSYS)})
	}
	if _, ok := info.SyscallNames["clone"]; ok {
		groups = append(groups, seccomp.SyscallGroup{
			Action: seccomp.ActionErrno,
			NamesWithCondtions: []seccomp.NameWithConditions{{
				Name: "clone",
				Conditions: seccomp.ArgumentConditions{{
					Argument: cloneFlagsArg(info), Operation: seccomp.BitsSet, Value: nsCloneFlags,
				}},
			}},
		})
	}
	policy := seccomp.Policy{DefaultAction: seccomp.ActionAllow, Syscalls: groups}
	insts, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble policy: %w", err)
	}
	guard := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: uint32(errnoAction(unix.ENOSYS))},
	}
	raw, err := bpf.Assemble(append(guard, insts...))
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble program: %w", err)
	}
	return raw, nil
}

// cloneFlagsArg is the index of clone's flags argument (first everywhere
// but on s390x, where it is the second).
func cloneFlagsArg(info *arch.Info) uint32 {
	if info.Name == "s390x" {
		return 1
	}
	return 0
}

// loadSeccomp installs the filter on the calling thread (no_new_privs must
// be set).
func loadSeccomp(raw []bpf.RawInstruction) error {
	filter := make([]unix.SockFilter, len(raw))
	for i, in := range raw {
		filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return fmt.Errorf("seccomp: load filter: %w", errno)
	}
	return nil
}

// lockDown drops every privilege of the calling thread before it executes
// the agent as uid 0: root-without-capabilities securebits, an empty
// capability bounding set (so the exec grants nothing), empty permitted,
// effective, inheritable and ambient sets, no_new_privs, and the seccomp
// filter.
func lockDown() error {
	raw, err := seccompProgram()
	if err != nil {
		return err
	}
	bits := secbitNoRoot | secbitNoRootLocked | secbitKeepCapsLocked | secbitNoCapAmbientRaise | secbitNoCapAmbientRaiseLocked
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, uintptr(bits), 0, 0, 0); err != nil {
		return fmt.Errorf("set securebits: %w", err)
	}
	for c := 0; c <= 63; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break // past the kernel's last capability
		}
		if err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear capabilities: %w", err)
	}
	return loadSeccomp(raw)
}
