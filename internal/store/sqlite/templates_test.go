package sqlite

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
	"github.com/sdbx/sdbx/internal/template"
)

func TestTemplateRecords(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "sdbx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	tp := template.Template{
		ID: "tpl-1", Tenant: "t1", Name: "ml", Language: "python", Version: "3.11",
		Dependencies: []string{"pandas"}, DefaultEnv: map[string]string{"A": "1"}, DefaultCwd: "/workspace",
		Status: template.StatusBuilding, DockerImage: "127.0.0.1:5000/x:v1", InstallCommand: "true",
		CreatedAt: now, UpdatedAt: now,
	}
	if err := s.CreateTemplate(ctx, tp); err != nil {
		t.Fatal(err)
	}
	for name, dup := range map[string]template.Template{
		"same id":               {ID: "tpl-1", Tenant: "t2", Name: "other", Language: "python", Status: "building"},
		"same name, same owner": {ID: "tpl-2", Tenant: "t1", Name: "ml", Language: "python", Status: "building"},
	} {
		if err := s.CreateTemplate(ctx, dup); !errors.Is(err, errdefs.ErrConflict) {
			t.Errorf("%s: %v, want conflict", name, err)
		}
	}
	if err := s.CreateTemplate(ctx, template.Template{ID: "tpl-3", Tenant: "t2", Name: "ml", Language: "python", Status: "building", CreatedAt: now.Add(time.Second)}); err != nil {
		t.Errorf("same name, other tenant: %v", err)
	}
	tp.Status, tp.Version, tp.BuildLog = template.StatusReady, "3.11.2", "log"
	tp.Layers = []template.Layer{{Target: "/", Source: "sha256:0123"}, {Target: "/usr", Source: template.SourceHost}}
	if err := s.UpdateTemplate(ctx, tp); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateTemplate(ctx, template.Template{ID: "nope"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("update unknown: %v, want not found", err)
	}
	list, err := s.ListTemplates(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
	got := list[0]
	if got.ID != "tpl-1" || got.Tenant != "t1" || got.Status != template.StatusReady || got.Version != "3.11.2" ||
		got.BuildLog != "log" || len(got.Layers) != 2 || got.Layers[1].Source != template.SourceHost ||
		got.Dependencies[0] != "pandas" || got.DefaultEnv["A"] != "1" || got.DockerImage != tp.DockerImage ||
		got.InstallCommand != "true" || !got.CreatedAt.Equal(now) {
		t.Errorf("round trip: %+v", got)
	}

	sb := sandbox.Sandbox{ID: "sb-1", Tenant: "t1", Name: "n", TemplateID: "tpl-1", Status: sandbox.StatusStopped,
		EnvVars: map[string]string{}, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountTemplateUsers(ctx, "tpl-1"); err != nil || n != 1 {
		t.Errorf("users of tpl-1: %d %v, want 1 (a stopped sandbox counts)", n, err)
	}
	sb.Status = sandbox.StatusTerminated
	s.UpdateSandbox(ctx, sb)
	if n, err := s.CountTemplateUsers(ctx, "tpl-1"); err != nil || n != 0 {
		t.Errorf("users of tpl-1: %d %v, want 0 (terminated sandboxes do not count)", n, err)
	}
	if err := s.DeleteTemplate(ctx, "tpl-1"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListTemplates(ctx); len(list) != 1 {
		t.Errorf("after delete: %d records", len(list))
	}
}
