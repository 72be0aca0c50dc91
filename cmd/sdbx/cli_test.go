package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

func TestParseCommandLine(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		npos    int
		wantPos []string
		wantCmd []string
		wantEnv string
		wantErr string
	}{
		{"dash dash", []string{"sb-1", "--", "sh", "-c", "exit 3"}, 1, []string{"sb-1"}, []string{"sh", "-c", "exit 3"}, "", ""},
		{"flags before id", []string{"--env", "A=1", "--env=B=2", "sb-1", "--", "env"}, 1, []string{"sb-1"}, []string{"env"}, "A=1 B=2", ""},
		{"flags after id", []string{"sb-1", "--env", "A=1", "--", "env"}, 1, []string{"sb-1"}, []string{"env"}, "A=1", ""},
		{"no dash dash", []string{"sb-1", "echo", "-n", "--env"}, 1, []string{"sb-1"}, []string{"echo", "-n", "--env"}, "", ""},
		{"command flags untouched after dash dash", []string{"sb-1", "--", "ls", "--env", "X"}, 1, []string{"sb-1"}, []string{"ls", "--env", "X"}, "", ""},
		{"dash dash before id", []string{"--", "sb-1", "true"}, 1, []string{"sb-1"}, []string{"true"}, "", ""},
		{"run form", []string{"--env", "A=1", "--", "python3", "-c", "print(1)"}, 0, nil, []string{"python3", "-c", "print(1)"}, "A=1", ""},
		{"run without dash dash", []string{"python3", "-c", "print(1)"}, 0, nil, []string{"python3", "-c", "print(1)"}, "", ""},
		{"missing id", []string{}, 1, nil, nil, "", "exec: missing sandbox ID"},
		{"missing command", []string{"sb-1"}, 1, nil, nil, "", "exec: missing command after --"},
		{"missing command after dash dash", []string{"sb-1", "--"}, 1, nil, nil, "", "exec: missing command after --"},
		{"bad env", []string{"--env", "FOO", "sb-1", "--", "true"}, 1, nil, nil, "", `--env "FOO": want KEY=VALUE`},
		{"empty env name", []string{"--env", "=x", "sb-1", "--", "true"}, 1, nil, nil, "", `--env "=x": want KEY=VALUE`},
		{"unknown flag", []string{"--nope", "sb-1", "--", "true"}, 1, nil, nil, "", "exec: flag provided but not defined: -nope"},
		{"negative timeout", []string{"--timeout", "-1s", "sb-1", "--", "true"}, 1, nil, nil, "", `--timeout "-1s": must not be negative`},
		{"bad timeout", []string{"--timeout", "soon", "sb-1", "--", "true"}, 1, nil, nil, "", `--timeout "soon": want a duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlagSet("exec")
			env := envFlag{}
			fs.Var(env, "env", "")
			var timeout time.Duration
			durationVar(fs, &timeout, "timeout", "")
			pos, cmd, err := parseCommandLine(fs, "exec", tt.args, tt.npos)
			if tt.wantErr != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want usage error containing %q", err, tt.wantErr)
				}
				if exitCode(err) != exitUsage {
					t.Fatalf("exit code %d, want %d", exitCode(err), exitUsage)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(pos, tt.wantPos) || !reflect.DeepEqual(cmd, tt.wantCmd) {
				t.Fatalf("pos=%q cmd=%q, want pos=%q cmd=%q", pos, cmd, tt.wantPos, tt.wantCmd)
			}
			if env.String() != tt.wantEnv {
				t.Fatalf("env = %q, want %q", env.String(), tt.wantEnv)
			}
		})
	}
}

func TestParseInterspersed(t *testing.T) {
	fs := newFlagSet("sandbox status")
	asJSON := fs.Bool("json", false, "")
	pos, err := parseInterspersed(fs, "sandbox status", []string{"a", "--json", "b", "--", "--c"})
	if err != nil {
		t.Fatal(err)
	}
	if !*asJSON || !reflect.DeepEqual(pos, []string{"a", "b", "--c"}) {
		t.Fatalf("json=%v pos=%q", *asJSON, pos)
	}
}

func TestConnFlagsPrecedence(t *testing.T) {
	tests := []struct {
		name             string
		flagURL, flagKey string
		env              cliEnv
		wantURL, wantKey string
	}{
		{"defaults", "", "", cliEnv{}, defaultServerURL, ""},
		{"env", "", "", cliEnv{URL: "http://e:1", APIKey: "ek"}, "http://e:1", "ek"},
		{"flags win", "http://f:2", "fk", cliEnv{URL: "http://e:1", APIKey: "ek"}, "http://f:2", "fk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cf := &connFlags{url: tt.flagURL, apiKey: tt.flagKey}
			u, k := cf.resolve(tt.env)
			if u != tt.wantURL || k != tt.wantKey {
				t.Fatalf("resolve = %q, %q; want %q, %q", u, k, tt.wantURL, tt.wantKey)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"help", flag.ErrHelp, 0},
		{"usage", usagef("bad"), 2},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), 130},
		{"timeout", &sdbx.TimeoutError{Code: sdbx.CodeTimeout}, 124},
		{"invalid argument", &sdbx.SandboxError{Code: sdbx.CodeInvalidArgument}, 2},
		{"not found sandbox", &sdbx.SandboxError{Code: sdbx.CodeNotFound}, 3},
		{"not found template", &sdbx.Error{Code: sdbx.CodeNotFound}, 3},
		{"unauthenticated", &sdbx.Error{Code: sdbx.CodeUnauthenticated}, 4},
		{"permission denied", &sdbx.Error{Code: sdbx.CodePermissionDenied}, 4},
		{"connection", &sdbx.ConnectionError{Code: sdbx.CodeUnavailable}, 5},
		{"unavailable", &sdbx.Error{Code: sdbx.CodeUnavailable}, 5},
		{"rate limited", &sdbx.RateLimitError{Code: sdbx.CodeRateLimited}, 6},
		{"disk full", &sdbx.SandboxError{Code: sdbx.CodeResourceExhausted}, 7},
		{"conflict", &sdbx.SandboxError{Code: sdbx.CodeConflict}, 1},
		{"internal", &sdbx.Error{Code: sdbx.CodeInternal}, 1},
		{"wrapped", fmt.Errorf("delete: %w", &sdbx.Error{Code: sdbx.CodeNotFound}), 3},
		{"other", errors.New("x"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(tt.err); got != tt.want {
				t.Fatalf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
	for in, want := range map[int]int{0: 0, 3: 3, 255: 255, 256: 255, -1: 1, -9: 1} {
		if got := commandExitCode(in); got != want {
			t.Errorf("commandExitCode(%d) = %d, want %d", in, got, want)
		}
	}
}

// fakeServer is a tiny in-memory stand-in of the HTTP API for the CLI's
// unit tests. Commands (argv) understood: "echo ARGS..." prints ARGS as
// one stdout line and ARGS[0] on stderr; "exit N" exits N; "slow"
// fails with a timeout error after one line.
type fakeServer struct {
	t    *testing.T
	key  string
	mu   sync.Mutex
	seq  int
	sbs  map[string]sdbx.Sandbox
	reqs []string
	// expiries holds the expiryTime of each create, in order.
	expiries []int64
}

func newFakeServer(t *testing.T) (*fakeServer, string) {
	f := &fakeServer{t: t, key: "k", sbs: map[string]sdbx.Sandbox{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeServer) fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r.Method+" "+r.URL.Path)
	if r.Header.Get("Authorization") != "Bearer "+f.key {
		f.fail(w, 401, "unauthenticated", "missing or unknown API key")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
	switch {
	case r.Method == "POST" && len(parts) == 1 && parts[0] == "sandboxes":
		var body struct {
			TemplateID     string            `json:"templateId"`
			Name           string            `json:"name"`
			ExpiryTime     int64             `json:"expiryTime"`
			InitialEnvVars map[string]string `json:"initialEnvVars"`
			Network        sdbx.Network      `json:"network"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		f.expiries = append(f.expiries, body.ExpiryTime)
		if body.TemplateID != "python-3-11" {
			f.fail(w, 404, "not_found", "template "+body.TemplateID+": not found")
			return
		}
		f.seq++
		now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
		sb := sdbx.Sandbox{ID: "sb-" + strconv.Itoa(f.seq), Name: body.Name, TemplateID: body.TemplateID, Status: "ready",
			EnvVars: body.InitialEnvVars, CreatedAt: now, UpdatedAt: now, Network: body.Network}
		if body.ExpiryTime > 0 {
			exp := now.Add(time.Duration(body.ExpiryTime) * time.Millisecond)
			sb.ExpiresAt = &exp
		}
		f.sbs[sb.ID] = sb
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(map[string]any{"sandbox": sb})
	case r.Method == "GET" && len(parts) == 1 && parts[0] == "sandboxes":
		list := []sdbx.Sandbox{}
		for i := 1; i <= f.seq; i++ {
			if sb, ok := f.sbs["sb-"+strconv.Itoa(i)]; ok {
				list = append(list, sb)
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"sandboxes": list})
	case len(parts) >= 2 && parts[0] == "sandboxes":
		sb, ok := f.sbs[parts[1]]
		if !ok {
			f.fail(w, 404, "not_found", "sandbox "+parts[1]+": not found")
			return
		}
		switch {
		case r.Method == "GET" && len(parts) == 2:
			json.NewEncoder(w).Encode(sb)
		case r.Method == "DELETE" && len(parts) == 2:
			delete(f.sbs, sb.ID)
			w.WriteHeader(204)
		case r.Method == "POST" && len(parts) == 3 && parts[2] == "commands":
			f.command(w, r)
		default:
			f.fail(w, 404, "not_found", "no route")
		}
	default:
		f.fail(w, 404, "not_found", "no route")
	}
}

