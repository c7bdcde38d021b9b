-- Resumable uploads (tus 1.0, SPEC §2): a partial upload has its own state, `receiving`, and
-- an offset (bytes received and durable). Additive only, so workers of the previous release
-- keep running during a rolling upgrade: an ENUM value appended at the end is an in-place
-- change in MariaDB, and the new column is NULL for every upload that is not resumable.
-- `upload_expires_at` is the upload's `Upload-Expires`, `declared_bytes` its `Upload-Length`.
ALTER TABLE media_files MODIFY COLUMN state
    ENUM('pending_upload', 'received', 'scanning', 'processing', 'ready', 'rejected', 'expired', 'receiving')
    NOT NULL DEFAULT 'pending_upload';
ALTER TABLE media_files ADD COLUMN IF NOT EXISTS upload_offset INT UNSIGNED NULL AFTER declared_bytes;
-- The sweeper's question: which partial uploads are past their expiry.
ALTER TABLE media_files ADD INDEX IF NOT EXISTS media_files_expiry (state, upload_expires_at);
