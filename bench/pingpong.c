// The per-hop micro-benchmark: request/response over one TCP connection, as a
// sidecar hop does it. C, so that the figure is the kernel's cost per message
// and not a runtime's. Built by bench/hop.ts at bench time.
//
//   pingpong serve <port>                           echo each connection until EOF
//   pingpong client <ip> <port> <bytes> <seconds>   one JSON line with the round-trip times
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSG (1 << 20)
#define MAX_SAMPLES (1 << 22)
#define WARMUP_ROUND_TRIPS 1000

static void die(const char *what)
{
	fprintf(stderr, "pingpong: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write");
		buf += w;
		n -= (size_t)w;
	}
}

static void read_all(int fd, char *buf, size_t n)
{
	while (n) {
		ssize_t r = read(fd, buf, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read");
		if (r == 0) {
			errno = ECONNRESET;
			die("read: peer closed early");
		}
		buf += r;
		n -= (size_t)r;
	}
}

static int serve(int port)
{
	static char buf[MAX_MSG];
	int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (ls < 0)
		die("socket");
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 16))
		die("bind/listen");
	printf("listening %d\n", port);
	fflush(stdout);
	for (;;) {
		int c = accept(ls, 0, 0);
		if (c < 0)
			die("accept");
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		ssize_t r;
		while ((r = read(c, buf, sizeof(buf))) > 0)
			write_all(c, buf, (size_t)r);
		close(c);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int client(const char *ip, int port, size_t size, double seconds)
{
	static char buf[MAX_MSG];
	static double rtt[MAX_SAMPLES];
	if (size == 0 || size > MAX_MSG) {
		fprintf(stderr, "pingpong: message size must be 1..%d bytes\n", MAX_MSG);
		return 2;
	}
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (s < 0)
		die("socket");
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
		fprintf(stderr, "pingpong: not an IPv4 address: %s\n", ip);
		return 2;
	}
	if (connect(s, (struct sockaddr *)&a, sizeof(a)))
		die("connect");
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(buf, 'p', size);
	for (int i = 0; i < WARMUP_ROUND_TRIPS; i++) {
		write_all(s, buf, size);
		read_all(s, buf, size);
	}
	size_t n = 0;
	double start = now_us(), end = start + seconds * 1e6, t = start;
	while (t < end && n < MAX_SAMPLES) {
		write_all(s, buf, size);
		read_all(s, buf, size);
		double t2 = now_us();
		rtt[n++] = t2 - t;
		t = t2;
	}
	close(s);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += rtt[i];
	qsort(rtt, n, sizeof(rtt[0]), cmp_double);
	printf("{\"warmupRoundTrips\":%d,\"roundTrips\":%zu,\"seconds\":%.6f,\"meanUs\":%.3f,\"p50Us\":%.3f,\"p99Us\":%.3f}\n",
	       WARMUP_ROUND_TRIPS, n, (t - start) / 1e6, sum / n, rtt[n / 2], rtt[(size_t)(n * 0.99)]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "serve"))
		return serve(atoi(argv[2]));
	if (argc == 6 && !strcmp(argv[1], "client"))
		return client(argv[2], atoi(argv[3]), (size_t)atol(argv[4]), atof(argv[5]));
	fprintf(stderr, "usage: pingpong serve <port> | client <ip> <port> <bytes> <seconds>\n");
	return 2;
}
