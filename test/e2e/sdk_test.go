package e2e

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// isGone reports whether err says the sandbox no longer exists.
func isGone(err error) bool { return errors.Is(err, sdbx.ErrNotFound) }

func TestSDKHealth(t *testing.T) {
	e := setup(t)
	h, err := e.clientWithKey(t, "").Health(t.Context())
	if err != nil || h.Status != "ok" {
		t.Fatalf("Health = %+v, %v", h, err)
	}
}

func TestSDKRunPython(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{TemplateID: "python-3-11", Name: "e2e python"})
	if sb.Status != sdbx.StatusReady || sb.TemplateID != "python-3-11" || sb.Name != "e2e python" || sb.ID == "" {
		t.Fatalf("created sandbox = %+v", sb)
	}

	res, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{Args: []string{"python3", "-c", "print(1)"}})
	if err != nil {
		t.Fatalf("RunCommand: %v", err)
	}
	if res.ExitCode != 0 || !reflect.DeepEqual(res.Stdout, []string{"1"}) || len(res.Stderr) != 0 || res.Truncated {
		t.Fatalf("result = %+v, want stdout [1]", res)
	}

	// The shell form runs through bash.
	res, err = c.RunCommand(t.Context(), sb.ID, sdbx.Command{Command: "echo hi | wc -c; echo $0"})
	if err != nil {
		t.Fatalf("RunCommand(shell): %v", err)
	}
	if len(res.Stdout) != 2 || strings.TrimSpace(res.Stdout[0]) != "3" || !strings.Contains(res.Stdout[1], "sh") {
		t.Fatalf("shell result = %+v", res)
	}

	// The default working directory is the template's.
	tmpl, err := c.GetTemplate(t.Context(), "python-3-11")
	if err != nil {
		t.Fatalf("GetTemplate: %v", err)
	}
	res, err = c.RunCommand(t.Context(), sb.ID, sdbx.Command{Args: []string{"pwd"}})
	if err != nil || !reflect.DeepEqual(res.Stdout, []string{tmpl.DefaultCwd}) {
		t.Fatalf("pwd = %+v, %v; want %q", res, err, tmpl.DefaultCwd)
	}
	res, err = c.RunCommand(t.Context(), sb.ID, sdbx.Command{Args: []string{"pwd"}, Cwd: "/tmp"})
	if err != nil || !reflect.DeepEqual(res.Stdout, []string{"/tmp"}) {
		t.Fatalf("pwd in /tmp = %+v, %v", res, err)
	}

	// The template reports the version that really runs.
	res, err = c.RunCommand(t.Context(), sb.ID, sdbx.Command{Args: []string{"python3", "-c",
		"import platform; print(platform.python_version())"}})
	if err != nil || len(res.Stdout) != 1 || res.Stdout[0] != tmpl.Version {
		t.Fatalf("python version in sandbox = %+v, %v; template says %q", res, err, tmpl.Version)
	}
}

func TestSDKTemplates(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	page, err := c.ListTemplates(t.Context(), 1, 100)
	if err != nil {
		t.Fatalf("ListTemplates: %v", err)
	}
	if page.Page != 1 || page.PageSize != 100 || page.Total < len(page.Templates) {
		t.Fatalf("page = %+v", page)
	}
	i := slices.IndexFunc(page.Templates, func(t sdbx.Template) bool { return t.ID == "python-3-11" })
	if i < 0 {
		t.Fatalf("python-3-11 not in %+v", page.Templates)
	}
	got := page.Templates[i]
	if got.Language != "python" || !strings.HasPrefix(got.Version, "3.11") || !got.BuiltIn {
		t.Fatalf("python-3-11 = %+v", got)
	}
	one, err := c.GetTemplate(t.Context(), "python-3-11")
	if err != nil || one.ID != "python-3-11" || one.Version != got.Version {
		t.Fatalf("GetTemplate = %+v, %v", one, err)
	}
	if _, err := c.GetTemplate(t.Context(), "no-such-template"); !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("GetTemplate(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := c.ListTemplates(t.Context(), 1, 1000); !errors.Is(err, sdbx.ErrInvalidArgument) ||
		!strings.Contains(err.Error(), "pageSize") {
		t.Fatalf("ListTemplates(pageSize 1000) = %v, want ErrInvalidArgument naming pageSize", err)
	}
}

func TestSDKEnvPrecedence(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{Env: map[string]string{"FROM_SB": "sandbox", "BOTH": "sandbox"}})
	if sb.EnvVars["FROM_SB"] != "sandbox" {
		t.Fatalf("sandbox envVars = %v", sb.EnvVars)
	}
	res, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{
		Command: `echo "$FROM_SB $BOTH $FROM_CMD"`,
		Env:     map[string]string{"BOTH": "command", "FROM_CMD": "command"},
	})
	if err != nil {
		t.Fatalf("RunCommand: %v", err)
	}
	if want := []string{"sandbox command command"}; !reflect.DeepEqual(res.Stdout, want) {
		t.Fatalf("stdout = %q, want %q", res.Stdout, want)
	}
	// The command's env does not stick to the sandbox.
	res, err = c.RunCommand(t.Context(), sb.ID, sdbx.Command{Command: `echo "$BOTH ${FROM_CMD:-unset}"`})
	if err != nil || !reflect.DeepEqual(res.Stdout, []string{"sandbox unset"}) {
		t.Fatalf("second run = %+v, %v", res, err)
	}
}

