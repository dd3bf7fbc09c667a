DROP TABLE secrets_providers;
