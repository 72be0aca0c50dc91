CREATE TABLE contexts (
    id         TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
    language   TEXT NOT NULL,
    cwd        TEXT NOT NULL,
    env        TEXT NOT NULL DEFAULT '{}',
    is_default INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE INDEX contexts_sandbox ON contexts (sandbox_id, created_at);
CREATE UNIQUE INDEX contexts_default ON contexts (sandbox_id, language) WHERE is_default = 1;
