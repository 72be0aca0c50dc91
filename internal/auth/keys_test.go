package auth_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/store/sqlite"
)

func openStore(t *testing.T) *sqlite.Store {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sdbx.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestGeneratedAdminKeyIsShownOnceAndWorks(t *testing.T) {
	s := openStore(t)
	key, err := auth.EnsureAdmin(t.Context(), s, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "sdbx_") || len(key) != 45 {
		t.Fatalf("generated key %q", key)
	}
	again, err := auth.EnsureAdmin(t.Context(), s, "")
	if err != nil || again != "" {
		t.Fatalf("second start generated %q, %v; want nothing", again, err)
	}
	p, err := auth.NewKeys(s).Authenticate(t.Context(), key)
	if err != nil || !p.Admin || p.Tenant != auth.DefaultTenant {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	stored, err := s.KeyByID(t.Context(), auth.AdminKeyID)
	if err != nil || stored.Hash == key || strings.Contains(stored.Hash, key) {
		t.Fatalf("key stored in the clear: %+v, %v", stored, err)
	}
}

func TestEnvKeyReplacesAdminKey(t *testing.T) {
	s := openStore(t)
	old, err := auth.EnsureAdmin(t.Context(), s, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.EnsureAdmin(t.Context(), s, "from-env"); err != nil {
		t.Fatal(err)
	}
	keys := auth.NewKeys(s)
	if _, err := keys.Authenticate(t.Context(), "from-env"); err != nil {
		t.Fatalf("env key refused: %v", err)
	}
	if _, err := keys.Authenticate(t.Context(), old); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Fatalf("replaced key still accepted: %v", err)
	}
}

func TestAuthenticateRejects(t *testing.T) {
	s := openStore(t)
	if _, err := auth.EnsureAdmin(t.Context(), s, "right"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "wrong", "right "} {
		if _, err := auth.NewKeys(s).Authenticate(t.Context(), key); !errors.Is(err, errdefs.ErrUnauthenticated) {
			t.Errorf("Authenticate(%q) = %v, want unauthenticated", key, err)
		}
	}
}

func TestKeyManagement(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	if _, err := auth.EnsureAdmin(ctx, s, "root-key"); err != nil {
		t.Fatal(err)
	}
	keys := auth.NewKeys(s)
	admin, err := keys.Authenticate(ctx, "root-key")
	if err != nil {
		t.Fatal(err)
	}
	var revoked []string
	keys.OnRevoke(func(k auth.Key) { revoked = append(revoked, k.ID) })

	secret, key, err := keys.Create(ctx, admin, "ci-runner")
	if err != nil {
		t.Fatal(err)
	}
	p, err := keys.Authenticate(ctx, secret)
	if err != nil || p.Admin || p.Tenant == admin.Tenant || p.KeyID != key.ID {
		t.Fatalf("new key authenticates as %+v, %v; want its own non-admin tenant", p, err)
	}
	if _, _, err := keys.Create(ctx, p, "sneaky"); !errors.Is(err, errdefs.ErrPermissionDenied) {
		t.Fatalf("non-admin create: %v", err)
	}
	if _, err := keys.List(ctx, p); !errors.Is(err, errdefs.ErrPermissionDenied) {
		t.Fatalf("non-admin list: %v", err)
	}
	if _, _, err := keys.Create(ctx, admin, "ci-runner"); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("duplicate name: %v", err)
	}
	for _, bad := range []string{"", "has space", "-leading", strings.Repeat("x", 65)} {
		if _, _, err := keys.Create(ctx, admin, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Create(%q): %v, want invalid argument", bad, err)
		}
	}
	list, err := keys.List(ctx, admin)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if _, err := keys.Revoke(ctx, admin, auth.AdminKeyID); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("revoking the admin key: %v", err)
	}
	if _, err := keys.Revoke(ctx, admin, "ci-runner"); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(ctx, secret); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Fatalf("revoked key still accepted: %v", err)
	}
	if len(revoked) != 1 || revoked[0] != key.ID {
		t.Fatalf("revoke hooks saw %v", revoked)
	}
	if _, err := keys.Revoke(ctx, admin, "ci-runner"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
}
