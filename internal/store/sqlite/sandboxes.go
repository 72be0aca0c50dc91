package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

var _ sandbox.Store = (*Store)(nil)

const sandboxColumns = "id, tenant, name, template_id, status, env, error, created_at, updated_at, expires_at, resources, network"

// CreateSandbox implements sandbox.Store.
func (s *Store) CreateSandbox(ctx context.Context, sb sandbox.Sandbox) error {
	env, err := json.Marshal(sb.EnvVars)
	if err != nil {
		return fmt.Errorf("encode env of sandbox %s: %w", sb.ID, err)
	}
	res, err := json.Marshal(sb.Resources)
	if err != nil {
		return fmt.Errorf("encode resources of sandbox %s: %w", sb.ID, err)
	}
	network, err := json.Marshal(sb.Network)
	if err != nil {
		return fmt.Errorf("encode network of sandbox %s: %w", sb.ID, err)
	}
	_, err = s.db.ExecContext(ctx,
		"INSERT INTO sandboxes ("+sandboxColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		sb.ID, sb.Tenant, sb.Name, sb.TemplateID, string(sb.Status), string(env), sb.Error,
		toMillis(sb.CreatedAt), toMillis(sb.UpdatedAt), expiryMillis(sb.ExpiresAt), string(res), string(network))
	if isUnique(err) {
		return fmt.Errorf("sandbox %s: %w", sb.ID, errdefs.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert sandbox %s: %w", sb.ID, err)
	}
	return nil
}

// UpdateSandbox implements sandbox.Store.
func (s *Store) UpdateSandbox(ctx context.Context, sb sandbox.Sandbox) error {
	env, err := json.Marshal(sb.EnvVars)
	if err != nil {
		return fmt.Errorf("encode env of sandbox %s: %w", sb.ID, err)
	}
	res, err := s.db.ExecContext(ctx,
		"UPDATE sandboxes SET status = ?, error = ?, env = ?, updated_at = ?, expires_at = ? WHERE id = ?",
		string(sb.Status), sb.Error, string(env), toMillis(sb.UpdatedAt), expiryMillis(sb.ExpiresAt), sb.ID)
	if err != nil {
		return fmt.Errorf("update sandbox %s: %w", sb.ID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("sandbox %s: %w", sb.ID, errdefs.ErrNotFound)
	}
	return nil
}

// GetSandbox implements sandbox.Store.
func (s *Store) GetSandbox(ctx context.Context, id string) (sandbox.Sandbox, error) {
	row := s.db.QueryRowContext(ctx, "SELECT "+sandboxColumns+" FROM sandboxes WHERE id = ?", id)
	sb, err := scanSandbox(row)
	if err != nil {
		return sandbox.Sandbox{}, notFound("sandbox", id, err)
	}
	return sb, nil
}

// ListSandboxes implements sandbox.Store.
func (s *Store) ListSandboxes(ctx context.Context, tenant string) ([]sandbox.Sandbox, error) {
	q := "SELECT " + sandboxColumns + " FROM sandboxes WHERE status != ?"
	args := []any{string(sandbox.StatusTerminated)}
	if tenant != "" {
		q += " AND tenant = ?"
		args = append(args, tenant)
	}
	return s.querySandboxes(ctx, q+" ORDER BY created_at DESC, id", args...)
}

// ListExpired implements sandbox.Store.
func (s *Store) ListExpired(ctx context.Context, now time.Time) ([]sandbox.Sandbox, error) {
	return s.querySandboxes(ctx,
		"SELECT "+sandboxColumns+" FROM sandboxes WHERE expires_at IS NOT NULL AND expires_at <= ? AND status != ?",
		toMillis(now), string(sandbox.StatusTerminated))
}

// DeleteSandbox implements sandbox.Store.
func (s *Store) DeleteSandbox(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM sandboxes WHERE id = ?", id); err != nil {
		return fmt.Errorf("delete sandbox %s: %w", id, err)
	}
	return nil
}

// PruneTerminated implements sandbox.Store.
func (s *Store) PruneTerminated(ctx context.Context, cutoff time.Time) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM sandboxes WHERE status = ? AND updated_at < ?",
		string(sandbox.StatusTerminated), toMillis(cutoff))
	if err != nil {
		return fmt.Errorf("prune terminated sandboxes: %w", err)
	}
	return nil
}

func (s *Store) querySandboxes(ctx context.Context, q string, args ...any) ([]sandbox.Sandbox, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query sandboxes: %w", err)
	}
	defer rows.Close()
	out := []sandbox.Sandbox{}
	for rows.Next() {
		sb, err := scanSandbox(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sb)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query sandboxes: %w", err)
	}
	return out, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanSandbox(r scanner) (sandbox.Sandbox, error) {
	var (
		sb                        sandbox.Sandbox
		status, env, res, network string
		created, updated          int64
		expires                   sql.NullInt64
	)
	if err := r.Scan(&sb.ID, &sb.Tenant, &sb.Name, &sb.TemplateID, &status, &env, &sb.Error, &created, &updated, &expires, &res, &network); err != nil {
		return sb, err
	}
	if err := json.Unmarshal([]byte(network), &sb.Network); err != nil {
		return sb, fmt.Errorf("decode network of sandbox %s: %w", sb.ID, err)
	}
	if err := json.Unmarshal([]byte(res), &sb.Resources); err != nil {
		return sb, fmt.Errorf("decode resources of sandbox %s: %w", sb.ID, err)
	}
	sb.Status = sandbox.Status(status)
	if err := json.Unmarshal([]byte(env), &sb.EnvVars); err != nil {
		return sb, fmt.Errorf("decode env of sandbox %s: %w", sb.ID, err)
	}
	sb.CreatedAt, sb.UpdatedAt = fromMillis(created), fromMillis(updated)
	if expires.Valid {
		t := fromMillis(expires.Int64)
		sb.ExpiresAt = &t
	}
	return sb, nil
}

func expiryMillis(t *time.Time) any {
	if t == nil {
		return nil
	}
	return toMillis(*t)
}
