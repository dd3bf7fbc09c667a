ALTER TABLE orders DROP COLUMN checkout_flow;
DROP TABLE checkout_sessions;
