CREATE TABLE orders (id bigserial PRIMARY KEY, profile_id bigint REFERENCES profiles(id), total_cents bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
