package runtimetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
)

// Run is the conformance suite of runtime.Driver. newDriver returns a
// driver with its own empty state; the suite creates sandboxes from
// HostSpec and deletes them again. Run needs what real sandboxes need
// (root for the linux driver: callers skip with RequireRoot).
func Run(t *testing.T, newDriver func(t *testing.T) runtime.Driver) {
	etc := MinimalEtc(t)
	tests := []struct {
		name string
		fn   func(t *testing.T, d runtime.Driver, etc string)
	}{
		{"Lifecycle", testLifecycle},
		{"DuplicateID", testDuplicateID},
		{"ConcurrentCreates", testConcurrentCreates},
		{"UnknownID", testUnknownID},
		{"InvalidSpec", testInvalidSpec},
		{"IdempotentStopStart", testIdempotentStopStart},
		{"DeleteRunning", testDeleteRunning},
		{"FailedCommand", testFailedCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDriver(t), etc) })
	}
}

// create creates a sandbox and deletes it when the test ends.
func create(t *testing.T, d runtime.Driver, spec runtime.Spec) {
	t.Helper()
	if err := d.Create(t.Context(), spec); err != nil {
		t.Fatalf("Create(%s): %v", spec.ID, err)
	}
	t.Cleanup(func() {
		if err := d.Delete(context.Background(), spec.ID); err != nil {
			t.Errorf("cleanup: Delete(%s): %v", spec.ID, err)
		}
	})
}

func wantStatus(t *testing.T, d runtime.Driver, id string, want runtime.State) {
	t.Helper()
	got, err := d.Status(t.Context(), id)
	if err != nil {
		t.Fatalf("Status(%s): %v", id, err)
	}
	if got != want {
		t.Fatalf("Status(%s) = %s, want %s", id, got, want)
	}
}

func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: got error %v, want one wrapping %v", what, err, kind)
	}
}

