package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sdbx/sdbx/internal/errdefs"
	"github.com/sdbx/sdbx/internal/sandbox"
	"github.com/sdbx/sdbx/internal/template"
)

var _ template.Store = (*Store)(nil)

const templateColumns = "id, tenant, name, language, version, description, docker_image, dependencies, " +
	"install_command, default_env, default_cwd, status, error, layers, build_log, created_at, updated_at"

// CreateTemplate implements template.Store.
func (s *Store) CreateTemplate(ctx context.Context, t template.Template) error {
	deps, env, layers, err := encodeTemplate(t)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx,
		"INSERT INTO templates ("+templateColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		t.ID, t.Tenant, t.Name, t.Language, t.Version, t.Description, t.DockerImage, deps,
		t.InstallCommand, env, t.DefaultCwd, t.Status, t.Error, layers, t.BuildLog,
		toMillis(t.CreatedAt), toMillis(t.UpdatedAt))
	if isUnique(err) {
		return fmt.Errorf("template %s (name %q): id or name taken: %w", t.ID, t.Name, errdefs.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert template %s: %w", t.ID, err)
	}
	return nil
}

// UpdateTemplate implements template.Store.
func (s *Store) UpdateTemplate(ctx context.Context, t template.Template) error {
	_, env, layers, err := encodeTemplate(t)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx,
		"UPDATE templates SET version = ?, status = ?, error = ?, default_env = ?, layers = ?, build_log = ?, updated_at = ? WHERE id = ?",
		t.Version, t.Status, t.Error, env, layers, t.BuildLog, toMillis(t.UpdatedAt), t.ID)
	if err != nil {
		return fmt.Errorf("update template %s: %w", t.ID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("template %s: %w", t.ID, errdefs.ErrNotFound)
	}
	return nil
}

// ListTemplates implements template.Store.
func (s *Store) ListTemplates(ctx context.Context) ([]template.Template, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+templateColumns+" FROM templates ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("query templates: %w", err)
	}
	defer rows.Close()
	out := []template.Template{}
	for rows.Next() {
		t, err := scanTemplate(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query templates: %w", err)
	}
	return out, nil
}

// DeleteTemplate implements template.Store.
func (s *Store) DeleteTemplate(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM templates WHERE id = ?", id); err != nil {
		return fmt.Errorf("delete template %s: %w", id, err)
	}
	return nil
}

// CountTemplateUsers returns how many sandboxes that are not terminated
// were made from the template (a template in use cannot be deleted).
func (s *Store) CountTemplateUsers(ctx context.Context, templateID string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM sandboxes WHERE template_id = ? AND status != ?",
		templateID, string(sandbox.StatusTerminated)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count sandboxes of template %s: %w", templateID, err)
	}
	return n, nil
}

func encodeTemplate(t template.Template) (deps, env, layers string, err error) {
	d, err := json.Marshal(orEmpty(t.Dependencies))
	if err != nil {
		return "", "", "", fmt.Errorf("encode dependencies of template %s: %w", t.ID, err)
	}
	e, err := json.Marshal(t.DefaultEnv)
	if err != nil {
		return "", "", "", fmt.Errorf("encode env of template %s: %w", t.ID, err)
	}
	l, err := json.Marshal(t.Layers)
	if err != nil {
		return "", "", "", fmt.Errorf("encode layers of template %s: %w", t.ID, err)
	}
	return string(d), string(e), string(l), nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func scanTemplate(r scanner) (template.Template, error) {
	var (
		t                 template.Template
		deps, env, layers string
		created, updated  int64
	)
	if err := r.Scan(&t.ID, &t.Tenant, &t.Name, &t.Language, &t.Version, &t.Description, &t.DockerImage, &deps,
		&t.InstallCommand, &env, &t.DefaultCwd, &t.Status, &t.Error, &layers, &t.BuildLog, &created, &updated); err != nil {
		return t, fmt.Errorf("scan template: %w", err)
	}
	if err := json.Unmarshal([]byte(deps), &t.Dependencies); err != nil {
		return t, fmt.Errorf("decode dependencies of template %s: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(env), &t.DefaultEnv); err != nil {
		return t, fmt.Errorf("decode env of template %s: %w", t.ID, err)
	}
	if t.DefaultEnv == nil {
		t.DefaultEnv = map[string]string{}
	}
	if err := json.Unmarshal([]byte(layers), &t.Layers); err != nil {
		return t, fmt.Errorf("decode layers of template %s: %w", t.ID, err)
	}
	t.CreatedAt, t.UpdatedAt = fromMillis(created), fromMillis(updated)
	return t, nil
}
