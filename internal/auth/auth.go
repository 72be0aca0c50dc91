// Package auth checks API keys. Keys are random secrets shown to their owner
// once; only their SHA-256 hashes are stored.
package auth

import "context"

// Principal is who a request acts as.
type Principal struct {
	// KeyID identifies the key (never the key itself).
	KeyID string
	// Tenant owns everything the principal creates.
	Tenant string
	// Admin keys may manage other keys.
	Admin bool
}

// Authenticator turns an API key into a Principal.
type Authenticator interface {
	// Authenticate returns errdefs.ErrUnauthenticated for an empty, unknown
	// or revoked key.
	Authenticate(ctx context.Context, key string) (Principal, error)
}
