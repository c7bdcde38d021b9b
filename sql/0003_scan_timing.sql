-- How long the scanner took for an upload (milliseconds), beside processing_ms (render and
-- publish), so operators can see what scanning adds.

ALTER TABLE media_files ADD COLUMN scan_ms INT UNSIGNED NULL AFTER processing_ms;
