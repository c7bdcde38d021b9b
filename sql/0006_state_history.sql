-- Each upload's state history, for operators (`cameoctl show-media`): every statement that
-- changes `state` appends "state@time" (UTC) in the same UPDATE, so the history costs no write
-- of its own. It starts after `pending_upload` (that is `created_at`), and is cut at 1024
-- characters (a few dozen changes; an upload makes five or six).
ALTER TABLE media_files ADD COLUMN IF NOT EXISTS state_history VARCHAR(1024) NULL AFTER state;
