-- Cameo schema, version 1 (SPEC §4). Applied by `cameoctl migrate`, which records each file
-- in schema_migrations. Statements end with `;` at the end of a line.

CREATE TABLE media_files (
    id                CHAR(32)     NOT NULL,            -- random 128-bit hex, never sequential
    user_id           VARCHAR(64)  NOT NULL,
    state             ENUM('pending_upload', 'received', 'scanning', 'processing', 'ready', 'rejected', 'expired')
                                   NOT NULL DEFAULT 'pending_upload',
    reject_reason     VARCHAR(32)  NULL,                -- too_large, bad_type, bad_dimensions, pixel_bomb, corrupt, infected, scan_failed
    declared_type     VARCHAR(32)  NOT NULL,
    declared_bytes    INT UNSIGNED NOT NULL,
    sniffed_type      VARCHAR(32)  NULL,
    bytes             INT UNSIGNED NULL,
    width             INT UNSIGNED NULL,
    height            INT UNSIGNED NULL,
    sha256            CHAR(64)     NULL,
    is_virus_scanned  BOOLEAN      NOT NULL DEFAULT FALSE,
    scan_signature    VARCHAR(255) NULL,
    crop_x            INT UNSIGNED NULL,
    crop_y            INT UNSIGNED NULL,
    crop_size         INT UNSIGNED NULL,
    cdn_url           VARCHAR(512) NULL,
    upload_expires_at BIGINT       NOT NULL,            -- epoch seconds; the presigned URL dies then
    processing_ms     INT UNSIGNED NULL,
    created_at        DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at        DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    KEY media_files_user (user_id, created_at),
    KEY media_files_state (state, updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE user_avatars (
    user_id     VARCHAR(64)  NOT NULL,
    media_id    CHAR(32)     NOT NULL,
    version     CHAR(16)     NOT NULL,                  -- content hash prefix, the `?v=` of the URL
    sizes       VARCHAR(64)  NOT NULL,                  -- comma-separated variant sizes on disk
    updated_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    PRIMARY KEY (user_id),
    KEY user_avatars_media (media_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE revoked_tokens (
    jti         VARCHAR(128) NOT NULL,
    expires_at  BIGINT       NOT NULL,                  -- epoch seconds; the row can go after this
    revoked_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (jti),
    KEY revoked_tokens_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE analytics_events (
    id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    event              VARCHAR(32)  NOT NULL,
    user_id            VARCHAR(64)  NOT NULL,
    media_id           CHAR(32)     NULL,
    bytes              INT UNSIGNED NULL,
    mime               VARCHAR(32)  NULL,
    processing_time_ms INT UNSIGNED NULL,
    created_at         DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    UNIQUE KEY analytics_events_once (event, media_id),  -- one avatar_uploaded per media, however often reported
    KEY analytics_events_user (user_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE rate_limit_hits (
    user_id     VARCHAR(64)  NOT NULL,
    action      VARCHAR(16)  NOT NULL,                  -- upload, delete
    hit_at      BIGINT       NOT NULL,                  -- epoch seconds
    KEY rate_limit_hits_window (user_id, action, hit_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