func TestSDKStreamingCallbacks(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})

	var outs, errs []string
	var stamps []time.Time
	res, err := c.RunCommand(t.Context(), sb.ID,
		sdbx.Command{Command: `for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done`},
		sdbx.OnStdout(func(l sdbx.OutputLine) {
			outs = append(outs, l.Line)
			stamps = append(stamps, l.Timestamp)
			if l.Stream != "stdout" {
				t.Errorf("stdout callback got stream %q", l.Stream)
			}
		}),
		sdbx.OnStderr(func(l sdbx.OutputLine) {
			errs = append(errs, l.Line)
			if l.Stream != "stderr" {
				t.Errorf("stderr callback got stream %q", l.Stream)
			}
		}),
	)
	if err != nil {
		t.Fatalf("RunCommand: %v", err)
	}
	want := func(p string) []string {
		var l []string
		for i := 1; i <= 5; i++ {
			l = append(l, fmt.Sprintf("%s%d", p, i))
		}
		return l
	}
	if !reflect.DeepEqual(outs, want("out")) || !reflect.DeepEqual(errs, want("err")) {
		t.Fatalf("callbacks: stdout %q stderr %q", outs, errs)
	}
	if !reflect.DeepEqual(res.Stdout, outs) || !reflect.DeepEqual(res.Stderr, errs) {
		t.Fatalf("result %+v differs from the streamed lines", res)
	}
	for i, ts := range stamps {
		if ts.IsZero() || (i > 0 && ts.Before(stamps[i-1])) {
			t.Fatalf("timestamps not set or not in order: %v", stamps)
		}
	}
}

// TestSDKStreamingIsLive checks that a line reaches its callback while the
// command is still running: the command waits for a file that a second
// command creates only once the first line has been seen.
func TestSDKStreamingIsLive(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})

	flagFile := "/tmp/e2e-go-" + sb.ID
	touched := make(chan error, 1)
	started := false
	res, err := c.RunCommand(t.Context(), sb.ID,
		sdbx.Command{Command: fmt.Sprintf(`echo first; for i in $(seq 300); do [ -e %[1]s ] && break; sleep 0.1; done; `+
			`[ -e %[1]s ] && echo saw-flag || echo no-flag`, flagFile)},
		sdbx.OnStdout(func(l sdbx.OutputLine) {
			if l.Line != "first" || started {
				return
			}
			started = true
			go func() {
				_, err := c.RunCommand(context.WithoutCancel(t.Context()), sb.ID, sdbx.Command{Args: []string{"touch", flagFile}})
				touched <- err
			}()
		}),
	)
	if err != nil {
		t.Fatalf("RunCommand: %v", err)
	}
	if !started {
		t.Fatalf("the first line never reached the callback; stdout %q", res.Stdout)
	}
	if terr := <-touched; terr != nil {
		if errors.Is(terr, sdbx.ErrConflict) {
			t.Skipf("the server refuses a second command while one runs (%v); liveness not testable this way", terr)
		}
		t.Fatalf("touch: %v", terr)
	}
	if !reflect.DeepEqual(res.Stdout, []string{"first", "saw-flag"}) {
		t.Fatalf("stdout = %q: the first line did not reach the callback while the command ran", res.Stdout)
	}
}

