package sandbox_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/agentproto"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/sandbox"
	"github.com/sdbx/sdbx/internal/store/sqlite"
	"github.com/sdbx/sdbx/internal/template"
)

// fakeDriver keeps sandboxes in a map and answers Dial with a fake agent
// over net.Pipe. Commands: "env" prints the environment, "hang" blocks
// until the connection closes, "timeout" reports a timeout, "exit N".
type fakeDriver struct {
	mu      sync.Mutex
	state   map[string]runtime.State
	failNew bool
	started chan string // receives the first arg of every exec
	// network is each sandbox's egress policy (Create, then SetNetwork);
	// setCalls counts SetNetwork.
	network  map[string]runtime.Network
	setCalls int
}

var _ runtime.NetworkSetter = (*fakeDriver)(nil)

func newFakeDriver() *fakeDriver {
	return &fakeDriver{state: map[string]runtime.State{}, started: make(chan string, 100), network: map[string]runtime.Network{}}
}

func (d *fakeDriver) SetNetwork(ctx context.Context, id string, n runtime.Network) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.state[id]; !ok {
		return fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
	}
	d.network[id] = n
	d.setCalls++
	return nil
}

func (d *fakeDriver) networkOf(id string) (runtime.Network, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.network[id], d.setCalls
}

func (d *fakeDriver) Create(ctx context.Context, spec runtime.Spec) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failNew {
		return fmt.Errorf("no room: %w", errdefs.ErrUnavailable)
	}
	d.state[spec.ID] = runtime.StateRunning
	d.network[spec.ID] = spec.Network
	return nil
}

func (d *fakeDriver) Start(ctx context.Context, id string) error {
	return d.set(id, runtime.StateRunning)
}
func (d *fakeDriver) Stop(ctx context.Context, id string) error {
	return d.set(id, runtime.StateStopped)
}

func (d *fakeDriver) set(id string, s runtime.State) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.state[id]; !ok {
		return fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
	}
	d.state[id] = s
	return nil
}

func (d *fakeDriver) Delete(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.state, id)
	return nil
}

func (d *fakeDriver) Status(ctx context.Context, id string) (runtime.State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.state[id]
	if !ok {
		return "", fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
	}
	return s, nil
}

func (d *fakeDriver) List(ctx context.Context) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	for id := range d.state {
		ids = append(ids, id)
	}
	return ids, nil
}

func (d *fakeDriver) Dial(ctx context.Context, id string) (net.Conn, error) {
	if s, err := d.Status(ctx, id); err != nil || s != runtime.StateRunning {
		return nil, fmt.Errorf("sandbox %s not running: %w", id, errdefs.ErrUnavailable)
	}
	client, server := net.Pipe()
	go d.serve(server)
	return client, nil
}

func (d *fakeDriver) serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return
	}
	var req agentproto.Request
	if err := json.Unmarshal(line, &req); err != nil {
		return
	}
	enc := json.NewEncoder(conn)
	if req.Op == agentproto.OpPing {
		enc.Encode(agentproto.Event{Type: agentproto.EventPong, Version: "fake"})
		return
	}
	if req.Op == agentproto.OpContextCreate {
		cc := req.ContextCreate
		enc.Encode(agentproto.Event{Type: agentproto.EventContext, Context: &agentproto.ContextInfo{ID: cc.ID, Language: cc.Language, Cwd: cc.Cwd}})
		return
	}
	if req.Exec == nil {
		// Any other op (a code run too): an agent that never answers.
		io.Copy(io.Discard, r) // until the client closes
		return
	}
	args := req.Exec.Args
	d.started <- args[len(args)-1]
	switch cmd := args[len(args)-1]; {
	case cmd == "env":
		keys := make([]string, 0, len(req.Exec.Env))
		for k := range req.Exec.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			enc.Encode(agentproto.Event{Type: agentproto.EventStdout, Data: k + "=" + req.Exec.Env[k], TS: 1})
		}
		enc.Encode(agentproto.Event{Type: agentproto.EventStderr, Data: "cwd=" + req.Exec.Cwd, TS: 1})
		enc.Encode(agentproto.Event{Type: agentproto.EventExit})
	case cmd == "hang":
		io.Copy(io.Discard, r) // until the client closes
	case cmd == "timeout":
		enc.Encode(agentproto.Event{Type: agentproto.EventExit, ExitCode: 137, TimedOut: true})
	case strings.HasPrefix(cmd, "exit "):
		var code int
		fmt.Sscanf(cmd, "exit %d", &code)
		enc.Encode(agentproto.Event{Type: agentproto.EventExit, ExitCode: code})
	}
}

