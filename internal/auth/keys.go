package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
)

// Key is a stored API key. The secret itself is never stored, only Hash.
type Key struct {
	ID        string
	Name      string
	Hash      string
	Tenant    string
	Admin     bool
	CreatedAt time.Time
}

// KeyStore persists keys. Implementations: store/sqlite.
type KeyStore interface {
	// KeyByHash returns errdefs.ErrNotFound when no live key has the hash.
	KeyByHash(ctx context.Context, hash string) (Key, error)
	// PutKey inserts the key, or replaces the key with the same ID.
	PutKey(ctx context.Context, k Key) error
	// KeyByID returns errdefs.ErrNotFound for an unknown id.
	KeyByID(ctx context.Context, id string) (Key, error)
}

// AdminKeyID is the id of the key taken from SDBX_API_KEY or generated on
// first start.
const AdminKeyID = "admin"

// DefaultTenant owns what the admin key creates.
const DefaultTenant = "default"

// Hash returns the stored form of a key.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// NewKey returns a fresh random key ("sdbx_" + 40 hex digits).
func NewKey() (string, error) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return "sdbx_" + hex.EncodeToString(b[:]), nil
}

// Keys authenticates against a KeyStore. Every call reads the store, so a
// revoked key is refused at once.
type Keys struct {
	store KeyStore
}

var _ Authenticator = (*Keys)(nil)

// NewKeys returns an Authenticator backed by store.
func NewKeys(store KeyStore) *Keys { return &Keys{store: store} }

// Authenticate implements Authenticator.
func (k *Keys) Authenticate(ctx context.Context, key string) (Principal, error) {
	if key == "" {
		return Principal{}, fmt.Errorf("missing API key: %w", errdefs.ErrUnauthenticated)
	}
	stored, err := k.store.KeyByHash(ctx, Hash(key))
	if errors.Is(err, errdefs.ErrNotFound) {
		return Principal{}, fmt.Errorf("invalid API key: %w", errdefs.ErrUnauthenticated)
	}
	if err != nil {
		return Principal{}, err
	}
	return Principal{KeyID: stored.ID, Tenant: stored.Tenant, Admin: stored.Admin}, nil
}

// EnsureAdmin makes sure the admin key exists. When fromEnv is set it
// becomes the admin key (replacing a stored one). Otherwise a key is
// generated on first start and returned, so the caller can show it once;
// later starts return "".
func EnsureAdmin(ctx context.Context, store KeyStore, fromEnv string) (generated string, err error) {
	if fromEnv != "" {
		return "", store.PutKey(ctx, adminKey(fromEnv))
	}
	_, err = store.KeyByID(ctx, AdminKeyID)
	if err == nil {
		return "", nil
	}
	if !errors.Is(err, errdefs.ErrNotFound) {
		return "", err
	}
	key, err := NewKey()
	if err != nil {
		return "", err
	}
	if err := store.PutKey(ctx, adminKey(key)); err != nil {
		return "", err
	}
	return key, nil
}

func adminKey(secret string) Key {
	return Key{ID: AdminKeyID, Name: AdminKeyID, Hash: Hash(secret), Tenant: DefaultTenant, Admin: true, CreatedAt: time.Now().UTC()}
}
