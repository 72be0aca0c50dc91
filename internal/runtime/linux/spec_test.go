package linux

import (
	"errors"
	goruntime "runtime"
	"testing"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
	"golang.org/x/sys/unix"
)

// These tests need no root.

func TestValidateSpec(t *testing.T) {
	dir := t.TempDir()
	ok := runtime.Spec{ID: "a-1", Overlays: []runtime.Overlay{{Target: "/usr", Lower: []string{dir}}}}
	tests := []struct {
		name  string
		mut   func(*runtime.Spec)
		valid bool
	}{
		{"valid", func(*runtime.Spec) {}, true},
		{"root overlay", func(s *runtime.Spec) { s.Overlays[0].Target = "/" }, true},
		{"id of NUL bytes", func(s *runtime.Spec) { s.ID = string(make([]byte, 8)) }, false},
		{"id with dot", func(s *runtime.Spec) { s.ID = "a.b" }, false},
		{"target under /tmp", func(s *runtime.Spec) { s.Overlays[0].Target = "/tmp/x" }, false},
		{"target /root", func(s *runtime.Spec) { s.Overlays[0].Target = "/root" }, false},
		{"target /var is fine", func(s *runtime.Spec) { s.Overlays[0].Target = "/var" }, true},
		{"lower with comma", func(s *runtime.Spec) { s.Overlays[0].Lower = []string{"/a,b"} }, false},
		{"memory below minimum", func(s *runtime.Spec) { s.Resources.MemoryMB = minMemoryMB - 1 }, false},
		{"memory at minimum", func(s *runtime.Spec) { s.Resources.MemoryMB = minMemoryMB }, true},
		{"pids below minimum", func(s *runtime.Spec) { s.Resources.PIDs = minPIDs - 1 }, false},
		{"tiny cpu", func(s *runtime.Spec) { s.Resources.CPU = 0.001 }, false},
		{"half a cpu", func(s *runtime.Spec) { s.Resources.CPU = 0.5 }, true},
		{"negative disk", func(s *runtime.Spec) { s.Resources.DiskMB = -1 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := ok
			spec.Overlays = []runtime.Overlay{{Target: ok.Overlays[0].Target, Lower: ok.Overlays[0].Lower}}
			tc.mut(&spec)
			err := validateSpec(spec)
			if tc.valid && err != nil {
				t.Fatalf("validateSpec = %v, want ok", err)
			}
			if !tc.valid && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("validateSpec = %v, want invalid argument", err)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	def := runtime.Resources{CPU: 1, MemoryMB: 1024, PIDs: 512}
	got := withDefaults(runtime.Resources{MemoryMB: 64}, def)
	want := runtime.Resources{CPU: 1, MemoryMB: 64, PIDs: 512}
	if got != want {
		t.Fatalf("withDefaults = %+v, want %+v", got, want)
	}
}

func TestSeccompProgramAssembles(t *testing.T) {
	raw, err := seccompProgram()
	if err != nil {
		t.Fatal(err)
	}
	// The architecture guard comes first: load arch, compare, ENOSYS.
	if len(raw) < 3 || raw[2].K != uint32(errnoAction(unix.ENOSYS)) {
		t.Fatalf("program does not start with the architecture guard: %v", raw[:min(3, len(raw))])
	}
}

func TestAgentProcs(t *testing.T) {
	host := goruntime.NumCPU()
	for _, tt := range []struct {
		cpu  float64
		want int
	}{
		{0, 0},
		{0.25, 1},
		{1, 1},
		{1.5, min(2, host)},
		{1000, host},
	} {
		if got := agentProcs(tt.cpu); got != tt.want {
			t.Errorf("agentProcs(%v) = %d, want %d", tt.cpu, got, tt.want)
		}
	}
}
