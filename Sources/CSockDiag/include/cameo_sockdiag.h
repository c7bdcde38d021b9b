#ifndef CAMEO_SOCKDIAG_H
#define CAMEO_SOCKDIAG_H

/// The accept queue of the listening unix stream socket bound at `path`, asked of the kernel
/// with sock_diag (NETLINK_SOCK_DIAG, what `ss -xl` shows as Recv-Q and Send-Q): `queued`
/// connections wait to be accepted, of at most `backlog`. Returns 0 when found, 1 when no
/// listening socket has that path, -1 with errno set when netlink failed.
int cameo_unix_accept_queue(const char *path, unsigned *queued, unsigned *backlog);

#endif
