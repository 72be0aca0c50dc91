package sandbox_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/sandbox"
)

func wantCapped(t *testing.T, what string, err error) {
	t.Helper()
	var rl *errdefs.RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter <= 0 || !strings.Contains(rl.Msg, "per-key") {
		t.Fatalf("%s: %v, want a RateLimitError naming the cap", what, err)
	}
}

// Concurrent creates never pass the cap together, failed creates give
// their slot back, and exempt tenants have none.
func TestSandboxCap(t *testing.T) {
	h := newHarnessWith(t, sandbox.Config{Caps: sandbox.Caps{Sandboxes: 3, Exempt: []string{"admin"}}}, nil)
	ctx := t.Context()
	h.driver.failNew = true
	if _, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py"}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("failing create: %v", err)
	}
	h.driver.failNew = false

	var mu sync.Mutex
	var made []string
	var refused int
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			sb, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py"})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				made = append(made, sb.ID)
				return
			}
			wantCapped(t, "create past the cap", err)
			refused++
		})
	}
	wg.Wait()
	if len(made) != 3 || refused != 17 {
		t.Fatalf("20 concurrent creates with a cap of 3: %d made, %d refused", len(made), refused)
	}
	// Another tenant has its own count; an exempt one has no cap.
	if _, err := h.svc.Create(ctx, "t2", sandbox.CreateOptions{TemplateID: "py"}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := h.svc.Create(ctx, "admin", sandbox.CreateOptions{TemplateID: "py"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.svc.Delete(ctx, "t1", made[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py"}); err != nil {
		t.Fatalf("create after a delete: %v", err)
	}
}

// Execution slots are taken per run and always given back: after the
// run ends, times out or is cancelled.
func TestExecutionCap(t *testing.T) {
	h := newHarnessWith(t, sandbox.Config{Caps: sandbox.Caps{Executions: 2}}, nil)
	ctx := t.Context()
	sb, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py"})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := h.svc.RunCommand(runCtx, "t1", sb.ID, sandbox.CommandRequest{Command: "hang"}, nil)
			errc <- err
		}()
		<-h.driver.started
	}
	if n := h.svc.Runs("t1"); n != 2 {
		t.Fatalf("Runs = %d with two commands running", n)
	}
	_, err = h.svc.RunCommand(ctx, "t1", sb.ID, sandbox.CommandRequest{Command: "exit 0"}, nil)
	wantCapped(t, "a third command", err)
	_, err = h.svc.RunBatch(ctx, "t1", sb.ID, sandbox.BatchRequest{Jobs: []sandbox.BatchJob{{ID: "a", Code: "1"}}}, nil)
	wantCapped(t, "a batch", err)
	cancel()
	for range 2 {
		if err := <-errc; err == nil {
			t.Fatal("a cancelled command returned no error")
		}
	}
	if n := h.svc.Runs("t1"); n != 0 {
		t.Fatalf("Runs = %d after the commands were cancelled", n)
	}
	if _, err := h.svc.RunCommand(ctx, "t1", sb.ID, sandbox.CommandRequest{Command: "timeout", Timeout: time.Second}, nil); !errors.Is(err, errdefs.ErrTimeout) {
		t.Fatalf("timeout: %v", err)
	}
	if res, err := h.svc.RunCommand(ctx, "t1", sb.ID, sandbox.CommandRequest{Command: "exit 3"}, nil); err != nil || res.ExitCode != 3 {
		t.Fatalf("exit 3: %+v, %v", res, err)
	}
	if n := h.svc.Runs("t1"); n != 0 {
		t.Fatalf("Runs = %d after a timeout and an exit", n)
	}
}

// quotaDriver is the fake driver with the DiskQuotas ability.
type quotaDriver struct{ *fakeDriver }

func (quotaDriver) DiskQuota() error { return nil }

var _ runtime.DiskQuotas = quotaDriver{}

func TestDiskMB(t *testing.T) {
	cfg := sandbox.Config{
		Resources:    runtime.Resources{CPU: 1, MemoryMB: 512, PIDs: 64, DiskMB: 1024},
		MaxResources: runtime.Resources{DiskMB: 4096},
	}
	ctx := t.Context()
	t.Run("without quotas", func(t *testing.T) {
		h := newHarnessWith(t, cfg, nil)
		_, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py", Resources: sandbox.Resources{DiskMB: 100}})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "resources.diskMb") || !strings.Contains(err.Error(), "disk quotas") {
			t.Fatalf("diskMb without quotas: %v", err)
		}
		sb, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py"})
		if err != nil || sb.Resources.DiskMB != 0 {
			t.Fatalf("a sandbox without quotas reports diskMb %d (%v)", sb.Resources.DiskMB, err)
		}
	})
	t.Run("with quotas", func(t *testing.T) {
		h := newHarnessWith(t, cfg, func(d *fakeDriver) runtime.Driver { return quotaDriver{d} })
		sb, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py"})
		if err != nil || sb.Resources.DiskMB != 1024 {
			t.Fatalf("default diskMb = %d (%v), want 1024", sb.Resources.DiskMB, err)
		}
		sb, err = h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py", Resources: sandbox.Resources{DiskMB: 4096}})
		if err != nil || sb.Resources.DiskMB != 4096 {
			t.Fatalf("diskMb 4096 = %d (%v)", sb.Resources.DiskMB, err)
		}
		for _, mb := range []int64{8, 4097} {
			_, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py", Resources: sandbox.Resources{DiskMB: mb}})
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "resources.diskMb") {
				t.Errorf("diskMb %d: %v", mb, err)
			}
		}
	})
}