type fakeCatalog struct{ ts []template.Template }

func (c fakeCatalog) List() []template.Template { return c.ts }
func (c fakeCatalog) Get(id string) (template.Template, error) {
	for _, t := range c.ts {
		if t.ID == id {
			return t, nil
		}
	}
	return template.Template{}, fmt.Errorf("template %q: %w", id, errdefs.ErrNotFound)
}

var catalog = fakeCatalog{ts: []template.Template{
	{ID: "py", Status: "ready", DefaultCwd: "/workspace", DefaultEnv: map[string]string{"LAYER": "template", "T_ONLY": "t"}},
	{ID: "broken", Status: "unavailable"},
}}

type harness struct {
	svc    *sandbox.Service
	driver *fakeDriver
	store  *sqlite.Store
}

func newHarness(t *testing.T) harness {
	return newHarnessWith(t, sandbox.Config{ExpiryInterval: 10 * time.Millisecond}, nil)
}

// newHarnessWith is newHarness with a config; wrap, when set, wraps the
// fake driver (to add optional abilities).
func newHarnessWith(t *testing.T, cfg sandbox.Config, wrap func(*fakeDriver) runtime.Driver) harness {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sdbx.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := newFakeDriver()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var drv runtime.Driver = d
	if wrap != nil {
		drv = wrap(d)
	}
	svc := sandbox.New(cfg, st, drv, catalog, log)
	return harness{svc: svc, driver: d, store: st}
}

func TestCreateValidation(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name string
		opts sandbox.CreateOptions
		kind error
		want string
	}{
		{"missing template", sandbox.CreateOptions{}, errdefs.ErrInvalidArgument, "templateId"},
		{"unknown template", sandbox.CreateOptions{TemplateID: "nope"}, errdefs.ErrNotFound, "nope"},
		{"unavailable template", sandbox.CreateOptions{TemplateID: "broken"}, errdefs.ErrConflict, "broken"},
		{"long name", sandbox.CreateOptions{TemplateID: "py", Name: strings.Repeat("x", 129)}, errdefs.ErrInvalidArgument, "name"},
		{"control char in name", sandbox.CreateOptions{TemplateID: "py", Name: "a\x00b"}, errdefs.ErrInvalidArgument, "name"},
		{"negative expiry", sandbox.CreateOptions{TemplateID: "py", Expiry: -time.Second}, errdefs.ErrInvalidArgument, "expiryTime"},
		{"huge expiry", sandbox.CreateOptions{TemplateID: "py", Expiry: 8 * 24 * time.Hour}, errdefs.ErrInvalidArgument, "expiryTime"},
		{"env name with =", sandbox.CreateOptions{TemplateID: "py", Env: map[string]string{"A=B": "x"}}, errdefs.ErrInvalidArgument, "initialEnvVars"},
		{"env value with NUL", sandbox.CreateOptions{TemplateID: "py", Env: map[string]string{"A": "x\x00"}}, errdefs.ErrInvalidArgument, "initialEnvVars.A"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.svc.Create(t.Context(), "t1", tc.opts)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %v naming %q", err, tc.kind, tc.want)
			}
		})
	}
	if list, _ := h.svc.List(t.Context(), "t1"); len(list) != 0 {
		t.Fatalf("rejected creates left records: %+v", list)
	}
	if ids, _ := h.driver.List(t.Context()); len(ids) != 0 {
		t.Fatalf("rejected creates left driver state: %v", ids)
	}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	h := newHarness(t)
	h.driver.failNew = true
	_, err := h.svc.Create(t.Context(), "t1", sandbox.CreateOptions{TemplateID: "py"})
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if list, _ := h.svc.List(t.Context(), "t1"); len(list) != 0 {
		t.Fatalf("failed create left a record: %+v", list)
	}
}

