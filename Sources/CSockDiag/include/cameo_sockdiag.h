#ifndef CAMEO_SOCKDIAG_H
#define CAMEO_SOCKDIAG_H

/// How the listening unix stream socket bound at `path` is used, as the kernel's sock_diag
/// (NETLINK_SOCK_DIAG, what `ss -xa` shows) tells it.
struct cameo_socket_use {
    /// Connections waiting to be accepted, and how many may wait (the backlog).
    unsigned queued;
    unsigned backlog;
    /// Accepted connections still open: each is a worker inside a request (nginx opens one
    /// FastCGI connection per request and closes it after).
    unsigned connected;
    int listening;
};

/// Fills `use`; returns 0 when a socket listens at `path`, 1 when none does, -1 with errno set
/// when netlink failed.
int cameo_unix_socket_use(const char *path, struct cameo_socket_use *use);

#endif
