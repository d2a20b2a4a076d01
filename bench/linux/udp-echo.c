/*
 * The Linux bench image's UDP echo server (bench/linux/build.py builds it
 * static with the host's gcc; it runs as the image's last process).
 *
 * Port 7 echoes every datagram to its sender: recvmmsg takes whatever is
 * queued (up to BATCH, waiting only for the first) and one sendmmsg sends
 * the batch back, so Linux gets the syscall batching a tuned server would
 * use, not one recvfrom/sendto pair per packet. Port 80 serves a one-page
 * status (the net bench's peer reads it before and after a run) from a
 * forked child, so the echo loop never polls two sockets. When both are
 * bound it prints the line the bench waits for, the seL4 image's own.
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define MAX_DATAGRAM 2048

struct stats {
    uint64_t echoed, batches, send_errors;
};

static int bound(int type, int port)
{
    int s = socket(AF_INET, type, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(s, (struct sockaddr *)&a, sizeof a) != 0) {
        fprintf(stderr, "udp-echo: cannot bind port %d: %m\n", port);
        exit(1);
    }
    return s;
}

static void serve_status(int listener, volatile struct stats *st)
{
    for (;;) {
        int c = accept(listener, NULL, NULL);
        char req[1024], page[256];
        if (c < 0) {
            continue;
        }
        /* The request is one short GET; its content does not matter. */
        if (read(c, req, sizeof req) >= 0) {
            int n = snprintf(page, sizeof page,
                             "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                             "linux udp-echo echoed=%llu batches=%llu send_errors=%llu\n",
                             (unsigned long long)st->echoed, (unsigned long long)st->batches,
                             (unsigned long long)st->send_errors);
            if (write(c, page, n) != n) {
                fprintf(stderr, "udp-echo: status page write failed: %m\n");
            }
        }
        close(c);
    }
}

int main(void)
{
    static char bufs[BATCH][MAX_DATAGRAM];
    static struct sockaddr_in peers[BATCH];
    static struct iovec iov[BATCH];
    static struct mmsghdr msgs[BATCH];
    /* Shared with the status child: the echo loop's counters. */
    volatile struct stats *st = mmap(NULL, sizeof *st, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int udp = bound(SOCK_DGRAM, 7);
    int http = bound(SOCK_STREAM, 80);
    if (st == MAP_FAILED || listen(http, 4) != 0) {
        perror("udp-echo: setup");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("udp-echo: fork");
        return 1;
    }
    if (child == 0) {
        close(udp);
        serve_status(http, st);
    }
    close(http);
    printf("net: address 10.0.2.15/24 (static)\n");
    fflush(stdout);
    for (int i = 0; i < BATCH; i++) {
        iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = MAX_DATAGRAM};
        msgs[i].msg_hdr = (struct msghdr){.msg_name = &peers[i], .msg_namelen = sizeof peers[i],
                                          .msg_iov = &iov[i], .msg_iovlen = 1};
    }
    for (;;) {
        int n = recvmmsg(udp, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n <= 0) {
            continue;
        }
        for (int i = 0; i < n; i++) {
            iov[i].iov_len = msgs[i].msg_len;
        }
        int sent = sendmmsg(udp, msgs, n, 0);
        st->echoed += sent > 0 ? sent : 0;
        st->send_errors += sent < n ? n - (sent > 0 ? sent : 0) : 0;
        st->batches += 1;
        /* Only the slots this batch used need their lengths back. */
        for (int i = 0; i < n; i++) {
            iov[i].iov_len = MAX_DATAGRAM;
            msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
        }
    }
}