func TestLifecycleAndTenants(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	sb, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py", Name: "mine", Expiry: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Status != sandbox.StatusReady || sb.Name != "mine" || sb.ExpiresAt == nil || !strings.HasPrefix(sb.ID, "sb-") {
		t.Fatalf("created %+v", sb)
	}
	if _, err := h.svc.Get(ctx, "t2", sb.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("other tenant Get: %v, want not found", err)
	}
	if err := h.svc.Delete(ctx, "t2", sb.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("other tenant Delete: %v, want not found", err)
	}
	if list, _ := h.svc.List(ctx, "t2"); len(list) != 0 {
		t.Fatalf("other tenant sees %d sandboxes", len(list))
	}
	if err := h.svc.Delete(ctx, "t1", sb.ID); err != nil {
		t.Fatal(err)
	}
	got, err := h.svc.Get(ctx, "t1", sb.ID)
	if err != nil || got.Status != sandbox.StatusTerminated {
		t.Fatalf("after delete: %+v, %v; want terminated", got, err)
	}
	if err := h.svc.Delete(ctx, "t1", sb.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second delete: %v, want not found", err)
	}
	if ids, _ := h.driver.List(ctx); len(ids) != 0 {
		t.Fatalf("driver still has %v", ids)
	}
}

func TestRunCommandEnvPrecedenceAndCwd(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	sb, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py", Env: map[string]string{"LAYER": "sandbox", "S_ONLY": "s"}})
	if err != nil {
		t.Fatal(err)
	}
	var streamed []string
	res, err := h.svc.RunCommand(ctx, "t1", sb.ID, sandbox.CommandRequest{Command: "env", Env: map[string]string{"LAYER": "command"}},
		func(o sandbox.Output) { streamed = append(streamed, o.Stream+":"+o.Line) })
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"LAYER=command", "T_ONLY=t", "S_ONLY=s", "HOME=/root", "HOSTNAME=" + sb.ID} {
		if !slices.Contains(res.Stdout, want) {
			t.Errorf("stdout %v lacks %q", res.Stdout, want)
		}
	}
	if !slices.Equal(res.Stderr, []string{"cwd=/workspace"}) {
		t.Errorf("stderr = %v, want the default cwd", res.Stderr)
	}
	if len(streamed) != len(res.Stdout)+len(res.Stderr) || streamed[len(streamed)-1] != "stderr:cwd=/workspace" {
		t.Errorf("streamed %v", streamed)
	}
	res, err = h.svc.RunCommand(ctx, "t1", sb.ID, sandbox.CommandRequest{Args: []string{"exit 7"}}, nil)
	if err != nil || res.ExitCode != 7 {
		t.Fatalf("exit code: %+v, %v", res, err)
	}
}

func TestRunCommandValidation(t *testing.T) {
	h := newHarness(t)
	sb, err := h.svc.Create(t.Context(), "t1", sandbox.CreateOptions{TemplateID: "py"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  sandbox.CommandRequest
		want string
	}{
		{"empty", sandbox.CommandRequest{}, "command is required"},
		{"both", sandbox.CommandRequest{Command: "a", Args: []string{"b"}}, "either"},
		{"relative cwd", sandbox.CommandRequest{Command: "a", Cwd: "work"}, "cwd"},
		{"negative timeout", sandbox.CommandRequest{Command: "a", Timeout: -time.Second}, "timeoutMs"},
		{"huge timeout", sandbox.CommandRequest{Command: "a", Timeout: 25 * time.Hour}, "timeoutMs"},
		{"bad env", sandbox.CommandRequest{Command: "a", Env: map[string]string{"1X": "y"}}, "envs"},
		{"NUL arg", sandbox.CommandRequest{Args: []string{"a", "b\x00"}}, "args[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.svc.RunCommand(t.Context(), "t1", sb.ID, tc.req, nil)
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want invalid argument naming %q", err, tc.want)
			}
		})
	}
	if _, err := h.svc.RunCommand(t.Context(), "t1", "sb-nope", sandbox.CommandRequest{Command: "env"}, nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unknown sandbox: %v", err)
	}
}

