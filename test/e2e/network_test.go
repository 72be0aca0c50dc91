package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/sdbx/sdbx/internal/network"
	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// TestNetworkSurvivesRestart kills the server while sandboxes with egress
// internet and allowlist run, restarts it and checks that the adopted
// sandboxes keep their policies (the new server's DNS proxy answers them,
// the allowlist still refuses other names), and that deleting them leaves
// no link or nftables table behind.
func TestNetworkSurvivesRestart(t *testing.T) {
	t.Parallel()
	e := setup(t)
	dir := filepath.Join(t.TempDir(), "data")
	key := RandomKey()
	start := func() (*Server, *sdbx.Client) {
		srv, err := StartServer(t.Context(), ServerOptions{Bin: e.bin, DataDir: dir, APIKey: key, Args: []string{"--pool", "none"}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := sdbx.New(sdbx.Config{ServerURL: srv.URL, APIKey: key, Timeout: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return srv, c
	}
	srv, c := start()
	inet, err := c.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
	if err != nil {
		t.Fatal(err)
	}
	allow, err := c.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: "python-3-11",
		Network: sdbx.Network{Egress: sdbx.EgressAllowlist, Allow: []string{"registry.npmjs.org"}}})
	if err != nil {
		t.Fatal(err)
	}
	probe := func(c *sdbx.Client, id string, args ...string) string {
		t.Helper()
		out, err := NetProbe(t.Context(), c, id, args...)
		if err != nil {
			t.Fatalf("probe %v: %v", args, err)
		}
		return out
	}
	if got := probe(c, allow.ID, "resolve", "registry.npmjs.org"); strings.HasPrefix(got, "ERR") {
		t.Fatalf("before the restart: resolve = %q", got)
	}
	srv.kill(t)

	srv, c = start()
	defer func() {
		if err := srv.Stop(30 * time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
		tag := network.Tag(dir)
		ifs, _ := net.Interfaces()
		for _, i := range ifs {
			if strings.HasPrefix(i.Name, "s"+tag[:4]) {
				t.Errorf("link %s left after the sandboxes were deleted", i.Name)
			}
		}
		conn, err := nftables.New()
		if err != nil {
			t.Fatal(err)
		}
		tables, _ := conn.ListTables()
		for _, tb := range tables {
			if tb.Name == "sdbx_"+tag {
				t.Errorf("nftables table %s left after the server stopped", tb.Name)
			}
		}
	}()
	for _, sb := range []*sdbx.Sandbox{inet, allow} {
		got, err := c.GetSandbox(t.Context(), sb.ID)
		if err != nil || got.Status != sdbx.StatusReady || got.Network.Egress != sb.Network.Egress {
			t.Fatalf("%s after restart: %+v, %v", sb.ID, got, err)
		}
	}
	if got := probe(c, inet.ID, "get", "https://registry.npmjs.org/is-number"); got != "200" {
		t.Errorf("internet after restart: GET = %q, want 200", got)
	}
	if got := probe(c, allow.ID, "resolve", "registry.npmjs.org"); strings.HasPrefix(got, "ERR") {
		t.Errorf("allowlist after restart: resolve registry.npmjs.org = %q", got)
	}
	if got := probe(c, allow.ID, "resolve", "deb.debian.org"); !strings.HasPrefix(got, "ERR") {
		t.Errorf("allowlist after restart: resolve deb.debian.org = %q; want refused", got)
	}
	for _, sb := range []*sdbx.Sandbox{inet, allow} {
		if err := c.DeleteSandbox(t.Context(), sb.ID); err != nil {
			t.Errorf("delete %s: %v", sb.ID, err)
		}
	}
}

// TestTemplateBuildReachesRegistry builds a template whose dependency is
// downloaded from the npm registry: build sandboxes have egress internet.
func TestTemplateBuildReachesRegistry(t *testing.T) {
	t.Parallel()
	e := setup(t)
	body := `{"name": "npm-dep-` + RandomKey()[:8] + `", "language": "javascript", "dependencies": ["is-number"]}`
	r := e.do(t, http.MethodPost, "/v1/templates", "bearer", body, nil)
	var tmpl struct{ ID, Status, Error string }
	if err := json.Unmarshal(r.body, &tmpl); err != nil || r.status != http.StatusCreated {
		t.Fatalf("create template: %d %s", r.status, r.body)
	}
	defer e.do(t, http.MethodDelete, "/v1/templates/"+tmpl.ID, "bearer", "", nil)
	for tmpl.Status == "building" {
		select {
		case <-t.Context().Done():
			t.Fatal("template still building")
		case <-time.After(200 * time.Millisecond):
		}
		r = e.do(t, http.MethodGet, "/v1/templates/"+tmpl.ID, "bearer", "", nil)
		if err := json.Unmarshal(r.body, &tmpl); err != nil {
			t.Fatalf("get template: %d %s", r.status, r.body)
		}
	}
	if tmpl.Status != "ready" {
		t.Fatalf("template build: %s: %s", tmpl.Status, tmpl.Error)
	}
	c := e.client(t)
	sb, err := c.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: tmpl.ID, Network: sdbx.Network{Egress: sdbx.EgressNone}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.DeleteSandbox(context.WithoutCancel(t.Context()), sb.ID)
	res, err := c.RunCommand(t.Context(), sb.ID, sdbx.Command{Args: []string{"node", "-e", "console.log(require('is-number')(5))"}})
	if err != nil || res.ExitCode != 0 || strings.Join(res.Stdout, "") != "true" {
		t.Errorf("require('is-number') in the built template: %+v, %v", res, err)
	}
}