func TestSDKNonZeroExit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	res, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{Args: []string{"sh", "-c", "echo bye; echo oops >&2; exit 7"}})
	if err != nil {
		t.Fatalf("RunCommand: %v (a non-zero exit is not an error)", err)
	}
	if res.ExitCode != 7 || !reflect.DeepEqual(res.Stdout, []string{"bye"}) || !reflect.DeepEqual(res.Stderr, []string{"oops"}) {
		t.Fatalf("result = %+v", res)
	}
	// A program that does not exist fails like in a shell, or as a
	// not-found exit code; it must not break the sandbox.
	res, err = c.RunCommand(t.Context(), sb.ID, sdbx.Command{Args: []string{"/no/such/program"}})
	if err == nil && res.ExitCode == 0 {
		t.Fatalf("running a missing program succeeded: %+v", res)
	}
	res, err = c.RunCommand(t.Context(), sb.ID, sdbx.Command{Args: []string{"true"}})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("true after a failure = %+v, %v", res, err)
	}
}

func TestSDKTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	var lines []string
	_, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{Command: "echo started; sleep 30; echo never", Timeout: time.Second},
		sdbx.OnStdout(func(l sdbx.OutputLine) { lines = append(lines, l.Line) }))
	var te *sdbx.TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, sdbx.ErrTimeout) || te.Code != sdbx.CodeTimeout {
		t.Fatalf("RunCommand past its timeout = %v (%T), want *TimeoutError", err, err)
	}
	if !reflect.DeepEqual(lines, []string{"started"}) {
		t.Fatalf("streamed before the timeout: %q", lines)
	}
	// A command that prints nothing before its timeout gets the timeout as
	// an ordinary HTTP error (no stream was started); same error for the
	// caller.
	_, err = c.RunCommand(t.Context(), sb.ID, sdbx.Command{Args: []string{"sleep", "30"}, Timeout: 500 * time.Millisecond})
	if !errors.As(err, &te) || !errors.Is(err, sdbx.ErrTimeout) {
		t.Fatalf("silent RunCommand past its timeout = %v (%T), want *TimeoutError", err, err)
	}
	// The sandbox is usable afterwards and the killed commands are gone.
	res, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{Command: `for f in /proc/[0-9]*/comm; do ` +
		`[ "$(cat "$f" 2>/dev/null)" = sleep ] && echo "sleeping: $f"; done; echo checked`})
	if err != nil || !reflect.DeepEqual(res.Stdout, []string{"checked"}) {
		t.Fatalf("after timeout = %+v, %v", res, err)
	}
}

func TestSDKUnknownSandbox(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	const id = "sb-doesnotexist"
	check := func(op string, err error) {
		t.Helper()
		var se *sdbx.SandboxError
		if !errors.Is(err, sdbx.ErrNotFound) || !errors.As(err, &se) || se.StatusCode != 404 || se.SandboxID != id {
			t.Errorf("%s = %v (%T), want *SandboxError not_found", op, err, err)
		}
	}
	_, err := c.GetSandbox(t.Context(), id)
	check("GetSandbox", err)
	check("DeleteSandbox", c.DeleteSandbox(t.Context(), id))
	_, err = c.RunCommand(t.Context(), id, sdbx.Command{Args: []string{"true"}})
	check("RunCommand", err)
}