func TestTimeoutIsAnError(t *testing.T) {
	h := newHarness(t)
	sb, err := h.svc.Create(t.Context(), "t1", sandbox.CreateOptions{TemplateID: "py"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.RunCommand(t.Context(), "t1", sb.ID, sandbox.CommandRequest{Command: "timeout", Timeout: time.Second}, nil)
	if !errors.Is(err, errdefs.ErrTimeout) {
		t.Fatalf("err = %v, want timeout", err)
	}
}

func TestRunningStatusAndDeleteDuringCommand(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	sb, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py"})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := h.svc.RunCommand(ctx, "t1", sb.ID, sandbox.CommandRequest{Command: "hang"}, nil)
		errc <- err
	}()
	<-h.driver.started
	if got, _ := h.svc.Get(ctx, "t1", sb.ID); got.Status != sandbox.StatusRunning {
		t.Fatalf("status during command = %s, want running", got.Status)
	}
	if err := h.svc.Delete(ctx, "t1", sb.ID); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("command during delete: %v, want conflict saying deleted", err)
	}
}

func TestCancelKillsCommand(t *testing.T) {
	h := newHarness(t)
	sb, err := h.svc.Create(t.Context(), "t1", sandbox.CreateOptions{TemplateID: "py"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := h.svc.RunCommand(ctx, "t1", sb.ID, sandbox.CommandRequest{Command: "hang"}, nil)
		errc <- err
	}()
	<-h.driver.started
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("cancelled command returned no error")
	}
	if got, _ := h.svc.Get(t.Context(), "t1", sb.ID); got.Status != sandbox.StatusReady {
		t.Fatalf("status after cancel = %s, want ready", got.Status)
	}
}

