/* Does batching viewers' sends into one sendmmsg pay on the shared WebRTC port?
 *
 * One UDP socket sends a "frame" (SEGMENTS datagrams of SEGMENT_SIZE bytes, one
 * segmented send per viewer, as the C fan-out does) to VIEWERS receivers on 127.0.0.1,
 * either as one sendmsg per viewer or as one sendmmsg for all of them. Receivers are
 * drained between rounds. Prints nanoseconds per viewer for each way, alternating
 * them ROUNDS times. Built and run by bench/sendmmsg.py.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    int viewers = argc > 1 ? atoi(argv[1]) : 100;
    int segments = argc > 2 ? atoi(argv[2]) : 6;
    int rounds = argc > 3 ? atoi(argv[3]) : 200;
    int size = 1200;
    if (viewers < 1 || viewers > 1024 || segments < 1 || segments > 32 || rounds < 1) return 2;

    int sender = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int big = 8 << 20;
    setsockopt(sender, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    int *receivers = calloc(viewers, sizeof *receivers);
    struct sockaddr_in *to = calloc(viewers, sizeof *to);
    for (int v = 0; v < viewers; v++) {
        receivers[v] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        setsockopt(receivers[v], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        bind(receivers[v], (struct sockaddr *)&a, sizeof a);
        socklen_t len = sizeof to[v];
        getsockname(receivers[v], (struct sockaddr *)&to[v], &len);
    }
    char *payload = calloc(segments, size);
    memset(payload, 0x80, (size_t)segments * size);
    char control[CMSG_SPACE(sizeof(uint16_t))];
    memset(control, 0, sizeof control);
    struct cmsghdr *cm = (struct cmsghdr *)control;
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t segment = (uint16_t)size;
    memcpy(CMSG_DATA(cm), &segment, sizeof segment);

    struct iovec iov = {.iov_base = payload, .iov_len = (size_t)segments * size};
    struct mmsghdr *batch = calloc(viewers, sizeof *batch);
    for (int v = 0; v < viewers; v++) {
        struct msghdr *m = &batch[v].msg_hdr;
        m->msg_name = &to[v];
        m->msg_namelen = sizeof to[v];
        m->msg_iov = &iov;
        m->msg_iovlen = 1;
        if (segments > 1) {
            m->msg_control = control;
            m->msg_controllen = sizeof control;
        }
    }
    char sink[65536];
    double per_viewer[2] = {0, 0};
    long failures = 0;
    for (int r = 0; r < 2 * rounds; r++) {
        int batched = r % 2;
        double start = now_ns();
        if (batched) {
            int sent = 0;
            while (sent < viewers) {
                int n = sendmmsg(sender, batch + sent, viewers - sent, 0);
                if (n <= 0) { failures++; break; }
                sent += n;
            }
        } else {
            for (int v = 0; v < viewers; v++)
                if (sendmsg(sender, &batch[v].msg_hdr, 0) < 0) failures++;
        }
        per_viewer[batched] += (now_ns() - start) / viewers;
        for (int v = 0; v < viewers; v++)
            while (recv(receivers[v], sink, sizeof sink, 0) > 0) {}
    }
    printf("{\"viewers\": %d, \"segments\": %d, \"rounds\": %d, "
           "\"sendmsg_ns_per_viewer\": %.0f, \"sendmmsg_ns_per_viewer\": %.0f, "
           "\"failures\": %ld}\n",
           viewers, segments, rounds, per_viewer[0] / rounds, per_viewer[1] / rounds, failures);
    return 0;
}
