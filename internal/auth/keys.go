package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
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
	// ListKeys returns every key, oldest first.
	ListKeys(ctx context.Context) ([]Key, error)
	// DeleteKey removes a key. Returns errdefs.ErrNotFound for an unknown id.
	DeleteKey(ctx context.Context, id string) error
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

// Keys authenticates against a KeyStore and manages keys. Every call reads
// the store, so a revoked key is refused at once.
type Keys struct {
	store KeyStore

	mu       sync.Mutex
	onRevoke []func(Key)
	// known caches valid keys by hash (the SHA-256 sum itself, so a
	// request's lookup does not hex-encode it). Keys change only through
	// this process (Create, Revoke) or at start (EnsureAdmin), so Revoke
	// drops the entry and a revoked key is refused at once.
	known map[[sha256.Size]byte]Principal
}

var _ Authenticator = (*Keys)(nil)

// NewKeys returns an Authenticator backed by store.
func NewKeys(store KeyStore) *Keys {
	return &Keys{store: store, known: map[[sha256.Size]byte]Principal{}}
}

// Authenticate implements Authenticator.
func (k *Keys) Authenticate(ctx context.Context, key string) (Principal, error) {
	if key == "" {
		return Principal{}, fmt.Errorf("missing API key: %w", errdefs.ErrUnauthenticated)
	}
	sum := sha256.Sum256([]byte(key))
	k.mu.Lock()
	p, ok := k.known[sum]
	k.mu.Unlock()
	if ok {
		return p, nil
	}
	stored, err := k.store.KeyByHash(ctx, hex.EncodeToString(sum[:]))
	if errors.Is(err, errdefs.ErrNotFound) {
		return Principal{}, fmt.Errorf("invalid API key: %w", errdefs.ErrUnauthenticated)
	}
	if err != nil {
		return Principal{}, err
	}
	p = Principal{KeyID: stored.ID, Tenant: stored.Tenant, Admin: stored.Admin}
	k.mu.Lock()
	k.known[sum] = p
	k.mu.Unlock()
	return p, nil
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

// validKeyName reports whether name may be a key's name: 1 to 64 ASCII
// letters, digits, '.', '_' or '-', starting with a letter or digit. (A
// loop, not a regexp: package-level regexps are compiled at every start of
// the binary, which is also every sandbox's agent.)
func validKeyName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// OnRevoke registers fn to run after a key is revoked (the transports use
// it to close the key's open connections).
func (k *Keys) OnRevoke(fn func(Key)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.onRevoke = append(k.onRevoke, fn)
}

// Create makes a new key named name with a tenant of its own and returns
// the secret, which is shown once and never stored. Only admin keys may
// create keys.
func (k *Keys) Create(ctx context.Context, caller Principal, name string) (string, Key, error) {
	if !caller.Admin {
		return "", Key{}, fmt.Errorf("only the admin key may create keys: %w", errdefs.ErrPermissionDenied)
	}
	if !validKeyName(name) {
		return "", Key{}, fmt.Errorf("name %q: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit: %w", name, errdefs.ErrInvalidArgument)
	}
	secret, err := NewKey()
	if err != nil {
		return "", Key{}, err
	}
	id, err := NewKey()
	if err != nil {
		return "", Key{}, err
	}
	id = "key-" + id[len("sdbx_"):len("sdbx_")+12]
	key := Key{ID: id, Name: name, Hash: Hash(secret), Tenant: id, CreatedAt: time.Now().UTC()}
	if err := k.store.PutKey(ctx, key); err != nil {
		return "", Key{}, err
	}
	return secret, key, nil
}

// List returns every key (never their secrets). Admin only.
func (k *Keys) List(ctx context.Context, caller Principal) ([]Key, error) {
	if !caller.Admin {
		return nil, fmt.Errorf("only the admin key may list keys: %w", errdefs.ErrPermissionDenied)
	}
	return k.store.ListKeys(ctx)
}

// Revoke deletes the key with the given id or name; it is refused from the
// next request on. The admin key can't be revoked (replace it with
// SDBX_API_KEY). Admin only.
func (k *Keys) Revoke(ctx context.Context, caller Principal, idOrName string) (Key, error) {
	if !caller.Admin {
		return Key{}, fmt.Errorf("only the admin key may revoke keys: %w", errdefs.ErrPermissionDenied)
	}
	keys, err := k.store.ListKeys(ctx)
	if err != nil {
		return Key{}, err
	}
	for _, key := range keys {
		if key.ID != idOrName && key.Name != idOrName {
			continue
		}
		if key.ID == AdminKeyID {
			return Key{}, fmt.Errorf("the admin key can't be revoked; set SDBX_API_KEY to replace it: %w", errdefs.ErrInvalidArgument)
		}
		if err := k.store.DeleteKey(ctx, key.ID); err != nil {
			return Key{}, err
		}
		k.mu.Lock()
		var sum [sha256.Size]byte
		if n, err := hex.Decode(sum[:], []byte(key.Hash)); err == nil && n == len(sum) {
			delete(k.known, sum)
		}
		hooks := append([]func(Key){}, k.onRevoke...)
		k.mu.Unlock()
		for _, fn := range hooks {
			fn(key)
		}
		return key, nil
	}
	return Key{}, fmt.Errorf("key %q: %w", idOrName, errdefs.ErrNotFound)
}