func TestExpiry(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	sb, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py", Expiry: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for {
		got, err := h.svc.Get(ctx, "t1", sb.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == sandbox.StatusTerminated {
			if got.Error != "expired" {
				t.Fatalf("terminated with reason %q, want expired", got.Error)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("sandbox never expired")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if ids, _ := h.driver.List(ctx); len(ids) != 0 {
		t.Fatalf("expired sandbox still in driver: %v", ids)
	}
}

func TestRecover(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	alive, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py"})
	if err != nil {
		t.Fatal(err)
	}
	dead, err := h.svc.Create(ctx, "t1", sandbox.CreateOptions{TemplateID: "py"})
	if err != nil {
		t.Fatal(err)
	}
	h.driver.Stop(ctx, dead.ID)                         // its processes died with the old server
	h.driver.Create(ctx, runtime.Spec{ID: "sb-orphan"}) // state nobody recorded
	half := sandbox.Sandbox{ID: "sb-half", TemplateID: "py", Status: sandbox.StatusCreating, Tenant: "t1", EnvVars: map[string]string{}, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := h.store.CreateSandbox(ctx, half); err != nil {
		t.Fatal(err)
	}

	if err := h.svc.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.svc.Get(ctx, "t1", alive.ID); got.Status != sandbox.StatusReady {
		t.Errorf("alive sandbox: %s, want ready (adopted)", got.Status)
	}
	if got, _ := h.svc.Get(ctx, "t1", dead.ID); got.Status != sandbox.StatusStopped {
		t.Errorf("dead sandbox: %s, want stopped", got.Status)
	}
	if _, err := h.svc.Get(ctx, "t1", "sb-half"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("half-created sandbox still recorded: %v", err)
	}
	if _, err := h.driver.Status(ctx, "sb-orphan"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("orphan driver state not swept: %v", err)
	}
	if _, err := h.svc.RunCommand(ctx, "t1", dead.ID, sandbox.CommandRequest{Command: "env"}, nil); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("command in stopped sandbox: %v, want conflict", err)
	}
}

func TestTemplatesPaging(t *testing.T) {
	h := newHarness(t)
	page, err := h.svc.Templates(t.Context(), "t1", 2, 1)
	if err != nil || page.Total != 2 || len(page.Templates) != 1 || page.Templates[0].ID != "broken" {
		t.Fatalf("page 2 = %+v, %v", page, err)
	}
	page, err = h.svc.Templates(t.Context(), "t1", 5, 10)
	if err != nil || len(page.Templates) != 0 || page.Total != 2 {
		t.Fatalf("page past the end = %+v, %v", page, err)
	}
	for _, bad := range [][2]int{{-1, 10}, {1, 101}, {1, -5}} {
		if _, err := h.svc.Templates(t.Context(), "t1", bad[0], bad[1]); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Templates(%d, %d): %v, want invalid argument", bad[0], bad[1], err)
		}
	}
}

func TestWarmPool(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sdbx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := newFakeDriver()
	svc := sandbox.New(sandbox.Config{Pool: map[string]int{"py": 2}}, st, d, catalog, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()

	waitReady := func(n int) {
		t.Helper()
		for svc.PoolStats().Ready["py"] != n {
			select {
			case <-t.Context().Done():
				t.Fatalf("pool never reached %d ready", n)
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
	waitReady(2)
	pooled, _ := d.List(t.Context())
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		sb, err := svc.Create(t.Context(), "t1", sandbox.CreateOptions{TemplateID: "py", Name: fmt.Sprint("n", i), Env: map[string]string{"K": "v"}, Expiry: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if seen[sb.ID] {
			t.Fatalf("sandbox %s served twice", sb.ID)
		}
		seen[sb.ID] = true
		if sb.Name != fmt.Sprint("n", i) || sb.EnvVars["K"] != "v" || sb.ExpiresAt == nil || sb.Status != sandbox.StatusReady {
			t.Fatalf("claimed sandbox did not get its options: %+v", sb)
		}
		if i == 0 && !slices.Contains(pooled, sb.ID) {
			t.Fatalf("first create did not come from the pool (%s not in %v)", sb.ID, pooled)
		}
		waitReady(2)
	}
	if st := svc.PoolStats(); st.Hits < 1 || st.Size["py"] != 2 {
		t.Fatalf("stats %+v", st)
	}
	if list, _ := svc.List(t.Context(), "t1"); len(list) != 3 {
		t.Fatalf("list shows %d sandboxes, want the 3 claimed (pooled ones are nobody's)", len(list))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	left, _ := d.List(t.Context())
	if len(left) != 3 {
		t.Fatalf("after shutdown the driver has %d sandboxes, want only the 3 claimed: %v", len(left), left)
	}
}

// TestNetworkPolicy checks validation, the server default, the policy a
// claimed pool sandbox gets, and its restoration by Recover.
func TestNetworkPolicy(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sdbx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := newFakeDriver()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	inet := runtime.Network{Egress: runtime.EgressInternet}
	svc := sandbox.New(sandbox.Config{Pool: map[string]int{"py": 1}, Network: inet}, st, d, catalog, log)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	for _, c := range []struct {
		n     runtime.Network
		field string
	}{
		{runtime.Network{Egress: "everything"}, "network.egress"},
		{runtime.Network{Allow: []string{"a.org"}}, "network.allow"},
		{runtime.Network{Egress: runtime.EgressNone, Allow: []string{"a.org"}}, "network.allow"},
		{runtime.Network{Egress: runtime.EgressAllowlist, Allow: []string{"a.org", "10.0.0.0/33"}}, "network.allow[1]"},
		{runtime.Network{Egress: runtime.EgressAllowlist, Allow: []string{"::1/128"}}, "network.allow[0]"},
		{runtime.Network{Egress: runtime.EgressAllowlist, Allow: []string{"-a.org"}}, "network.allow[0]"},
		{runtime.Network{Egress: runtime.EgressAllowlist, Allow: []string{"localhost"}}, "network.allow[0]"},
		{runtime.Network{Egress: runtime.EgressAllowlist, Allow: make([]string, runtime.MaxAllow+1)}, "network.allow"},
	} {
		_, err := svc.Create(t.Context(), "t1", sandbox.CreateOptions{TemplateID: "py", Network: c.n})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("Create(%+v) = %v; want invalid argument naming %s", c.n, err, c.field)
		}
	}
	waitPool := func() {
		t.Helper()
		for svc.PoolStats().Ready["py"] != 1 {
			select {
			case <-t.Context().Done():
				t.Fatal("pool never filled")
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
	waitPool()
	allow := runtime.Network{Egress: runtime.EgressAllowlist, Allow: []string{"registry.npmjs.org", "203.0.113.0/24"}}
	narrow, err := svc.Create(t.Context(), "t1", sandbox.CreateOptions{TemplateID: "py", Network: runtime.Network{
		Egress: runtime.EgressAllowlist, Allow: []string{"Registry.NPMJS.org.", "203.0.113.9/24", "registry.npmjs.org"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got, calls := d.networkOf(narrow.ID); !slices.Equal(got.Allow, allow.Allow) || got.Egress != allow.Egress || calls != 1 {
		t.Errorf("claimed sandbox's driver network = %+v (%d SetNetwork calls), want %+v applied at claim", got, calls, allow)
	}
	if narrow.Network.Egress != allow.Egress || !slices.Equal(narrow.Network.Allow, allow.Allow) {
		t.Errorf("record network = %+v, want %+v", narrow.Network, allow)
	}
	waitPool()
	def, err := svc.Create(t.Context(), "t1", sandbox.CreateOptions{TemplateID: "py"})
	if err != nil {
		t.Fatal(err)
	}
	if got, calls := d.networkOf(def.ID); got.Egress != runtime.EgressInternet || calls != 1 || def.Network.Egress != runtime.EgressInternet {
		t.Errorf("default sandbox: driver %+v (%d calls), record %+v; want internet, no SetNetwork", got, calls, def.Network)
	}
	none, err := svc.Create(t.Context(), "t1", sandbox.CreateOptions{TemplateID: "py", Network: runtime.Network{Egress: runtime.EgressNone}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := d.networkOf(none.ID); got.Egress != runtime.EgressNone {
		t.Errorf("egress none sandbox got %+v", got)
	}

	// A restarted server restores each adopted sandbox's recorded policy.
	d.mu.Lock()
	clear(d.network)
	d.mu.Unlock()
	svc2 := sandbox.New(sandbox.Config{Network: inet}, st, d, catalog, log)
	if err := svc2.Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, sb := range []sandbox.Sandbox{narrow, def, none} {
		got, _ := d.networkOf(sb.ID)
		if got.Egress != sb.Network.Egress || !slices.Equal(got.Allow, sb.Network.Allow) {
			t.Errorf("after Recover %s has %+v, want %+v", sb.ID, got, sb.Network)
		}
		rec, err := svc2.Get(t.Context(), "t1", sb.ID)
		if err != nil || rec.Network.Egress != sb.Network.Egress {
			t.Errorf("Get(%s) after Recover: %+v, %v", sb.ID, rec.Network, err)
		}
	}
}

func TestShutdownStopsRunsWithAClearError(t *testing.T) {
	h := newHarness(t)
	sb, err := h.svc.Create(t.Context(), "t1", sandbox.CreateOptions{TemplateID: "py"})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := h.svc.RunCommand(t.Context(), "t1", sb.ID, sandbox.CommandRequest{Command: "hang"}, nil)
		errc <- err
	}()
	<-h.driver.started
	h.svc.Shutdown()
	if err := <-errc; !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("run during shutdown: %v, want unavailable saying the server is shutting down", err)
	}
	if ids, _ := h.driver.List(t.Context()); len(ids) != 1 {
		t.Fatalf("shutdown touched sandboxes: %v", ids)
	}
}