func (f *fakeServer) command(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Args []string          `json:"args"`
		Envs map[string]string `json:"envs"`
	}
	json.NewDecoder(r.Body).Decode(&body)
	if len(body.Args) == 0 {
		f.fail(w, 400, "invalid_argument", "args: must not be empty")
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	switch body.Args[0] {
	case "echo":
		line := strings.Join(body.Args[1:], " ")
		enc.Encode(map[string]any{"type": "stdout", "line": line, "timestamp": 1})
		enc.Encode(map[string]any{"type": "stderr", "line": "err:" + body.Args[1], "timestamp": 2})
		enc.Encode(map[string]any{"type": "result", "result": map[string]any{"exitCode": 0, "stdout": []string{line}, "stderr": []string{"x"}, "durationMs": 1}})
	case "exit":
		code, _ := strconv.Atoi(body.Args[1])
		enc.Encode(map[string]any{"type": "result", "result": map[string]any{"exitCode": code, "stdout": []string{}, "stderr": []string{}, "durationMs": 1}})
	case "slow":
		enc.Encode(map[string]any{"type": "stdout", "line": "started", "timestamp": 1})
		enc.Encode(map[string]any{"type": "error", "error": map[string]any{"code": "timeout", "message": "command: timed out after 1s"}})
	}
}

