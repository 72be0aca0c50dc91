package sandbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// TestAgentDeadlines: when the agent takes a request and never answers,
// a file operation ends at Config.FileOpTimeout and a command or code run
// at its own timeout plus Config.AgentGrace, with a timeout error that says the
// sandbox did not answer (not the caller's cancellation).
func TestAgentDeadlines(t *testing.T) {
	h := newHarnessWith(t, sandbox.Config{ExpiryInterval: time.Hour, FileOpTimeout: 100 * time.Millisecond, AgentGrace: 100 * time.Millisecond}, nil)
	ctx := t.Context()
	sb, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py"})
	if err != nil {
		t.Fatal(err)
	}
	svc, id := h.svc, sb.ID
	tests := []struct {
		name string
		call func() error
		msg  string
	}{
		{"list", func() error { _, err := svc.ListFiles(ctx, "t1", id, "/workspace"); return err },
			"list /workspace: no answer from the sandbox before the deadline"},
		{"stat", func() error { _, err := svc.StatFile(ctx, "t1", id, "/workspace/f"); return err },
			"stat /workspace/f: no answer from the sandbox before the deadline"},
		{"mkdir", func() error { _, err := svc.MakeDir(ctx, "t1", id, "/workspace/d", true); return err },
			"mkdir /workspace/d: no answer from the sandbox before the deadline"},
		{"move", func() error { _, err := svc.MoveFile(ctx, "t1", id, "/workspace/a", "/workspace/b", false); return err },
			"move /workspace/a: no answer from the sandbox before the deadline"},
		{"delete", func() error { return svc.DeleteFile(ctx, "t1", id, "/workspace/f", false) },
			"delete /workspace/f: no answer from the sandbox before the deadline"},
		{"exists", func() error { _, err := svc.FileExists(ctx, "t1", id, "/workspace/f"); return err },
			"exists /workspace/f: no answer from the sandbox before the deadline"},
		{"command", func() error {
			// The fake agent starts "hang" and never sends its exit.
			_, err := svc.RunCommand(ctx, "t1", id, sandbox.CommandRequest{Command: "hang", Timeout: 100 * time.Millisecond}, nil)
			return err
		}, "command: no answer from the sandbox before the deadline"},
		{"code", func() error {
			// The fake agent starts the context and never answers a run.
			_, err := svc.RunCode(ctx, "t1", id, sandbox.RunCodeRequest{Code: "1", Language: "python", Timeout: 100 * time.Millisecond}, nil)
			return err
		}, "code run: no answer from the sandbox before the deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, errdefs.ErrTimeout) || errdefs.Code(err) != "timeout" || !strings.HasPrefix(err.Error(), tt.msg) {
				t.Fatalf("error %v (code %q), want timeout %q", err, errdefs.Code(err), tt.msg)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v wraps the context's error; users get the sandbox's side", err)
			}
		})
	}
	if ctx.Err() != nil {
		t.Fatal("the caller's context ended")
	}
	if got, _ := svc.Get(ctx, "t1", id); got.Status != sandbox.StatusReady {
		t.Errorf("status after the timed-out runs = %s, want ready", got.Status)
	}
}