func testLifecycle(t *testing.T, d runtime.Driver, etc string) {
	ctx := t.Context()
	id := NewID(t, "life")
	create(t, d, HostSpec(id, etc))
	wantStatus(t, d, id, runtime.StateRunning)

	// The first connection right after Create is served.
	if v, err := Client(d, id).Ping(ctx); err != nil || v == "" {
		t.Fatalf("Ping after Create = %q, %v", v, err)
	}
	if out := MustExec(t, d, id, "echo", "hello", "sandbox"); out != "hello sandbox\n" {
		t.Fatalf("echo printed %q", out)
	}
	MustExec(t, d, id, "sh", "-c", "echo kept > /workspace/keep.txt")

	if err := d.Stop(ctx, id); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	wantStatus(t, d, id, runtime.StateStopped)
	_, err := d.Dial(ctx, id)
	wantKind(t, "Dial on a stopped sandbox", err, errdefs.ErrUnavailable)
	if ids, err := d.List(ctx); err != nil || !slices.Contains(ids, id) {
		t.Fatalf("List after Stop = %v, %v; want it to contain %s", ids, err, id)
	}

	if err := d.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	wantStatus(t, d, id, runtime.StateRunning)
	if out := MustExec(t, d, id, "cat", "/workspace/keep.txt"); out != "kept\n" {
		t.Fatalf("/workspace/keep.txt after Stop and Start = %q, want %q", out, "kept\n")
	}

	if err := d.Delete(ctx, id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err = d.Status(ctx, id)
	wantKind(t, "Status after Delete", err, errdefs.ErrNotFound)
	if err := d.Delete(ctx, id); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if ids, err := d.List(ctx); err != nil || slices.Contains(ids, id) {
		t.Fatalf("List after Delete = %v, %v; want it without %s", ids, err, id)
	}
}

func testDuplicateID(t *testing.T, d runtime.Driver, etc string) {
	id := NewID(t, "dup")
	create(t, d, HostSpec(id, etc))
	wantKind(t, "second Create with the same id", d.Create(t.Context(), HostSpec(id, etc)), errdefs.ErrConflict)
	// The failed Create must not have damaged the first sandbox.
	wantStatus(t, d, id, runtime.StateRunning)
	if _, err := Client(d, id).Ping(t.Context()); err != nil {
		t.Fatalf("Ping after the conflicting Create: %v", err)
	}
}

func testConcurrentCreates(t *testing.T, d runtime.Driver, etc string) {
	const n = 4
	ids := make([]string, n)
	for i := range ids {
		ids[i] = NewID(t, fmt.Sprintf("conc%d", i))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, id := range ids {
		wg.Go(func() { errs[i] = d.Create(t.Context(), HostSpec(id, etc)) })
	}
	wg.Wait()
	for i, id := range ids {
		if errs[i] != nil {
			t.Errorf("Create(%s): %v", id, errs[i])
			continue
		}
		t.Cleanup(func() { _ = d.Delete(context.Background(), id) })
	}
	if t.Failed() {
		return
	}
	for _, id := range ids {
		// The hostname is the sandbox id: each command ran in its own.
		if out := MustExec(t, d, id, "hostname"); strings.TrimSpace(out) != id {
			t.Errorf("hostname in %s = %q", id, out)
		}
	}
	listed, err := d.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, id := range ids {
		if !slices.Contains(listed, id) {
			t.Errorf("List = %v, missing %s", listed, id)
		}
	}
	for i, id := range ids {
		wg.Go(func() { errs[i] = d.Delete(t.Context(), id) })
	}
	wg.Wait()
	for i, id := range ids {
		if errs[i] != nil {
			t.Errorf("Delete(%s): %v", id, errs[i])
		}
		if _, err := d.Status(t.Context(), id); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Status(%s) after Delete: %v, want not found", id, err)
		}
	}
}

func testUnknownID(t *testing.T, d runtime.Driver, etc string) {
	ctx := t.Context()
	id := NewID(t, "nobody")
	_, err := d.Status(ctx, id)
	wantKind(t, "Status", err, errdefs.ErrNotFound)
	wantKind(t, "Start", d.Start(ctx, id), errdefs.ErrNotFound)
	wantKind(t, "Stop", d.Stop(ctx, id), errdefs.ErrNotFound)
	_, err = d.Dial(ctx, id)
	wantKind(t, "Dial", err, errdefs.ErrNotFound)
	if err := d.Delete(ctx, id); err != nil {
		t.Fatalf("Delete of an unknown id: %v", err)
	}
}

func testInvalidSpec(t *testing.T, d runtime.Driver, etc string) {
	good := HostSpec(NewID(t, "bad"), etc)
	tests := []struct {
		name string
		mut  func(s *runtime.Spec)
	}{
		{"empty id", func(s *runtime.Spec) { s.ID = "" }},
		{"upper case id", func(s *runtime.Spec) { s.ID = "Upper" }},
		{"id with slash", func(s *runtime.Spec) { s.ID = "a/../b" }},
		{"id too long", func(s *runtime.Spec) { s.ID = strings.Repeat("a", 64) }},
		{"negative memory", func(s *runtime.Spec) { s.Resources.MemoryMB = -1 }},
		{"negative cpu", func(s *runtime.Spec) { s.Resources.CPU = -1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := good
			spec.Overlays = slices.Clone(good.Overlays)
			tc.mut(&spec)
			err := d.Create(t.Context(), spec)
			if err == nil {
				_ = d.Delete(context.Background(), spec.ID)
			}
			wantKind(t, "Create", err, errdefs.ErrInvalidArgument)
		})
	}
	// Nothing was left by the refused creates.
	if _, err := d.Status(t.Context(), good.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Status after refused creates: %v, want not found", err)
	}
}

func testIdempotentStopStart(t *testing.T, d runtime.Driver, etc string) {
	ctx := t.Context()
	id := NewID(t, "idem")
	create(t, d, HostSpec(id, etc))
	// Start on a running sandbox leaves it alone: the same agent answers.
	// Field 22 of /proc/1/stat is the start time of the sandbox's PID 1.
	startTime := []string{"sh", "-c", "cut -d' ' -f22 /proc/1/stat"}
	before := MustExec(t, d, id, startTime...)
	if err := d.Start(ctx, id); err != nil {
		t.Fatalf("Start on a running sandbox: %v", err)
	}
	if after := MustExec(t, d, id, startTime...); after != before {
		t.Fatalf("Start on a running sandbox restarted it:\nbefore %s\nafter  %s", before, after)
	}
	for range 2 {
		if err := d.Stop(ctx, id); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		wantStatus(t, d, id, runtime.StateStopped)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	MustExec(t, d, id, "true")
}

func testDeleteRunning(t *testing.T, d runtime.Driver, etc string) {
	ctx := t.Context()
	id := NewID(t, "delrun")
	if err := d.Create(ctx, HostSpec(id, etc)); err != nil {
		t.Fatalf("Create: %v", err)
	}
	// A background process must not keep the sandbox alive.
	MustExec(t, d, id, "sh", "-c", "sleep 1000 > /dev/null 2>&1 &")
	if err := d.Delete(ctx, id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := d.Status(ctx, id)
	wantKind(t, "Status after Delete", err, errdefs.ErrNotFound)
	_, err = d.Dial(ctx, id)
	wantKind(t, "Dial after Delete", err, errdefs.ErrNotFound)
}

func testFailedCommand(t *testing.T, d runtime.Driver, etc string) {
	id := NewID(t, "fail")
	create(t, d, HostSpec(id, etc))
	res, err := Exec(t.Context(), d, id, nil, "sh", "-c", "echo oops >&2; exit 7")
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if res.Code != 7 || res.Stderr != "oops\n" {
		t.Fatalf("exit %d, stderr %q; want 7 and %q", res.Code, res.Stderr, "oops\n")
	}
}
