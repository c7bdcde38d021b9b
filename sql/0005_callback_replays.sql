-- Scanner callbacks already received: the HMAC signature of each, kept while its timestamp is
-- inside the accepted window, so a captured callback (an `error` verdict that re-queues the
-- scan, say) cannot be sent again. Purged with the other bookkeeping.
CREATE TABLE callback_replays (
    signature   CHAR(64)    NOT NULL,                  -- hex HMAC-SHA256, lower case
    expires_at  BIGINT      NOT NULL,                  -- epoch seconds; the row can go after this
    PRIMARY KEY (signature),
    KEY callback_replays_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin;
