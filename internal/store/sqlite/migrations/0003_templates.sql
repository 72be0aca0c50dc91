CREATE TABLE templates (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL,
    name            TEXT NOT NULL,
    language        TEXT NOT NULL,
    version         TEXT NOT NULL DEFAULT '',
    description     TEXT NOT NULL DEFAULT '',
    docker_image    TEXT NOT NULL DEFAULT '',
    dependencies    TEXT NOT NULL DEFAULT '[]',
    install_command TEXT NOT NULL DEFAULT '',
    default_env     TEXT NOT NULL DEFAULT '{}',
    default_cwd     TEXT NOT NULL DEFAULT '/workspace',
    status          TEXT NOT NULL,
    error           TEXT NOT NULL DEFAULT '',
    layers          TEXT NOT NULL DEFAULT '[]',
    build_log       TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE UNIQUE INDEX templates_tenant_name ON templates (tenant, name);
CREATE INDEX sandboxes_template ON sandboxes (template_id) WHERE status != 'terminated';