func (f *fakeServer) live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sbs)
}

// runCLI runs a verb against url with key k and returns exit code, stdout
// and stderr.
func runCLI(t *testing.T, env cliEnv, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{stdout: &out, stderr: &errOut, env: env}
	code := c.run(t.Context(), args[0], args[1:])
	return code, out.String(), errOut.String()
}

func TestCLIAgainstFakeServer(t *testing.T) {
	f, url := newFakeServer(t)
	env := cliEnv{URL: url, APIKey: "k"}

	code, out, errOut := runCLI(t, env, "sandbox", "create", "--name", "n1", "--env", "A=1", "--expiry", "1h",
		"--egress", "allowlist", "--allow", "registry.npmjs.org", "--allow", "203.0.113.0/24,*.example.org")
	if code != 0 || out != "sb-1\n" || errOut != "" {
		t.Fatalf("create: code=%d out=%q err=%q", code, out, errOut)
	}

	code, out, _ = runCLI(t, env, "sandbox", "ls")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "ID NAME TEMPLATE STATUS CREATED" ||
		strings.Join(strings.Fields(lines[1]), " ") != "sb-1 n1 python-3-11 ready 2026-11-26T09:00:00Z" {
		t.Fatalf("ls: code=%d out=%q", code, out)
	}

	code, out, _ = runCLI(t, env, "sandbox", "status", "sb-1")
	want := "id: sb-1\nname: n1\ntemplate: python-3-11\nstatus: ready\ncreated: 2026-11-26T09:00:00Z\n" +
		"updated: 2026-11-26T09:00:00Z\nexpires: 2026-11-26T10:00:00Z\n" +
		"network: allowlist registry.npmjs.org 203.0.113.0/24 *.example.org\nenv: A=1\n"
	if code != 0 || out != want {
		t.Fatalf("status: code=%d out=%q, want %q", code, out, want)
	}
	code, out, _ = runCLI(t, env, "sandbox", "status", "--json", "sb-1")
	var sb sdbx.Sandbox
	if err := json.Unmarshal([]byte(out), &sb); code != 0 || err != nil || sb.ID != "sb-1" || sb.EnvVars["A"] != "1" {
		t.Fatalf("status --json: code=%d out=%q err=%v", code, out, err)
	}

	code, out, errOut = runCLI(t, env, "exec", "sb-1", "--", "echo", "hello", "world")
	if code != 0 || out != "hello world\n" || errOut != "err:hello\n" {
		t.Fatalf("exec echo: code=%d out=%q err=%q", code, out, errOut)
	}
	code, _, errOut = runCLI(t, env, "exec", "sb-1", "--", "exit", "3")
	if code != 3 || errOut != "" {
		t.Fatalf("exec exit 3: code=%d err=%q", code, errOut)
	}
	code, out, errOut = runCLI(t, env, "exec", "sb-1", "--", "slow")
	if code != 124 || out != "started\n" || errOut != "sdbx: command: timed out after 1s\n" {
		t.Fatalf("exec timeout: code=%d out=%q err=%q", code, out, errOut)
	}

	code, _, errOut = runCLI(t, env, "sandbox", "rm", "sb-1")
	if code != 0 || errOut != "" || f.live() != 0 {
		t.Fatalf("rm: code=%d err=%q live=%d", code, errOut, f.live())
	}
	code, _, errOut = runCLI(t, env, "sandbox", "rm", "sb-1")
	if code != 3 || errOut != "sdbx: sandbox sb-1: not found\n" {
		t.Fatalf("rm again: code=%d err=%q", code, errOut)
	}
	code, _, errOut = runCLI(t, env, "exec", "sb-1", "--", "echo", "x")
	if code != 3 || errOut != "sdbx: sandbox sb-1: not found\n" {
		t.Fatalf("exec unknown: code=%d err=%q", code, errOut)
	}
}

