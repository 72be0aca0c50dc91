package sqlite

import (
	"context"
	"fmt"

	"github.com/sdbx/sdbx/internal/auth"
	"github.com/sdbx/sdbx/internal/errdefs"
)

var _ auth.KeyStore = (*Store)(nil)

const keyColumns = "id, name, hash, tenant, admin, created_at"

// KeyByHash implements auth.KeyStore.
func (s *Store) KeyByHash(ctx context.Context, hash string) (auth.Key, error) {
	row := s.db.QueryRowContext(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE hash = ? AND revoked_at IS NULL", hash)
	k, err := scanKey(row)
	if err != nil {
		return auth.Key{}, notFound("key", "with that hash", err)
	}
	return k, nil
}

// KeyByID implements auth.KeyStore.
func (s *Store) KeyByID(ctx context.Context, id string) (auth.Key, error) {
	row := s.db.QueryRowContext(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE id = ? AND revoked_at IS NULL", id)
	k, err := scanKey(row)
	if err != nil {
		return auth.Key{}, notFound("key", id, err)
	}
	return k, nil
}

// PutKey implements auth.KeyStore.
func (s *Store) PutKey(ctx context.Context, k auth.Key) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO api_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?)
		 ON CONFLICT(id) DO UPDATE SET name = excluded.name, hash = excluded.hash,
		   tenant = excluded.tenant, admin = excluded.admin, revoked_at = NULL`,
		k.ID, k.Name, k.Hash, k.Tenant, k.Admin, toMillis(k.CreatedAt))
	if isUnique(err) {
		return fmt.Errorf("key %s: name or secret already in use: %w", k.Name, errdefs.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("store key %s: %w", k.ID, err)
	}
	return nil
}

func scanKey(r scanner) (auth.Key, error) {
	var (
		k       auth.Key
		created int64
	)
	if err := r.Scan(&k.ID, &k.Name, &k.Hash, &k.Tenant, &k.Admin, &created); err != nil {
		return k, err
	}
	k.CreatedAt = fromMillis(created)
	return k, nil
}

// ListKeys implements auth.KeyStore.
func (s *Store) ListKeys(ctx context.Context) ([]auth.Key, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+keyColumns+" FROM api_keys WHERE revoked_at IS NULL ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("query keys: %w", err)
	}
	defer rows.Close()
	out := []auth.Key{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query keys: %w", err)
	}
	return out, nil
}

// DeleteKey implements auth.KeyStore.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, "DELETE FROM api_keys WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("key %s: %w", id, errdefs.ErrNotFound)
	}
	return nil
}
