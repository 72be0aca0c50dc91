package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

// TestTemplateBuildLogs builds a template whose installCommand prints a
// marker and one that fails, follows their logs through the Go SDK, and
// reads them again after the builds.
func TestTemplateBuildLogs(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.client(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	marker := "sdbx-build-marker-" + RandomKey()[:8]

	ok, err := c.CreateTemplate(ctx, sdbx.TemplateConfig{
		Name: "logs ok " + marker, Language: "python",
		InstallCommand: "echo " + marker + " && echo to-stderr >&2",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteTemplate(context.WithoutCancel(ctx), ok.ID) })
	bad, err := c.CreateTemplate(ctx, sdbx.TemplateConfig{
		Name: "logs bad " + marker, Language: "python",
		InstallCommand: "echo before-failure; echo it-broke >&2; exit 7",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteTemplate(context.WithoutCancel(ctx), bad.ID) })
	if ok.Status != sdbx.TemplateBuilding {
		t.Fatalf("created template status %q", ok.Status)
	}

	var lines []string
	end, err := c.TemplateLogs(ctx, ok.ID, true, func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(lines, "\n")
	if end.Status != sdbx.TemplateReady || !strings.Contains(all, marker) || !strings.Contains(all, "to-stderr") || !strings.Contains(all, "build done") {
		t.Fatalf("end %+v, log:\n%s", end, all)
	}

	lines = nil
	end, err = c.TemplateLogs(ctx, bad.ID, true, func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatal(err)
	}
	all = strings.Join(lines, "\n")
	if end.Status != sdbx.TemplateFailed || !strings.Contains(end.Error, "exited with code 7") ||
		!strings.Contains(all, "before-failure") || !strings.Contains(all, "build failed") || !strings.Contains(all, "it-broke") {
		t.Fatalf("end %+v, log:\n%s", end, all)
	}
	// Read again after the build, without follow: the same lines.
	var again []string
	if _, err := c.TemplateLogs(ctx, bad.ID, false, func(l string) { again = append(again, l) }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(again, "\n") != all {
		t.Fatalf("log read after the build differs:\n%s\n---\n%s", strings.Join(again, "\n"), all)
	}

	// The CLI prints the same log; -f fails for a failed build.
	if r := e.cli(t, "template", "logs", bad.ID); r.code != 0 || strings.TrimSuffix(r.stdout, "\n") != all {
		t.Fatalf("sdbx template logs: %s", r)
	}
	if r := e.cli(t, "template", "logs", "-f", bad.ID); r.code != 1 || !strings.Contains(r.stderr, "exited with code 7") {
		t.Fatalf("sdbx template logs -f of a failed build: %s", r)
	}

	// Get, list and delete through the Go SDK.
	got, err := c.GetTemplate(ctx, bad.ID)
	if err != nil || got.Status != sdbx.TemplateFailed {
		t.Fatalf("GetTemplate: %+v, %v", got, err)
	}
	page, err := c.ListTemplates(ctx, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, tp := range page.Templates {
		if tp.ID == ok.ID || tp.ID == bad.ID {
			found++
		}
	}
	if found != 2 {
		t.Fatalf("ListTemplates lists %d of the 2 templates", found)
	}
	if err := c.DeleteTemplate(ctx, bad.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TemplateLogs(ctx, bad.ID, false, nil); !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("logs of a deleted template: %v, want not_found", err)
	}
	if err := c.DeleteTemplate(ctx, "python-3-11"); !errors.Is(err, sdbx.ErrPermissionDenied) {
		t.Fatalf("delete built-in: %v, want permission_denied", err)
	}
}
