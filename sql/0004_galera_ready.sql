-- Multi-primary ready (MariaDB Galera): the avatar pointer is a versioned row, and every table
-- has a primary key (Galera replicates rows by key and refuses DML on tables without one).
--
-- user_avatars.generation counts the changes of a user's pointer. Publish, delete and
-- unpublish read it and change the row only if it is unchanged (a versioned update), so
-- per-user ordering needs no named lock, which Galera would not replicate.

ALTER TABLE user_avatars ADD COLUMN generation BIGINT UNSIGNED NOT NULL DEFAULT 1 AFTER sizes;

ALTER TABLE rate_limit_hits
    ADD COLUMN id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT FIRST,
    ADD PRIMARY KEY (id);
