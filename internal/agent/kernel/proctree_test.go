package kernel

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// TestContextProcs runs the matching over a fake /proc.
func TestContextProcs(t *testing.T) {
	root := t.TempDir()
	self := os.Getpid()
	add := func(pid, ppid, pgrp, sid int, state string, env string) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := strconv.Itoa(pid) + " (p) " + state + " " + strconv.Itoa(ppid) + " " + strconv.Itoa(pgrp) + " " + strconv.Itoa(sid) + " 0"
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "environ"), []byte(env), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const driver = 100
	add(1, 0, 1, 1, "S", "")
	add(self, 1, self, self, "S", tagVar+"=t1\x00")        // the agent: never
	add(driver, self, driver, driver, "S", "A=b\x00")      // the driver
	add(101, driver, driver, driver, "S", "")              // its child
	add(102, driver, 102, 102, "S", "")                    // child in a new session
	add(103, 102, 103, 103, "S", "")                       // grandchild, another session
	add(104, 1, 104, 104, "S", "X=1\x00"+tagVar+"=t1\x00") // daemon, found by its tag
	add(105, 1, 105, 105, "S", tagVar+"=t1\x00")           // tag first in environ
	add(106, 1, 106, 106, "S", tagVar+"=t10\x00")          // another context's tag
	add(107, 1, driver, driver, "S", "")                   // reparented, same session
	add(108, driver, driver, driver, "Z", "")              // zombie: dead already
	add(109, 1, 109, 109, "S", "")                         // unrelated

	got := contextProcs(root, driver, driver, "t1")
	slices.Sort(got)
	if want := []int{driver, 101, 102, 103, 104, 105, 107}; !slices.Equal(got, want) {
		t.Errorf("contextProcs = %v, want %v", got, want)
	}
	// After the driver was reaped its pid may be reused: no ancestry.
	got = contextProcs(root, 0, driver, "t1")
	slices.Sort(got)
	if want := []int{driver, 101, 104, 105, 107}; !slices.Equal(got, want) {
		t.Errorf("contextProcs without ancestry = %v, want %v", got, want)
	}
}
