// The differential test's two ends.
//   differential-probe serve TAG PORT...      prints "ready" once every port listens
//   differential-probe connect HOST PORT...   one line per target, in order
// serve accepts on every port given (IPv4 and IPv6), and answers each connection with
// one line "<tag> <how> <original destination>" and closes. The
// original destination is SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6), as
// Envoy reads it, so under iptables conntrack answers and under meshlane its getsockopt
// program; where neither knows one (a connection nobody redirected) the socket's own
// address is what the client reached, and the line says "local".
// connect reaches each target (2 s limit) and prints the line it was answered with,
// "refused", "timeout" or "error <errno>".
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

static void fmt(const struct sockaddr_storage *ss, char *out, size_t n) {
  char a[INET6_ADDRSTRLEN];
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *s = (const void *)ss;
    inet_ntop(AF_INET, &s->sin_addr, a, sizeof a);
    snprintf(out, n, "%s:%u", a, ntohs(s->sin_port));
  } else {
    const struct sockaddr_in6 *s = (const void *)ss;
    inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof a);
    snprintf(out, n, "[%s]:%u", a, ntohs(s->sin6_port));
  }
}

static void reach(const char *host, const char *port) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV}, *ai;
  if (getaddrinfo(host, port, &hints, &ai)) { printf("error badaddress\n"); return; }
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(ai);
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  if (r && errno != EINPROGRESS) { printf(errno == ECONNREFUSED ? "refused\n" : "error %d\n", errno); close(fd); return; }
  if (poll(&p, 1, 2000) != 1) { printf("timeout\n"); close(fd); return; }
  int err = 0; socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) { printf(err == ECONNREFUSED ? "refused\n" : "error %d\n", err); close(fd); return; }
  char buf[256]; size_t got = 0;
  p.events = POLLIN;
  while (got < sizeof buf - 1 && poll(&p, 1, 2000) == 1) {
    ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
    if (n <= 0) break;
    got += n;
    if (memchr(buf, '\n', got)) break;
  }
  buf[got] = 0;
  char *nl = strchr(buf, '\n');
  if (nl) *nl = 0;
  printf("%s\n", got ? buf : "closed");
  close(fd);
}

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "connect")) {
    for (int i = 2; i + 1 < argc; i += 2) reach(argv[i], argv[i + 1]);
    return 0;
  }
  if (argc < 4 || strcmp(argv[1], "serve")) return 2;
  argv++;
  argc--;
  int nfds = 0;
  struct pollfd fds[64];
  for (int i = 2; i < argc && nfds < 62; i++) {
    int port = atoi(argv[i]);
    for (int fam = 0; fam < 2; fam++) {
      int fd = socket(fam ? AF_INET6 : AF_INET, SOCK_STREAM, 0), one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      int r;
      if (fam) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
        r = bind(fd, (void *)&a, sizeof a);
      } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
        r = bind(fd, (void *)&a, sizeof a);
      }
      if (r || listen(fd, 512)) { fprintf(stderr, "port %d: %s\n", port, strerror(errno)); return 1; }
      fds[nfds++] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
  }
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    if (poll(fds, nfds, -1) < 0) continue;
    for (int i = 0; i < nfds; i++) {
      if (!(fds[i].revents & POLLIN)) continue;
      int c = accept(fds[i].fd, NULL, NULL);
      if (c < 0) continue;
      struct sockaddr_storage ss = {0};
      socklen_t len = sizeof ss;
      char where[80], line[128];
      int v6 = (i % 2) == 1;
      const char *how = "origdst";
      if (getsockopt(c, v6 ? SOL_IPV6 : SOL_IP, v6 ? IP6T_SO_ORIGINAL_DST : SO_ORIGINAL_DST, &ss, &len) != 0) {
        how = "local";
        len = sizeof ss;
        getsockname(c, (void *)&ss, &len);
      }
      fmt(&ss, where, sizeof where);
      int n = snprintf(line, sizeof line, "%s %s %s\n", argv[1], how, where);
      (void)!write(c, line, n);
      close(c);
    }
  }
}
