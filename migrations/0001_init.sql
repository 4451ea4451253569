-- Keybridge schema, version 1. Times are Unix seconds (BIGINT). Codes and refresh tokens are
-- stored only as SHA-256 digests. A shipped migration is never edited: add a new file instead.

CREATE TABLE auth_requests (
    id          TEXT PRIMARY KEY,
    data        JSONB NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE auth_codes (
    code_digest TEXT PRIMARY KEY,
    grant_id    TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    redeemed    BOOLEAN NOT NULL DEFAULT FALSE,
    data        JSONB NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE grants (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL,
    subject      TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    data         JSONB NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked      BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX grants_subject ON grants (subject);
CREATE INDEX grants_client_id ON grants (client_id);
CREATE INDEX grants_connector_id ON grants (connector_id);

CREATE TABLE refresh_tokens (
    token_digest TEXT PRIMARY KEY,
    grant_id     TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT
);
CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE users (
    subject    TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE identity_links (
    connector_id TEXT NOT NULL,
    upstream_id  TEXT NOT NULL,
    subject      TEXT NOT NULL REFERENCES users (subject) ON DELETE CASCADE,
    claims       JSONB NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (connector_id, upstream_id)
);
CREATE INDEX identity_links_subject ON identity_links (subject);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT,
    expires_at  BIGINT
);
-- At most one active key: two replicas can never both install one.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((retired_at IS NULL)) WHERE retired_at IS NULL;
