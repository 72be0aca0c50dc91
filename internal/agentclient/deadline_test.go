package agentclient_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
)

// TestDeadlineWithoutAnswer: an agent that takes the request and never
// answers (a stopped or hung agent) ends each call at ctx's deadline
// with a timeout error, and the connection is closed, which makes a live
// agent abandon the operation.
func TestDeadlineWithoutAnswer(t *testing.T) {
	gotOp := make(chan string, 1)
	left := make(chan struct{}, 1)
	f := startFake(t, func(req agentproto.Request, _ net.Conn, br *bufio.Reader) {
		gotOp <- req.Op
		// Like the agent: a read that returns means the client left.
		_, _ = io.Copy(io.Discard, br)
		left <- struct{}{}
	})
	c := f.client()
	calls := []struct {
		op   string
		call func(ctx context.Context) error
	}{
		{agentproto.OpPing, func(ctx context.Context) error { _, err := c.Ping(ctx); return err }},
		{agentproto.OpExec, func(ctx context.Context) error {
			_, err := c.Exec(ctx, agentproto.ExecRequest{Args: []string{"true"}}, nil)
			return err
		}},
		{agentproto.OpContextExec, func(ctx context.Context) error {
			_, err := c.ExecContext(ctx, agentproto.ContextExecRequest{ID: "ctx-1", Code: "1"}, nil)
			return err
		}},
		{agentproto.OpFileStat, func(ctx context.Context) error { _, err := c.StatFile(ctx, "/f"); return err }},
		{agentproto.OpFileList, func(ctx context.Context) error { _, err := c.ListFiles(ctx, "/d"); return err }},
		{agentproto.OpFileMkdir, func(ctx context.Context) error {
			_, err := c.MakeDir(ctx, agentproto.FileRequest{Path: "/d"})
			return err
		}},
		{agentproto.OpFileRename, func(ctx context.Context) error {
			_, err := c.MoveFile(ctx, agentproto.FileRequest{Path: "/a", To: "/b"})
			return err
		}},
		{agentproto.OpFileRemove, func(ctx context.Context) error { return c.RemoveFile(ctx, "/f", false) }},
		{agentproto.OpFileExists, func(ctx context.Context) error { _, err := c.FileExists(ctx, "/f"); return err }},
		{agentproto.OpFileRead, func(ctx context.Context) error {
			_, r, err := c.ReadFile(ctx, "/f")
			if r != nil {
				r.Close()
			}
			return err
		}},
		{agentproto.OpFileWrite, func(ctx context.Context) error {
			_, err := c.WriteFile(ctx, agentproto.FileRequest{Path: "/f"}, strings.NewReader("content"))
			return err
		}},
	}
	for _, tt := range calls {
		t.Run(tt.op, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			err := tt.call(ctx)
			if op := <-gotOp; op != tt.op {
				t.Errorf("the agent got op %q, want %q", op, tt.op)
			}
			if !errors.Is(err, errdefs.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) ||
				errdefs.Code(err) != "timeout" || !strings.Contains(err.Error(), "deadline exceeded") {
				t.Errorf("error %v (code %q), want timeout and deadline exceeded", err, errdefs.Code(err))
			}
			<-left
		})
	}
}
