package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// kill ends the server with SIGKILL, as a crash would, and waits for it.
func (s *Server) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill server: %v", err)
	}
	<-s.done
}

// runCodeHTTP runs code through the raw HTTP API and returns stdout lines.
func runCodeHTTP(t *testing.T, srv *Server, sandboxID, code string) []string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"code": code})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/sandboxes/"+sandboxID+"/code", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+srv.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("run code: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Execution struct {
			Logs struct{ Stdout []string }
		}
		Error *struct{ Code, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("run code %q: status %d, %+v, %v", code, resp.StatusCode, out.Error, err)
	}
	return out.Execution.Logs.Stdout
}

// TestCrashRecovery kills the server with SIGKILL while sandboxes run and
// restarts it on the same data directory: every acknowledged sandbox, file
// and interpreter state is still there, because sandboxes outlive the
// server and the new server adopts them.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	e := setup(t)
	dir := filepath.Join(t.TempDir(), "data")
	key := RandomKey()
	srv, err := StartServer(t.Context(), ServerOptions{Bin: e.bin, DataDir: dir, APIKey: key, Args: []string{"--pool", "none"}})
	if err != nil {
		t.Fatal(err)
	}
	client := func(s *Server) *sdbx.Client {
		c, err := sdbx.New(sdbx.Config{ServerURL: s.URL, APIKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := client(srv)
	var ids []string
	for i := 0; i < 3; i++ {
		sb, err := c.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: "python-3-11", Name: "crash-" + string(rune('a'+i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sb.ID)
		if _, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{Command: "echo kept-" + sb.ID + " > /workspace/note.txt"}); err != nil {
			t.Fatal(err)
		}
		runCodeHTTP(t, srv, sb.ID, "state = 'alive-"+sb.ID+"'")
	}
	// A command in flight when the server dies.
	inflight := make(chan error, 1)
	go func() {
		_, err := c.RunCommand(t.Context(), ids[0], sdbx.Command{Command: "sleep 30"})
		inflight <- err
	}()
	time.Sleep(200 * time.Millisecond)
	srv.kill(t)
	if err := <-inflight; err == nil {
		t.Fatal("a command in flight when the server died reported success")
	}

	srv, err = StartServer(t.Context(), ServerOptions{Bin: e.bin, DataDir: dir, APIKey: key, Args: []string{"--pool", "none"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Stop(30 * time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	c = client(srv)
	list, err := c.ListSandboxes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		i := slices.IndexFunc(list, func(s sdbx.Sandbox) bool { return s.ID == id })
		if i < 0 || list[i].Status != sdbx.StatusReady {
			t.Fatalf("sandbox %s after restart: %+v", id, list)
		}
		res, err := c.RunCommand(t.Context(), id, sdbx.Command{Args: []string{"cat", "/workspace/note.txt"}})
		if err != nil || len(res.Stdout) != 1 || res.Stdout[0] != "kept-"+id {
			t.Fatalf("file of %s after restart: %+v, %v", id, res, err)
		}
		out := runCodeHTTP(t, srv, id, "print(state)")
		if len(out) != 1 || out[0] != "alive-"+id {
			t.Fatalf("interpreter state of %s after restart: %v", id, out)
		}
	}
	// The command that was running is not left running forever: its
	// process group was killed when its connection to the agent broke.
	res, err := c.RunCommand(t.Context(), ids[0], sdbx.Command{Command: "ps -eo args | grep -c '^sleep 30' || true"})
	if err != nil || strings.TrimSpace(strings.Join(res.Stdout, "")) != "0" {
		t.Fatalf("the interrupted command still runs: %+v, %v", res, err)
	}
	for _, id := range ids {
		if err := c.DeleteSandbox(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGracefulShutdown sends SIGTERM while a command runs: the command ends
// at once with a clear unavailable error, the server exits 0 well within
// its shutdown timeout, and the sandbox is adopted by the next server.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	e := setup(t)
	dir := filepath.Join(t.TempDir(), "data")
	key := RandomKey()
	srv, err := StartServer(t.Context(), ServerOptions{Bin: e.bin, DataDir: dir, APIKey: key, Args: []string{"--pool", "none", "--shutdown-timeout", "20s"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := sdbx.New(sdbx.Config{ServerURL: srv.URL, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := c.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	inflight := make(chan error, 1)
	go func() {
		_, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{Command: "echo started; sleep 60"},
			sdbx.OnStdout(func(sdbx.OutputLine) { close(started) }))
		inflight <- err
	}()
	<-started
	t0 := time.Now()
	if err := srv.Stop(15 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, srv.Logs())
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Fatalf("shutdown waited %v for a 60 s command instead of ending it", d)
	}
	err = <-inflight
	if !errors.Is(err, sdbx.ErrUnavailable) || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("command during shutdown: %v, want unavailable saying the server is shutting down", err)
	}

	srv, err = StartServer(t.Context(), ServerOptions{Bin: e.bin, DataDir: dir, APIKey: key, Args: []string{"--pool", "none"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(30 * time.Second)
	c, _ = sdbx.New(sdbx.Config{ServerURL: srv.URL, APIKey: key})
	if got, err := c.GetSandbox(t.Context(), sb.ID); err != nil || got.Status != sdbx.StatusReady {
		t.Fatalf("sandbox after restart: %+v, %v", got, err)
	}
	if err := c.DeleteSandbox(t.Context(), sb.ID); err != nil {
		t.Fatal(err)
	}
}
