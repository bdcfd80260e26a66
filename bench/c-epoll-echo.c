/*
 * c-epoll-echo: the baseline echo server of the benchmark suite. One thread,
 * one epoll set, level-triggered, one 64 KiB buffer shared by every
 * connection (a connection keeps its own copy only of bytes the kernel would
 * not take yet), TCP_NODELAY and a 4096 backlog. TCP and UDP on one port.
 *
 *   cc -O2 -o c-epoll-echo bench/c-epoll-echo.c
 *   ./c-epoll-echo 0        # prints: listening on tcp://127.0.0.1:PORT
 *                           #         listening on udp://127.0.0.1:PORT
 *
 * It is a measuring stick, not a product: no timeouts, no limits, and a
 * connection that cannot take its echo stops being read until it can.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)
#define MAX_EVENTS 256

/* Bytes echoed but not yet accepted by the kernel for one connection. */
struct conn {
    int fd;
    char *pending;
    size_t pending_len;
};

static char buf[BUF_SIZE];
static int listen_fd, udp_fd, epfd;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int bound_socket(int type, int port) {
    int fd = socket(AF_INET, type | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0) die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    return fd;
}

static int port_of(int fd) {
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0) die("getsockname");
    return ntohs(addr.sin_port);
}

static void watch(int op, struct conn *c, unsigned events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0) die("epoll_ctl");
}

static void close_conn(struct conn *c) {
    close(c->fd); /* also removes it from the epoll set */
    free(c->pending);
    free(c);
}

static void accept_all(void) {
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK), one = 1;
        if (fd < 0) return; /* EAGAIN, or a transient error: try at the next event */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) die("calloc");
        c->fd = fd;
        watch(EPOLL_CTL_ADD, c, EPOLLIN);
    }
}

/* Writes what it can of data; keeps the rest and waits for EPOLLOUT. */
static int send_or_keep(struct conn *c, const char *data, size_t len) {
    ssize_t n = write(c->fd, data, len);
    if (n < 0 && errno != EAGAIN) return -1;
    if (n < 0) n = 0;
    if ((size_t)n == len) return 0;
    c->pending = malloc(len - n);
    if (!c->pending) die("malloc");
    memcpy(c->pending, data + n, len - n);
    c->pending_len = len - n;
    watch(EPOLL_CTL_MOD, c, EPOLLOUT);
    return 0;
}

static void on_readable(struct conn *c) {
    ssize_t n = read(c->fd, buf, BUF_SIZE);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
        close_conn(c);
        return;
    }
    if (n > 0 && send_or_keep(c, buf, (size_t)n) < 0) close_conn(c);
}

static void on_writable(struct conn *c) {
    char *pending = c->pending;
    size_t len = c->pending_len;
    c->pending = NULL;
    c->pending_len = 0;
    int failed = send_or_keep(c, pending, len);
    free(pending);
    if (failed) {
        close_conn(c);
    } else if (!c->pending) {
        watch(EPOLL_CTL_MOD, c, EPOLLIN);
    }
}

static void echo_datagrams(void) {
    struct sockaddr_storage peer;
    for (;;) {
        socklen_t len = sizeof peer;
        ssize_t n = recvfrom(udp_fd, buf, BUF_SIZE, 0, (struct sockaddr *)&peer, &len);
        if (n < 0) return;
        sendto(udp_fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, len);
    }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    listen_fd = bound_socket(SOCK_STREAM, port);
    if (listen(listen_fd, 4096) < 0) die("listen");
    port = port_of(listen_fd);
    udp_fd = bound_socket(SOCK_DGRAM, port);
    if ((epfd = epoll_create1(0)) < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_fd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0) die("epoll_ctl");
    ev.data.ptr = &udp_fd;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, udp_fd, &ev) < 0) die("epoll_ctl");
    printf("listening on tcp://127.0.0.1:%d\nlistening on udp://127.0.0.1:%d\n", port, port);
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            void *ptr = events[i].data.ptr;
            if (ptr == &listen_fd) {
                accept_all();
            } else if (ptr == &udp_fd) {
                echo_datagrams();
            } else if (events[i].events & EPOLLOUT) {
                on_writable(ptr);
            } else {
                on_readable(ptr);
            }
        }
    }
}