func TestSDKInvalidInput(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	tests := []struct {
		name  string
		opts  sdbx.CreateSandboxOptions
		field string
	}{
		{"empty templateId", sdbx.CreateSandboxOptions{}, "templateId"},
		{"negative expiry", sdbx.CreateSandboxOptions{TemplateID: "python-3-11", Expiry: -time.Second}, "expiryTime"},
		{"expiry over 7 days", sdbx.CreateSandboxOptions{TemplateID: "python-3-11", Expiry: 8 * 24 * time.Hour}, "expiryTime"},
		{"env name with =", sdbx.CreateSandboxOptions{TemplateID: "python-3-11", Env: map[string]string{"A=B": "x"}}, "initialEnvVars"},
		{"env name with digit first", sdbx.CreateSandboxOptions{TemplateID: "python-3-11", Env: map[string]string{"1A": "x"}}, "initialEnvVars"},
		{"oversized name", sdbx.CreateSandboxOptions{TemplateID: "python-3-11", Name: strings.Repeat("n", 129)}, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb, err := c.CreateSandbox(t.Context(), tt.opts)
			if err == nil {
				_ = c.DeleteSandbox(context.WithoutCancel(t.Context()), sb.ID)
				t.Fatalf("CreateSandbox(%+v) succeeded", tt.opts)
			}
			var se *sdbx.SandboxError
			if !errors.Is(err, sdbx.ErrInvalidArgument) || !errors.As(err, &se) || se.StatusCode != 400 ||
				!strings.Contains(se.Message, tt.field) {
				t.Fatalf("CreateSandbox = %v (%T), want invalid_argument naming %q", err, err, tt.field)
			}
		})
	}
	if _, err := c.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: "no-such-template"}); !errors.Is(err, sdbx.ErrNotFound) {
		t.Errorf("CreateSandbox(unknown template) = %v, want ErrNotFound", err)
	}

	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	cmds := []struct {
		name  string
		cmd   sdbx.Command
		field string
	}{
		{"neither command nor args", sdbx.Command{}, "command"},
		{"both command and args", sdbx.Command{Command: "true", Args: []string{"true"}}, "args"},
		{"relative cwd", sdbx.Command{Args: []string{"true"}, Cwd: "tmp"}, "cwd"},
		{"timeout over 24h", sdbx.Command{Args: []string{"true"}, Timeout: 25 * time.Hour}, "timeoutMs"},
		{"bad env name", sdbx.Command{Args: []string{"true"}, Env: map[string]string{"A B": "x"}}, "envs"},
	}
	for _, tt := range cmds {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.RunCommand(t.Context(), sb.ID, tt.cmd)
			if !errors.Is(err, sdbx.ErrInvalidArgument) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("RunCommand(%+v) = %v, want invalid_argument naming %q", tt.cmd, err, tt.field)
			}
		})
	}
}

func TestSDKWrongKey(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, key := range []string{"", "wrong-key"} {
		c := e.clientWithKey(t, key)
		_, err := c.ListSandboxes(t.Context())
		var se *sdbx.Error
		if !errors.Is(err, sdbx.ErrUnauthenticated) || !errors.As(err, &se) || se.StatusCode != 401 {
			t.Errorf("ListSandboxes with key %q = %v, want unauthenticated", key, err)
		}
		_, err = c.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
		if !errors.Is(err, sdbx.ErrUnauthenticated) {
			t.Errorf("CreateSandbox with key %q = %v, want unauthenticated", key, err)
		}
	}
}

func TestSDKListGetDelete(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	a := e.sandbox(t, sdbx.CreateSandboxOptions{Name: "list-a"})
	b := e.sandbox(t, sdbx.CreateSandboxOptions{Name: "list-b", Expiry: time.Hour})

	list, err := c.ListSandboxes(t.Context())
	if err != nil {
		t.Fatalf("ListSandboxes: %v", err)
	}
	for _, want := range []*sdbx.Sandbox{a, b} {
		i := slices.IndexFunc(list, func(s sdbx.Sandbox) bool { return s.ID == want.ID })
		if i < 0 || list[i].Name != want.Name || list[i].TemplateID != "python-3-11" {
			t.Fatalf("sandbox %s not listed as created: %+v", want.ID, list)
		}
	}

	got, err := c.GetSandbox(t.Context(), b.ID)
	if err != nil {
		t.Fatalf("GetSandbox: %v", err)
	}
	if got.ID != b.ID || got.Status != sdbx.StatusReady || got.ExpiresAt == nil ||
		got.ExpiresAt.Sub(got.CreatedAt).Round(time.Second) != time.Hour || got.CreatedAt.IsZero() {
		t.Fatalf("GetSandbox = %+v (expiresAt %v)", got, got.ExpiresAt)
	}
	if a.ExpiresAt != nil {
		// The test server runs with the default --default-expiry, 0: never.
		t.Fatalf("sandbox without expiry has expiresAt %v", a.ExpiresAt)
	}

	if err := c.DeleteSandbox(t.Context(), a.ID); err != nil {
		t.Fatalf("DeleteSandbox: %v", err)
	}
	got, err = c.GetSandbox(t.Context(), a.ID)
	if err == nil && got.Status != sdbx.StatusTerminated {
		t.Fatalf("GetSandbox after delete = %+v, want not found or terminated", got)
	}
	if err != nil && !isGone(err) {
		t.Fatalf("GetSandbox after delete = %v", err)
	}
	list, err = c.ListSandboxes(t.Context())
	if err != nil {
		t.Fatalf("ListSandboxes: %v", err)
	}
	for _, s := range list {
		if s.ID == a.ID && s.Status != sdbx.StatusTerminated {
			t.Fatalf("deleted sandbox still listed as %q", s.Status)
		}
	}
	if _, err := c.RunCommand(t.Context(), a.ID, sdbx.Command{Args: []string{"true"}}); !isGone(err) && !errors.Is(err, sdbx.ErrConflict) {
		t.Fatalf("RunCommand in a deleted sandbox = %v, want not_found or conflict", err)
	}
}

