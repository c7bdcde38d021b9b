-- Virus scanning (SPEC §3): retries with backoff while the scanner is unavailable.

ALTER TABLE media_files
    ADD COLUMN scan_attempts INT UNSIGNED NOT NULL DEFAULT 0 AFTER scan_signature,
    ADD COLUMN next_scan_at  BIGINT NULL AFTER scan_attempts,        -- epoch seconds; NULL when no retry is due
    ADD KEY media_files_scan_due (state, next_scan_at);