func TestCLIRunDeletesItsSandbox(t *testing.T) {
	f, url := newFakeServer(t)
	env := cliEnv{URL: url, APIKey: "k"}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"success", []string{"run", "--template", "python-3-11", "--", "echo", "1"}, 0, "1\n", "err:1\n"},
		{"exit code", []string{"run", "--", "exit", "7"}, 7, "", ""},
		{"timeout", []string{"run", "--timeout", "1s", "--", "slow"}, 124, "started\n", "sdbx: command: timed out after 1s\n"},
		{"bad command", []string{"run", "--"}, 2, "", "sdbx: run: missing command after -- (see sdbx run -h)\n"},
		{"unknown template", []string{"run", "--template", "cobol", "--", "echo", "x"}, 3, "", "sdbx: template cobol: not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, env, tt.args...)
			if code != tt.wantCode || out != tt.wantOut || errOut != tt.wantErr {
				t.Fatalf("code=%d out=%q err=%q; want %d %q %q", code, out, errOut, tt.wantCode, tt.wantOut, tt.wantErr)
			}
			if n := f.live(); n != 0 {
				t.Fatalf("%d sandboxes left after run", n)
			}
		})
	}
	// run gives its sandbox an expiry as a safety net: the command's
	// timeout (default 60s) plus 10 minutes.
	f.mu.Lock()
	defer f.mu.Unlock()
	want := []int64{660000, 660000, 601000, 660000}
	if !reflect.DeepEqual(f.expiries, want) {
		t.Fatalf("expiryTime of the creates = %v, want %v", f.expiries, want)
	}
}

