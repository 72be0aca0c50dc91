package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// templateServer serves GET /v1/templates two templates a page, whatever
// pageSize says, so that `template ls` has to follow the pages.
func templateServer(t *testing.T) string {
	all := []sdbx.Template{
		{ID: "python-3-11", Name: "Python 3.11", Language: "python", Version: "3.11.2", Status: "ready", BuiltIn: true},
		{ID: "nodejs-18", Name: "Node.js 18", Language: "javascript", Version: "18", Status: "pending", BuiltIn: true},
		{ID: "tpl-abc", Name: "broken\tone", Language: "python", Version: "3.11", Status: "failed", Error: "installCommand exited with code 3:\nboom"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/templates" || r.Header.Get("Authorization") != "Bearer k" {
			w.WriteHeader(404)
			return
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		start := min((page-1)*2, len(all))
		end := min(start+2, len(all))
		json.NewEncoder(w).Encode(sdbx.TemplatePage{Templates: all[start:end], Total: len(all), Page: page, PageSize: 2})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCLITemplateList(t *testing.T) {
	env := cliEnv{URL: templateServer(t), APIKey: "k"}
	code, out, errOut := runCLI(t, env, "template", "ls")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || errOut != "" || len(lines) != 4 {
		t.Fatalf("ls: code=%d err=%q out=\n%s", code, errOut, out)
	}
	if got := strings.Join(strings.Fields(lines[0]), " "); got != "ID NAME LANGUAGE VERSION STATUS ERROR" {
		t.Errorf("header %q", got)
	}
	if got := strings.Join(strings.Fields(lines[3]), " "); got != "tpl-abc broken one python 3.11 failed installCommand exited with code 3: boom" {
		t.Errorf("failed template row %q", got)
	}
	code, out, _ = runCLI(t, env, "template", "ls", "--json")
	var list []sdbx.Template
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 3 || list[1].Status != "pending" {
		t.Errorf("ls --json: code=%d %v %+v", code, err, list)
	}
}

func TestCLITemplateUsage(t *testing.T) {
	for _, args := range [][]string{
		{"template"},
		{"template", "nope"},
		{"template", "build"},
		{"template", "build", "--all", "nodejs-18"},
		{"template", "ls", "extra"},
	} {
		code, _, errOut := runCLI(t, cliEnv{URL: "http://127.0.0.1:1", APIKey: "k"}, args...)
		if code != exitUsage || !strings.HasPrefix(errOut, "sdbx: ") {
			t.Errorf("%q: code %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
}
