package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
)

var _ sandbox.ContextStore = (*Store)(nil)

const contextColumns = "id, sandbox_id, language, cwd, env, is_default, created_at"

// CreateContext implements sandbox.ContextStore.
func (s *Store) CreateContext(ctx context.Context, c sandbox.CodeContext) error {
	env, err := json.Marshal(c.EnvVars)
	if err != nil {
		return fmt.Errorf("encode env of context %s: %w", c.ID, err)
	}
	_, err = s.db.ExecContext(ctx, "INSERT INTO contexts ("+contextColumns+") VALUES (?, ?, ?, ?, ?, ?, ?)",
		c.ID, c.SandboxID, c.Language, c.Cwd, string(env), c.Default, toMillis(c.CreatedAt))
	if isUnique(err) {
		return fmt.Errorf("context %s: %w", c.ID, errdefs.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert context %s: %w", c.ID, err)
	}
	return nil
}

// GetContext implements sandbox.ContextStore.
func (s *Store) GetContext(ctx context.Context, id string) (sandbox.CodeContext, error) {
	c, err := scanContext(s.db.QueryRowContext(ctx, "SELECT "+contextColumns+" FROM contexts WHERE id = ?", id))
	if err != nil {
		return sandbox.CodeContext{}, notFound("context", id, err)
	}
	return c, nil
}

// ListContexts implements sandbox.ContextStore.
func (s *Store) ListContexts(ctx context.Context, sandboxID string) ([]sandbox.CodeContext, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+contextColumns+" FROM contexts WHERE sandbox_id = ? ORDER BY created_at, id", sandboxID)
	if err != nil {
		return nil, fmt.Errorf("query contexts: %w", err)
	}
	defer rows.Close()
	out := []sandbox.CodeContext{}
	for rows.Next() {
		c, err := scanContext(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query contexts: %w", err)
	}
	return out, nil
}

// DeleteContext implements sandbox.ContextStore.
func (s *Store) DeleteContext(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM contexts WHERE id = ?", id); err != nil {
		return fmt.Errorf("delete context %s: %w", id, err)
	}
	return nil
}

func scanContext(r scanner) (sandbox.CodeContext, error) {
	var (
		c       sandbox.CodeContext
		env     string
		created int64
	)
	if err := r.Scan(&c.ID, &c.SandboxID, &c.Language, &c.Cwd, &env, &c.Default, &created); err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(env), &c.EnvVars); err != nil {
		return c, fmt.Errorf("decode env of context %s: %w", c.ID, err)
	}
	c.CreatedAt = fromMillis(created)
	return c, nil
}
