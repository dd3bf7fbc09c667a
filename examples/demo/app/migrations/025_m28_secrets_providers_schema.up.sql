CREATE TABLE secrets_providers (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, kind text NOT NULL);
INSERT INTO secrets_providers (name, kind) VALUES ('stripe', 'payments'), ('square', 'payments'), ('cloudflare', 'cdn');
