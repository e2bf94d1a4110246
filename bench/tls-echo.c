/*
 * tls-echo.c - a minimal TLS echo server in C (OpenSSL, one thread, non-blocking, epoll): the
 * headroom check of the TLS cells. If loadgen drives this faster than raw Bun's TLS echo in the same
 * repetitions, loadgen is not what limits those cells (see "Load generator headroom" in README.md).
 * Not a baseline of the library: Bun's own TLS echo (servers/raw-echo-tls.ts) is.
 *
 * Build:  gcc -O2 -o bench/.build/tls-echo bench/tls-echo.c -lssl -lcrypto
 * Usage:  tls-echo CERT.pem KEY.pem PORT   (listens on 127.0.0.1, prints "ready port=N")
 *
 * Each connection: handshake, then read what TLS gives and write it back; what SSL_write did not take
 * is kept and written first on the next EPOLLOUT, and reading waits meanwhile (backpressure).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (256 * 1024)

typedef struct conn {
  int fd;
  SSL *ssl;
  int open;          /* handshake done */
  unsigned char *out; /* unwritten echo bytes */
  size_t out_off, out_len;
} conn;

static int ep;
static unsigned char rbuf[BUF];

static void watch(conn *c, int want_out) {
  struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void drop(conn *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  SSL_free(c->ssl);
  close(c->fd);
  free(c->out);
  free(c);
}

/* write pending bytes; 1 = all written, 0 = blocked, -1 = error */
static int flush(conn *c) {
  while (c->out_off < c->out_len) {
    int w = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len - c->out_off));
    if (w > 0) {
      c->out_off += (size_t)w;
      continue;
    }
    int e = SSL_get_error(c->ssl, w);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
      watch(c, 1);
      return 0;
    }
    return -1;
  }
  c->out_off = c->out_len = 0;
  return 1;
}

static void on_event(conn *c) {
  if (!c->open) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_WANT_READ) watch(c, 0);
      else if (e == SSL_ERROR_WANT_WRITE) watch(c, 1);
      else drop(c);
      return;
    }
    c->open = 1;
  }
  int f = flush(c);
  if (f < 0) {
    drop(c);
    return;
  }
  if (f == 0) return; /* backpressure: read again once the echo is out */
  for (int iter = 0; iter < 64; iter++) {
    int r = SSL_read(c->ssl, rbuf, BUF);
    if (r <= 0) {
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
      drop(c); /* EOF or error */
      return;
    }
    int w = SSL_write(c->ssl, rbuf, r);
    if (w == r) continue;
    /* keep what was not written (partial writes are enabled) */
    size_t done = w > 0 ? (size_t)w : 0;
    if (w <= 0) {
      int e = SSL_get_error(c->ssl, w);
      if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) {
        drop(c);
        return;
      }
    }
    c->out = realloc(c->out, (size_t)r - done);
    memcpy(c->out, rbuf + done, (size_t)r - done);
    c->out_off = 0;
    c->out_len = (size_t)r - done;
    watch(c, 1);
    return;
  }
  watch(c, 0);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: tls-echo CERT.pem KEY.pem PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 512) < 0) {
    perror("tls-echo: listen");
    return 1;
  }
  socklen_t alen = sizeof a;
  getsockname(lfd, (struct sockaddr *)&a, &alen);
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  printf("ready port=%d (C, OpenSSL)\n", ntohs(a.sin_port));
  fflush(stdout);
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (c != NULL) {
        on_event(c);
        continue;
      }
      for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c = calloc(1, sizeof *c);
        c->fd = fd;
        c->ssl = SSL_new(ctx);
        SSL_set_fd(c->ssl, fd);
        SSL_set_accept_state(c->ssl);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      }
    }
  }
}