func TestSDKExpiry(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{Expiry: time.Second})
	if sb.ExpiresAt == nil {
		t.Fatalf("created sandbox has no expiresAt: %+v", sb)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := c.GetSandbox(t.Context(), sb.ID)
		if isGone(err) || (err == nil && got.Status == sdbx.StatusTerminated) {
			break
		}
		if err != nil {
			t.Fatalf("GetSandbox: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox still %q two minutes after its 1s expiry", got.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{Args: []string{"true"}}); !isGone(err) && !errors.Is(err, sdbx.ErrConflict) {
		t.Fatalf("RunCommand in an expired sandbox = %v, want not_found or conflict", err)
	}
}

func TestSDKLargeOutputIsTruncatedButStreamed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{})
	const n = 25000
	streamed, next := 0, 1
	res, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{Args: []string{"seq", "1", fmt.Sprint(n)}},
		sdbx.OnStdout(func(l sdbx.OutputLine) {
			if l.Line != fmt.Sprint(next) && !t.Failed() {
				t.Errorf("streamed line %d is %q", next, l.Line)
			}
			streamed++
			next++
		}))
	if err != nil {
		t.Fatalf("RunCommand: %v", err)
	}
	if streamed != n {
		t.Fatalf("streamed %d lines, want %d", streamed, n)
	}
	if !res.Truncated || len(res.Stdout) != 10000 || res.Stdout[0] != "1" || res.Stdout[9999] != "10000" {
		t.Fatalf("result: truncated=%v, %d lines", res.Truncated, len(res.Stdout))
	}
}

func TestSDKResources(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	sb := e.sandbox(t, sdbx.CreateSandboxOptions{TemplateID: "python-3-11", Resources: sdbx.Resources{PIDs: 24, MemoryMB: 96}})
	if sb.Resources.PIDs != 24 || sb.Resources.MemoryMB != 96 || sb.Resources.CPU <= 0 {
		t.Fatalf("created with resources %+v", sb.Resources)
	}
	// The pids limit is real: 40 background sleeps can't all start.
	res, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{Command: "n=0; for i in $(seq 40); do sleep 5 & [ $? -eq 0 ] && n=$((n+1)); done 2>/dev/null; echo started"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stderr) == 0 && res.ExitCode == 0 && len(res.Stdout) == 1 {
		// bash reports fork failures on stderr; none means the limit did not apply.
		t.Fatalf("40 processes started under pids=24: %+v", res)
	}
	for _, bad := range []sdbx.Resources{{PIDs: 1 << 30}, {MemoryMB: 1}, {CPU: 1000}} {
		_, err := c.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: "python-3-11", Resources: bad})
		if !errors.Is(err, sdbx.ErrInvalidArgument) || !strings.Contains(err.Error(), "resources.") {
			t.Errorf("resources %+v: %v, want invalid argument naming the field", bad, err)
		}
	}
	resp := e.do(t, "POST", "/v1/sandboxes", "bearer", `{"templateId":"python-3-11","resources":{"diskMb":1}}`, nil)
	if resp.status != 400 || !strings.Contains(string(resp.body), "diskMb") {
		t.Errorf("diskMb: %d %s", resp.status, resp.body)
	}
}
