// sock_diag for unix sockets (linux/unix_diag.h): the one query Cameo needs, how a worker pool's
// listening socket is used, kept in C because it is netlink message framing.
#include "cameo_sockdiag.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

#define TCP_ESTABLISHED_STATE 1  /* the kernel's TCP states, which unix sockets share */
#define TCP_LISTEN_STATE 10

/// Adds what one socket of the dump says about `path` to `use`; 1 when the socket is `path`'s.
static int tally(struct nlmsghdr *header, const char *path, struct cameo_socket_use *use) {
    if (header->nlmsg_type != SOCK_DIAG_BY_FAMILY || header->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg))) return 0;
    struct unix_diag_msg *message = NLMSG_DATA(header);
    int length = header->nlmsg_len - NLMSG_LENGTH(sizeof(*message));
    const char *name = NULL;
    size_t name_length = 0;
    struct unix_diag_rqlen *rqlen = NULL;
    for (struct rtattr *attribute = (struct rtattr *)(message + 1); RTA_OK(attribute, length);
         attribute = RTA_NEXT(attribute, length)) {
        if (attribute->rta_type == UNIX_DIAG_NAME) {
            name = RTA_DATA(attribute);
            name_length = RTA_PAYLOAD(attribute);
        } else if (attribute->rta_type == UNIX_DIAG_RQLEN && RTA_PAYLOAD(attribute) >= sizeof(*rqlen)) {
            rqlen = RTA_DATA(attribute);
        }
    }
    if (name == NULL) return 0;
    // A path's name carries its terminating NUL (an abstract name starts with one instead).
    if (name_length > 0 && name[name_length - 1] == '\0') name_length--;
    if (name_length != strlen(path) || memcmp(name, path, name_length) != 0) return 0;
    if (message->udiag_state == TCP_LISTEN_STATE) {
        if (rqlen == NULL) return 0;
        use->queued = rqlen->udiag_rqueue;
        use->backlog = rqlen->udiag_wqueue;
        use->listening = 1;
    } else {
        // An accepted connection carries its listener's name: a worker inside a request.
        use->connected++;
    }
    return 1;
}

int cameo_unix_socket_use(const char *path, struct cameo_socket_use *use) {
    memset(use, 0, sizeof(*use));
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) return -1;
    struct {
        struct nlmsghdr header;
        struct unix_diag_req request;
    } query;
    memset(&query, 0, sizeof(query));
    query.header.nlmsg_len = sizeof(query);
    query.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    query.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    query.request.sdiag_family = AF_UNIX;
    query.request.udiag_states = (1u << TCP_LISTEN_STATE) | (1u << TCP_ESTABLISHED_STATE);
    query.request.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN;
    if (send(fd, &query, sizeof(query), 0) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    long buffer[8192 / sizeof(long)];
    int found = 1;
    for (;;) {
        ssize_t received = recv(fd, buffer, sizeof(buffer), 0);
        if (received < 0) {
            if (errno == EINTR) continue;
            found = -1;
            break;
        }
        int remaining = (int)received;
        int done = received == 0;
        for (struct nlmsghdr *header = (struct nlmsghdr *)buffer; NLMSG_OK(header, remaining);
             header = NLMSG_NEXT(header, remaining)) {
            if (header->nlmsg_type == NLMSG_DONE) { done = 1; break; }
            if (header->nlmsg_type == NLMSG_ERROR) { errno = EPROTO; found = -1; done = 1; break; }
            if (found != -1) tally(header, path, use);
        }
        if (done) break;
    }
    if (found == 1 && use->listening) found = 0;
    int saved = errno;
    close(fd);
    errno = saved;
    return found;
}
