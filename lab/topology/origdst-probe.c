// A minimal "sidecar" for the original-destination tests: accepts one TCP
// connection on the given port and family, asks the kernel where it was
// originally headed exactly as Envoy does (SOL_IP/SO_ORIGINAL_DST for IPv4,
// SOL_IPV6/IP6T_SO_ORIGINAL_DST for IPv6), prints the answer, then echoes the
// connection until the peer half-closes. HAProxy cannot stand in here: it only
// ever asks SOL_IP, so it has no IPv6 original destination.
//
//   origdst-probe <port> <4|6>   prints "ready", then "client <address> <port>" (the accepted
//                                socket's peer: where the sidecar sees the app come from), then
//                                "origdst <address> <port>" or "origdst-error <errno>"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SO_ORIGINAL_DST 80
#define IP6T_SO_ORIGINAL_DST 80

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[2], "4") && strcmp(argv[2], "6"))) {
		fprintf(stderr, "usage: %s <port> <4|6>\n", argv[0]);
		return 2;
	}
	int v4 = !strcmp(argv[2], "4"), one = 1;
	int lfd = socket(v4 ? AF_INET : AF_INET6, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in any4 = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
	struct sockaddr_in6 any6 = { .sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[1])), .sin6_addr = in6addr_any };
	if (!v4)
		setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if ((v4 ? bind(lfd, (struct sockaddr *)&any4, sizeof(any4)) : bind(lfd, (struct sockaddr *)&any6, sizeof(any6))) || listen(lfd, 8)) {
		perror("listen");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);

	int fd = accept(lfd, NULL, NULL);
	if (fd < 0) {
		perror("accept");
		return 1;
	}
	struct sockaddr_storage orig;
	socklen_t len = sizeof(orig);
	char text[INET6_ADDRSTRLEN] = "";
	if (getpeername(fd, (struct sockaddr *)&orig, &len) == 0) {
		int port = orig.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&orig)->sin_port) : ntohs(((struct sockaddr_in6 *)&orig)->sin6_port);
		void *addr = orig.ss_family == AF_INET ? (void *)&((struct sockaddr_in *)&orig)->sin_addr : (void *)&((struct sockaddr_in6 *)&orig)->sin6_addr;
		printf("client %s %d\n", inet_ntop(orig.ss_family, addr, text, sizeof(text)), port);
	}
	len = sizeof(orig);
	int rc = v4 ? getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &len)
		    : getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &orig, &len);
	if (rc) {
		printf("origdst-error %d\n", errno);
	} else if (orig.ss_family == AF_INET) {
		struct sockaddr_in *sa = (struct sockaddr_in *)&orig;
		printf("origdst %s %d\n", inet_ntop(AF_INET, &sa->sin_addr, text, sizeof(text)), ntohs(sa->sin_port));
	} else {
		struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&orig;
		printf("origdst %s %d\n", inet_ntop(AF_INET6, &sa->sin6_addr, text, sizeof(text)), ntohs(sa->sin6_port));
	}
	fflush(stdout);

	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, n - off);
			if (w <= 0)
				return 1;
			off += w;
		}
	}
	close(fd);
	return 0;
}
