package agentclient_test

import (
	"bufio"
	"context"
	"net"
	"testing"

	"github.com/sdbx/sdbx/internal/agentclient"
	"github.com/sdbx/sdbx/internal/agentproto"
)

// BenchmarkExecContextKeptAlive measures the client's side of a warm code
// run on a kept-alive connection: encoding the request, the socket round
// trip and decoding the agent's final event. The agent is a stand-in in
// this process that answers every request line with the line a real
// agent sends after `x += 1`:
//
//	go test ./internal/agentclient -run '^$' -bench ExecContextKeptAlive -benchmem
func BenchmarkExecContextKeptAlive(b *testing.B) {
	sock, ln := listenTemp(b)
	serveConns(b, ln, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		done := []byte(`{"t":"done","ts":1764147600123,"done":{"executionCount":12,"timedOut":false,"stateKept":true},"keepAlive":true}` + "\n")
		for {
			if _, err := br.ReadSlice('\n'); err != nil {
				return
			}
			if _, err := conn.Write(done); err != nil {
				return
			}
		}
	})
	c := agentclient.NewPooled(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}, 4)
	defer c.Close()
	req := agentproto.ContextExecRequest{ID: "ctx-0123456789ab", Code: "x += 1", TimeoutMs: 60000}
	b.ReportAllocs()
	for b.Loop() {
		d, err := c.ExecContext(b.Context(), req, nil)
		if err != nil || d.ExecutionCount != 12 {
			b.Fatalf("%+v, %v", d, err)
		}
	}
}
