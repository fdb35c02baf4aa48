// A TCP Fast Open client for the data-path tests: opens <count> connections one
// after the other to <host> <port>, each sending <size> bytes in its SYN (when it
// holds a cookie) either with sendto(MSG_FASTOPEN) or with TCP_FASTOPEN_CONNECT
// and an ordinary connect() + write(), half-closes, and checks that the echo
// comes back whole. The kernel reports whether the SYN's data was taken
// (TCP_INFO: TCPI_OPT_SYN_DATA).
//
//   tfo-client <host> <port> <count> <sendto|connect> <size>
//   prints "ok <n> failed <n> syn_data <n>"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef TCPI_OPT_SYN_DATA
#define TCPI_OPT_SYN_DATA 32
#endif

static int one(const struct addrinfo *ai, int use_sendto, const char *payload, size_t size, int *syn_data)
{
	int fd = socket(ai->ai_family, SOCK_STREAM, 0), on = 1;
	if (fd < 0)
		return -1;
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	size_t sent = 0;
	if (use_sendto) {
		ssize_t n = sendto(fd, payload, size, MSG_FASTOPEN, ai->ai_addr, ai->ai_addrlen);
		if (n < 0)
			goto fail;
		sent = n;
	} else {
		if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &on, sizeof(on)) || connect(fd, ai->ai_addr, ai->ai_addrlen))
			goto fail;
	}
	while (sent < size) {
		ssize_t n = write(fd, payload + sent, size - sent);
		if (n <= 0)
			goto fail;
		sent += n;
	}
	shutdown(fd, SHUT_WR);
	char *got = malloc(size + 1);
	size_t have = 0;
	for (;;) {
		ssize_t n = read(fd, got + have, size + 1 - have);
		if (n <= 0) {
			if (n < 0)
				have = size + 1; /* an error: never a match */
			break;
		}
		have += n;
		if (have > size)
			break;
	}
	int ok = have == size && memcmp(got, payload, size) == 0;
	free(got);
	struct tcp_info info;
	socklen_t len = sizeof(info);
	if (!getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) && (info.tcpi_options & TCPI_OPT_SYN_DATA))
		(*syn_data)++;
	close(fd);
	return ok ? 0 : -1;
fail:
	close(fd);
	return -1;
}

int main(int argc, char **argv)
{
	if (argc != 6 || (strcmp(argv[4], "sendto") && strcmp(argv[4], "connect"))) {
		fprintf(stderr, "usage: %s <host> <port> <count> <sendto|connect> <size>\n", argv[0]);
		return 2;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST }, *ai;
	if (getaddrinfo(argv[1], argv[2], &hints, &ai)) {
		fprintf(stderr, "bad address %s %s\n", argv[1], argv[2]);
		return 2;
	}
	int count = atoi(argv[3]), use_sendto = !strcmp(argv[4], "sendto"), ok = 0, failed = 0, syn_data = 0;
	size_t size = strtoul(argv[5], NULL, 10);
	char *payload = malloc(size);
	for (size_t i = 0; i < size; i++)
		payload[i] = (char)('a' + i % 26);
	for (int i = 0; i < count; i++) {
		if (one(ai, use_sendto, payload, size, &syn_data))
			failed++;
		else
			ok++;
	}
	printf("ok %d failed %d syn_data %d\n", ok, failed, syn_data);
	return 0;
}
