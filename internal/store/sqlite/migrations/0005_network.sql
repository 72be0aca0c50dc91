-- Sandboxes created before egress policies had loopback only.
ALTER TABLE sandboxes ADD COLUMN network TEXT NOT NULL DEFAULT '{"egress":"none"}';
