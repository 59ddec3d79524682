-- A key's tags (JSON array of strings): added to each of its requests for tag routing.
ALTER TABLE api_keys ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
