// Package storetest is the conformance suite every store implementation
// runs: Run(t, newStore).
package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/runtime"
	"github.com/sdbx/sdbx/internal/sandbox"
)

// Store is what a store implementation provides.
type Store interface {
	sandbox.Store
	sandbox.ContextStore
	auth.KeyStore
}

// Run runs the suite against fresh stores made by newStore.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("SandboxRoundTrip", func(t *testing.T) { testSandboxRoundTrip(t, newStore(t)) })
	t.Run("SandboxList", func(t *testing.T) { testSandboxList(t, newStore(t)) })
	t.Run("SandboxExpiry", func(t *testing.T) { testSandboxExpiry(t, newStore(t)) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, newStore(t)) })
	t.Run("Contexts", func(t *testing.T) { testContexts(t, newStore(t)) })
}

func newSandbox(id, tenant string, created time.Time) sandbox.Sandbox {
	return sandbox.Sandbox{
		ID: id, Name: "name " + id, TemplateID: "python-3-11", Status: sandbox.StatusReady,
		EnvVars: map[string]string{"A": "1", "EMPTY": ""}, CreatedAt: created, UpdatedAt: created, Tenant: tenant,
	}
}

func testSandboxRoundTrip(t *testing.T, s Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	exp := now.Add(time.Hour)
	sb := newSandbox("sb-1", "t1", now)
	sb.ExpiresAt = &exp
	sb.Network = runtime.Network{Egress: runtime.EgressAllowlist, Allow: []string{"registry.npmjs.org", "203.0.113.0/24"}}
	if err := s.CreateSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSandbox(ctx, sb); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("duplicate create: got %v, want conflict", err)
	}
	got, err := s.GetSandbox(ctx, "sb-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != sb.Name || got.Tenant != "t1" || got.EnvVars["A"] != "1" || len(got.EnvVars) != 2 ||
		!got.CreatedAt.Equal(now) || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) ||
		got.Network.Egress != runtime.EgressAllowlist || !slices.Equal(got.Network.Allow, sb.Network.Allow) {
		t.Fatalf("round trip: got %+v, want %+v", got, sb)
	}
	got.Status, got.Error, got.ExpiresAt = sandbox.StatusError, "boom", nil
	if err := s.UpdateSandbox(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, err := s.GetSandbox(ctx, "sb-1")
	if err != nil {
		t.Fatal(err)
	}
	if again.Status != sandbox.StatusError || again.Error != "boom" || again.ExpiresAt != nil {
		t.Fatalf("after update: %+v", again)
	}
	if err := s.UpdateSandbox(ctx, newSandbox("sb-missing", "t1", now)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("update missing: got %v, want not found", err)
	}
	if _, err := s.GetSandbox(ctx, "sb-missing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("get missing: got %v, want not found", err)
	}
	if err := s.DeleteSandbox(ctx, "sb-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSandbox(ctx, "sb-1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("get deleted: got %v, want not found", err)
	}
}

func testSandboxList(t *testing.T, s Store) {
	ctx := t.Context()
	base := time.Now().UTC().Truncate(time.Millisecond)
	for i, id := range []string{"a", "b", "c"} {
		if err := s.CreateSandbox(ctx, newSandbox(id, "t1", base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSandbox(ctx, newSandbox("other", "t2", base)); err != nil {
		t.Fatal(err)
	}
	term := newSandbox("gone", "t1", base)
	term.Status = sandbox.StatusTerminated
	if err := s.CreateSandbox(ctx, term); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListSandboxes(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, sb := range list {
		ids = append(ids, sb.ID)
	}
	if len(ids) != 3 || ids[0] != "c" || ids[2] != "a" {
		t.Fatalf("list t1 = %v, want [c b a]", ids)
	}
	all, err := s.ListSandboxes(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("list all = %d records, want 4", len(all))
	}
	if err := s.PruneTerminated(ctx, base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSandbox(ctx, "gone"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("pruned record still there: %v", err)
	}
	if _, err := s.GetSandbox(ctx, "a"); err != nil {
		t.Fatalf("prune removed a live record: %v", err)
	}
}

func testSandboxExpiry(t *testing.T, s Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	for id, exp := range map[string]*time.Time{"expired": &past, "later": &future, "never": nil} {
		sb := newSandbox(id, "t1", now)
		sb.ExpiresAt = exp
		if err := s.CreateSandbox(ctx, sb); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ListExpired(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "expired" {
		t.Fatalf("expired = %+v, want only \"expired\"", got)
	}
}

func testKeys(t *testing.T, s Store) {
	ctx := t.Context()
	k := auth.Key{ID: "k1", Name: "ci", Hash: auth.Hash("secret"), Tenant: "t1", CreatedAt: time.Now().UTC()}
	if err := s.PutKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	got, err := s.KeyByHash(ctx, auth.Hash("secret"))
	if err != nil || got.ID != "k1" || got.Tenant != "t1" || got.Admin {
		t.Fatalf("KeyByHash = %+v, %v", got, err)
	}
	if _, err := s.KeyByHash(ctx, auth.Hash("other")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unknown hash: got %v, want not found", err)
	}
	dup := auth.Key{ID: "k2", Name: "ci", Hash: auth.Hash("x"), Tenant: "t2", CreatedAt: time.Now()}
	if err := s.PutKey(ctx, dup); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("duplicate name: got %v, want conflict", err)
	}
	k.Hash = auth.Hash("rotated")
	if err := s.PutKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KeyByHash(ctx, auth.Hash("secret")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("old secret still accepted after replace: %v", err)
	}
	if got, err := s.KeyByID(ctx, "k1"); err != nil || got.Hash != auth.Hash("rotated") {
		t.Fatalf("KeyByID = %+v, %v", got, err)
	}
}

func testContexts(t *testing.T, s Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := s.CreateSandbox(ctx, newSandbox("sb", "t1", now)); err != nil {
		t.Fatal(err)
	}
	def := sandbox.CodeContext{ID: "ctx-1", SandboxID: "sb", Language: "python", Cwd: "/workspace", EnvVars: map[string]string{"A": "1"}, CreatedAt: now, Default: true}
	if err := s.CreateContext(ctx, def); err != nil {
		t.Fatal(err)
	}
	second := def
	second.ID = "ctx-2"
	if err := s.CreateContext(ctx, second); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("second default python context: %v, want conflict", err)
	}
	second.Default, second.CreatedAt = false, now.Add(time.Second)
	if err := s.CreateContext(ctx, second); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetContext(ctx, "ctx-1")
	if err != nil || !got.Default || got.EnvVars["A"] != "1" || got.SandboxID != "sb" || !got.CreatedAt.Equal(now) {
		t.Fatalf("GetContext = %+v, %v", got, err)
	}
	list, err := s.ListContexts(ctx, "sb")
	if err != nil || len(list) != 2 || list[0].ID != "ctx-1" {
		t.Fatalf("ListContexts = %+v, %v", list, err)
	}
	if err := s.DeleteContext(ctx, "ctx-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetContext(ctx, "ctx-1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("deleted context: %v", err)
	}
	if err := s.DeleteSandbox(ctx, "sb"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetContext(ctx, "ctx-2"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("context outlived its sandbox record: %v", err)
	}
}
