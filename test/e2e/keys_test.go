package e2e

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdbx "github.com/sdbx/sdbx/sdk/go"
)

func TestKeysAndTenants(t *testing.T) {
	t.Parallel()
	e := setup(t)
	admin := e.client(t)
	name := "e2e-tenant-" + RandomKey()[10:22]
	key, secret, err := admin.CreateKey(t.Context(), name)
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	if key.Name != name || key.Admin || !strings.HasPrefix(secret, "sdbx_") {
		t.Fatalf("created %+v / %q", key, secret)
	}
	tenant := e.clientWithKey(t, secret)
	sb, err := tenant.CreateSandbox(t.Context(), sdbx.CreateSandboxOptions{TemplateID: "python-3-11"})
	if err != nil {
		t.Fatalf("tenant CreateSandbox: %v", err)
	}

	// Another tenant (the admin's) sees nothing of it.
	if _, err := admin.GetSandbox(t.Context(), sb.ID); !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("admin GetSandbox of a tenant's sandbox: %v, want not found", err)
	}
	if _, err := admin.RunCommand(t.Context(), sb.ID, sdbx.Command{Args: []string{"true"}}); !errors.Is(err, sdbx.ErrNotFound) {
		t.Fatalf("admin RunCommand in a tenant's sandbox: %v, want not found", err)
	}
	list, err := admin.ListSandboxes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.ID == sb.ID {
			t.Fatal("admin's list shows the tenant's sandbox")
		}
	}
	// A tenant key can't manage keys.
	if _, _, err := tenant.CreateKey(t.Context(), "x"); !errors.Is(err, sdbx.ErrPermissionDenied) {
		t.Fatalf("tenant CreateKey: %v, want permission denied", err)
	}
	keys, err := admin.ListKeys(t.Context())
	if err != nil || !containsKey(keys, key.ID) {
		t.Fatalf("ListKeys = %+v, %v", keys, err)
	}

	if err := tenant.DeleteSandbox(t.Context(), sb.ID); err != nil {
		t.Fatalf("tenant DeleteSandbox: %v", err)
	}
	// The CLI lists it too, then revokes it by name.
	if r := e.cli(t, "key", "ls"); r.code != 0 || !strings.Contains(r.stdout, name) {
		t.Fatalf("sdbx key ls: %s", r)
	}
	if r := e.cli(t, "key", "rm", name); r.code != 0 {
		t.Fatalf("sdbx key rm: %s", r)
	}
	if _, err := tenant.ListSandboxes(t.Context()); !errors.Is(err, sdbx.ErrUnauthenticated) {
		t.Fatalf("revoked key: %v, want unauthenticated", err)
	}
}

func TestCLIKeyCreatePrintsOnlyTheSecret(t *testing.T) {
	t.Parallel()
	e := setup(t)
	name := "e2e-cli-key-" + RandomKey()[10:22]
	r := e.cli(t, "key", "create", "--name", name)
	if r.code != 0 {
		t.Fatalf("sdbx key create: %s", r)
	}
	secret := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(secret, "sdbx_") || strings.Contains(secret, "\n") {
		t.Fatalf("stdout = %q, want only the secret", r.stdout)
	}
	if _, err := e.clientWithKey(t, secret).ListSandboxes(t.Context()); err != nil {
		t.Fatalf("new key refused: %v", err)
	}
	if r := e.cliWithKey(t, secret, "key", "ls"); r.code != 4 {
		t.Fatalf("tenant key ls: %s, want exit 4 (permission denied)", r)
	}
	if r := e.cli(t, "key", "rm", name); r.code != 0 {
		t.Fatalf("sdbx key rm: %s", r)
	}
}

func containsKey(keys []sdbx.APIKey, id string) bool {
	for _, k := range keys {
		if k.ID == id {
			return true
		}
	}
	return false
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	srv, err := StartServer(t.Context(), ServerOptions{
		Bin: e.bin, DataDir: filepath.Join(t.TempDir(), "data"), APIKey: RandomKey(),
		Args: []string{"--rate-limit", "1", "--rate-burst", "3", "--pool", "none"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(30 * time.Second)
	c, err := sdbx.New(sdbx.Config{ServerURL: srv.URL, APIKey: srv.APIKey, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	var rl *sdbx.RateLimitError
	for i := 0; i < 10 && rl == nil; i++ {
		_, err := c.ListSandboxes(t.Context())
		if err != nil && !errors.As(err, &rl) {
			t.Fatalf("request %d: %v, want success or a rate limit", i, err)
		}
	}
	if rl == nil {
		t.Fatal("10 requests at once with --rate-limit 1 --rate-burst 3 were never limited")
	}
	if rl.RetryAfter <= 0 || rl.RetryAfter > 2*time.Second || !errors.Is(rl, sdbx.ErrRateLimited) {
		t.Fatalf("RateLimitError = %+v", rl)
	}
	// Health needs no key and is never limited.
	for i := 0; i < 5; i++ {
		if _, err := c.Health(t.Context()); err != nil {
			t.Fatalf("health limited: %v", err)
		}
	}
	time.Sleep(rl.RetryAfter)
	if _, err := c.ListSandboxes(t.Context()); err != nil {
		t.Fatalf("after waiting RetryAfter: %v", err)
	}
}