func TestCLIErrors(t *testing.T) {
	_, url := newFakeServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()
	tests := []struct {
		name     string
		env      cliEnv
		args     []string
		wantCode int
		wantErr  string // prefix of the one stderr line
	}{
		{"wrong key", cliEnv{URL: url, APIKey: "bad"}, []string{"sandbox", "ls"}, 4, "sdbx: missing or unknown API key"},
		{"flag key wins over env", cliEnv{URL: url, APIKey: "bad"}, []string{"sandbox", "ls", "--api-key", "k"}, 0, ""},
		{"no server", cliEnv{URL: deadURL}, []string{"sandbox", "ls"}, 5, "sdbx: GET /v1/sandboxes: dial tcp"},
		{"bad url", cliEnv{URL: "ftp://x"}, []string{"sandbox", "ls"}, 2, `sdbx: --url "ftp://x": scheme must be http or https`},
		{"unknown sub", cliEnv{URL: url}, []string{"sandbox", "frobnicate"}, 2, `sdbx: sandbox: unknown command "frobnicate"`},
		{"status without id", cliEnv{URL: url}, []string{"sandbox", "status"}, 2, "sdbx: sandbox status: want exactly one sandbox ID"},
		{"create with arg", cliEnv{URL: url}, []string{"sandbox", "create", "extra"}, 2, `sdbx: sandbox create: unexpected argument "extra"`},
		{"bad env", cliEnv{URL: url}, []string{"sandbox", "create", "--env", "FOO"}, 2, `sdbx: --env "FOO": want KEY=VALUE`},
		{"bad expiry", cliEnv{URL: url}, []string{"sandbox", "create", "--expiry", "-5m"}, 2, `sdbx: --expiry "-5m": must not be negative`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tt.env, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("code = %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
			if tt.wantErr == "" {
				if errOut != "" {
					t.Fatalf("stderr = %q, want none", errOut)
				}
				return
			}
			if !strings.HasPrefix(errOut, tt.wantErr) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("stderr = %q, want one line starting %q", errOut, tt.wantErr)
			}
		})
	}
}

func TestCLIHelp(t *testing.T) {
	for _, args := range [][]string{
		{"sandbox", "-h"}, {"sandbox", "create", "-h"}, {"sandbox", "ls", "--help"},
		{"sandbox", "status", "-h"}, {"sandbox", "rm", "-h"}, {"exec", "-h"}, {"run", "-h"},
	} {
		code, out, errOut := runCLI(t, cliEnv{APIKey: "secret-from-env"}, args...)
		if code != 0 || !strings.HasPrefix(out, "Usage: sdbx ") || errOut != "" {
			t.Errorf("%q: code=%d out=%q err=%q", args, code, out, errOut)
		}
		if strings.Contains(out, "secret-from-env") {
			t.Errorf("%q: help shows the API key from the environment", args)
		}
	}
	if _, ok := cliMain("serve", nil); ok {
		t.Fatal("cliMain claimed the serve verb")
	}
}
