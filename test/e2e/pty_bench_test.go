package e2e

import (
	"context"
	"io"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// BenchmarkPTYKeystroke measures one keystroke's round trip through a
// terminal session: WebSocket → server → agent → pseudo-terminal, and the
// terminal's echo back.
//
//	go test ./test/e2e/ -run '^$' -bench PTYKeystroke
func BenchmarkPTYKeystroke(b *testing.B) {
	if env == nil {
		b.Skip(skipReason)
	}
	ctx := context.Background()
	c, err := sdbx.New(sdbx.Config{ServerURL: env.srv.URL, APIKey: env.srv.APIKey, Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	sb, err := c.CreateSandbox(ctx, sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.DeleteSandbox(context.Background(), sb.ID) }()
	p, err := c.OpenPTY(ctx, sb.ID, sdbx.PTYOptions{Args: []string{"cat"}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	buf := make([]byte, 1)
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.Write([]byte("x")); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(p, buf); err != nil || buf[0] != 'x' {
			b.Fatalf("echo %q, %v", buf, err)
		}
	}
}
