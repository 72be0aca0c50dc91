package agentclient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// listenTCP opens a loopback listener whose connections serve runs on;
// it returns the port.
func listenTCP(t *testing.T, serve func(net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(c)
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestDialPortPipesBothWays(t *testing.T) {
	fa := startFileAgent(t, "")
	// The server greets first (bytes that may arrive with the agent's
	// answer), then echoes until EOF and closes.
	port := listenTCP(t, func(c net.Conn) {
		defer c.Close()
		_, _ = c.Write([]byte("hello;"))
		_, _ = io.Copy(c, c)
	})
	conn, err := fa.client.DialPort(context.Background(), port)
	if err != nil {
		t.Fatalf("DialPort: %v", err)
	}
	defer conn.Close()
	payload := strings.Repeat("0123456789", 100_000)
	go func() {
		_, _ = io.WriteString(conn, payload)
		// The half-close reaches the server, which then ends the stream.
		_ = conn.(interface{ CloseWrite() error }).CloseWrite()
	}()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if want := "hello;" + payload; string(got) != want {
		t.Fatalf("got %d bytes (%.20q...), want %d", len(got), got, len(want))
	}
}

func TestDialPortErrors(t *testing.T) {
	fa := startFileAgent(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	for _, tc := range []struct {
		port int
		kind error
		msg  string
	}{
		{closed, errdefs.ErrUnavailable, "nothing listens on port"},
		{0, errdefs.ErrInvalidArgument, "port 0"},
		{65536, errdefs.ErrInvalidArgument, "port 65536"},
	} {
		conn, err := fa.client.DialPort(context.Background(), tc.port)
		if err == nil {
			conn.Close()
			t.Fatalf("port %d: DialPort succeeded", tc.port)
		}
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("port %d: error %v, want %v containing %q", tc.port, err, tc.kind, tc.msg)
		}
	}
}

func TestDialPortCancelled(t *testing.T) {
	fa := startFileAgent(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fa.client.DialPort(ctx, 80); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

// An open tunnel to a port that never closes ends when the agent stops.
func TestDialPortEndsWithAgent(t *testing.T) {
	fa := startFileAgent(t, "")
	release := make(chan struct{})
	port := listenTCP(t, func(c net.Conn) {
		go func() {
			<-release
			c.Close()
		}()
	})
	defer close(release)
	conn, err := fa.client.DialPort(context.Background(), port)
	if err != nil {
		t.Fatalf("DialPort: %v", err)
	}
	defer conn.Close()
	fa.stop()
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("read after the agent stopped: %v", err)
	}
}
