// sock_diag for unix sockets (linux/unix_diag.h): the one query Cameo needs, the accept queue
// of a worker pool's listening socket, kept in C because it is netlink message framing.
#include "cameo_sockdiag.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

#define TCP_LISTEN_STATE 10  /* the kernel's TCP_LISTEN, which unix sockets share */

static int matches(struct nlmsghdr *header, const char *path, unsigned *queued, unsigned *backlog) {
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
    if (name == NULL || rqlen == NULL) return 0;
    // A path's name carries its terminating NUL (an abstract name starts with one instead).
    if (name_length > 0 && name[name_length - 1] == '\0') name_length--;
    if (name_length != strlen(path) || memcmp(name, path, name_length) != 0) return 0;
    *queued = rqlen->udiag_rqueue;
    *backlog = rqlen->udiag_wqueue;
    return 1;
}

int cameo_unix_accept_queue(const char *path, unsigned *queued, unsigned *backlog) {
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
    query.request.udiag_states = 1u << TCP_LISTEN_STATE;
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
            if (found == 1 && matches(header, path, queued, backlog)) found = 0;
        }
        if (done) break;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return found;
}
