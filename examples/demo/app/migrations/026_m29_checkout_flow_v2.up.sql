-- v2.4.0: the new checkout flow keeps a session per checkout.
CREATE TABLE checkout_sessions (id bigserial PRIMARY KEY, order_id bigint REFERENCES orders(id), state text NOT NULL DEFAULT 'open', created_at timestamptz NOT NULL DEFAULT now());
ALTER TABLE orders ADD COLUMN checkout_flow text NOT NULL DEFAULT 'v2';
