// The application of the socket-API matrix (test/datapath/socket-api.test.ts): one
// program for both ends of a connection and for a socket-to-socket forwarder, so
// that every receive, send and close style an application may use is one
// command-line choice of one binary, compiled once.
//
//   sockapp serve   SPEC...            SPEC = port=P,<options>: listen on P, one child per connection
//   sockapp client  PAR SPEC...        SPEC = tag=T,host=IP,port=P,rep=R,<options>: R connections to IP:P,
//                                      at most PAR connections at a time over all SPECs
//   sockapp forward SPEC...            SPEC = port=P,to=IP:PORT,copy=splice|read: relay each connection
//
// Options (both ends must agree on size and first):
//   size=N        bytes each way (request from the client, reply from the server)
//   first=client  the client sends, half-closes, then reads the reply to end-of-file; the server reads
//                 the request to end-of-file, then replies and closes (first=server: the other way round)
//   recv=API      read readv recv recvmsg recvmmsg peek waitall splice fionread rcvlowat uring epoll
//   send=API      write writev sendfile splice zerocopy
//   conn=API      (client) connect tfo-sendto tfo-connect
//   end=STYLE     how this side closes: close rdwr (shutdown SHUT_RDWR first) linger0 (SO_LINGER 0: reset)
//   delay=MS      wait before this side's half-close (sending first) or close (sending second), times MESHLANE_LAB_SLOWDOWN
//   rcvtimeo=MS   SO_RCVTIMEO on the socket (a blocking read must still end with 0 at end-of-file)
//
// Every connection prints one JSON line (a single write, so lines of concurrent children never mix):
// what this side received (length, FNV-1a hash, intact = every expected byte in order), how its
// receiving ended (eof, err:ERRNO, hang), what it sent, its socket names and API-specific findings.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/errqueue.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif
#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30
#endif

/* A connection that neither ends nor fails within this time is reported as "hang"; this and the
 * other waits below scale with MESHLANE_LAB_SLOWDOWN, which emulated (qemu TCG) guests set. */
#define CONN_DEADLINE_S 10
static int slowdown = 1;
#define CHUNK 16384
#define BUF (256 * 1024)

struct spec {
	char tag[112], host[48];
	int port, rep, size, delay_ms, rcvtimeo_ms, server_first;
	char recv[16], send[16], conn[16], end[16], copy[16], to[64];
};

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "sockapp: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void copy_field(char *dst, size_t cap, const char *v, const char *key)
{
	if (strlen(v) >= cap)
		die("option %s: value '%s' too long", key, v);
	strcpy(dst, v);
}

static struct spec parse_spec(const char *text)
{
	struct spec s = { .rep = 1, .size = 1000 };
	strcpy(s.recv, "read");
	strcpy(s.send, "write");
	strcpy(s.conn, "connect");
	strcpy(s.end, "close");
	strcpy(s.copy, "splice");
	char *dup = strdup(text), *save = NULL;
	for (char *kv = strtok_r(dup, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		if (!eq)
			die("option '%s' in '%s' is not key=value", kv, text);
		*eq = 0;
		const char *k = kv, *v = eq + 1;
		if (!strcmp(k, "tag")) copy_field(s.tag, sizeof(s.tag), v, k);
		else if (!strcmp(k, "host")) copy_field(s.host, sizeof(s.host), v, k);
		else if (!strcmp(k, "port")) s.port = atoi(v);
		else if (!strcmp(k, "rep")) s.rep = atoi(v);
		else if (!strcmp(k, "size")) s.size = atoi(v);
		else if (!strcmp(k, "delay")) s.delay_ms = atoi(v);
		else if (!strcmp(k, "rcvtimeo")) s.rcvtimeo_ms = atoi(v);
		else if (!strcmp(k, "first")) {
			if (strcmp(v, "client") && strcmp(v, "server"))
				die("first=%s: want client or server", v);
			s.server_first = !strcmp(v, "server");
		} else if (!strcmp(k, "recv")) copy_field(s.recv, sizeof(s.recv), v, k);
		else if (!strcmp(k, "send")) copy_field(s.send, sizeof(s.send), v, k);
		else if (!strcmp(k, "conn")) copy_field(s.conn, sizeof(s.conn), v, k);
		else if (!strcmp(k, "end")) copy_field(s.end, sizeof(s.end), v, k);
		else if (!strcmp(k, "copy")) copy_field(s.copy, sizeof(s.copy), v, k);
		else if (!strcmp(k, "to")) copy_field(s.to, sizeof(s.to), v, k);
		else die("unknown option '%s' in '%s'", k, text);
	}
	free(dup);
	if (s.size < 0 || s.size > BUF * 4 || s.port <= 0 || s.port > 65535 || s.rep < 1)
		die("bad numbers in '%s'", text);
	return s;
}

/* The bytes of each direction: a xorshift stream seeded by direction and size, so a receiver
 * knows what it should get without being told. */
static uint64_t seed_of(int from_client, int size)
{
	return (from_client ? 0x9e3779b97f4a7c15ull : 0xc2b2ae3d27d4eb4full) ^ (uint64_t)size;
}

static void fill(unsigned char *buf, int size, uint64_t seed)
{
	uint64_t x = seed | 1;
	for (int i = 0; i < size; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)(x >> 32);
	}
}

/* What one side observed while receiving. */
struct rx {
	const unsigned char *want;
	int size;
	long got;
	long first_bad; /* -1: every byte so far as expected */
	uint64_t hash;
	char end[48];
	char extra[160];
};

static void rx_take(struct rx *r, const unsigned char *p, long n)
{
	for (long i = 0; i < n; i++) {
		long at = r->got + i;
		if (r->first_bad < 0 && (at >= r->size || p[i] != r->want[at]))
			r->first_bad = at;
		r->hash = (r->hash ^ p[i]) * 0x100000001b3ull;
	}
	r->got += n;
}

static void add_extra(struct rx *r, const char *fmt, ...)
{
	size_t len = strlen(r->extra);
	if (len + 2 >= sizeof(r->extra))
		return;
	if (len)
		r->extra[len++] = ' ';
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->extra + len, sizeof(r->extra) - len, fmt, ap);
	va_end(ap);
}

static volatile sig_atomic_t deadline_hit;
/* The relay's two sockets: at the deadline both are shut down, so that neither copying thread stays blocked. */
static volatile int relay_fds[2] = { -1, -1 };
static void on_alarm(int sig)
{
	(void)sig;
	deadline_hit = 1;
	for (int i = 0; i < 2; i++)
		if (relay_fds[i] >= 0)
			shutdown(relay_fds[i], SHUT_RDWR);
}

/* Ends a receive loop on n = the call's result; returns 1 when the loop should stop. */
static int rx_result(struct rx *r, long n)
{
	if (n > 0)
		return 0;
	if (n == 0)
		strcpy(r->end, "eof");
	else if (errno == EINTR && deadline_hit)
		strcpy(r->end, "hang");
	else if (errno == EINTR)
		return 0;
	else
		snprintf(r->end, sizeof(r->end), "err:%s", strerrorname_np(errno) ? strerrorname_np(errno) : "?");
	return 1;
}

static unsigned char rbuf[BUF], pbuf[BUF];

static void rx_loop(int fd, const char *api, struct rx *r)
{
	if (!strcmp(api, "read") || !strcmp(api, "recv")) {
		int use_recv = !strcmp(api, "recv");
		for (;;) {
			long n = use_recv ? recv(fd, rbuf, CHUNK, 0) : read(fd, rbuf, CHUNK);
			if (rx_result(r, n))
				return;
			rx_take(r, rbuf, n);
		}
	} else if (!strcmp(api, "readv") || !strcmp(api, "recvmsg")) {
		/* Uneven pieces, so that a short or misplaced piece shows in the hash. */
		for (;;) {
			struct iovec iov[3] = { { rbuf, 1000 }, { rbuf + 1000, 3000 }, { rbuf + 4000, CHUNK - 4000 } };
			long n;
			if (!strcmp(api, "readv")) {
				n = readv(fd, iov, 3);
			} else {
				struct msghdr m = { .msg_iov = iov, .msg_iovlen = 3 };
				n = recvmsg(fd, &m, 0);
			}
			if (rx_result(r, n))
				return;
			rx_take(r, rbuf, n);
		}
	} else if (!strcmp(api, "recvmmsg")) {
		for (;;) {
			struct iovec iov[4];
			struct mmsghdr mm[4];
			memset(mm, 0, sizeof(mm));
			for (int i = 0; i < 4; i++) {
				iov[i] = (struct iovec){ rbuf + i * 4096, 4096 };
				mm[i].msg_hdr.msg_iov = &iov[i];
				mm[i].msg_hdr.msg_iovlen = 1;
			}
			int k = recvmmsg(fd, mm, 4, MSG_WAITFORONE, NULL);
			if (k < 0 && rx_result(r, -1))
				return;
			int eof = 0;
			for (int i = 0; i < k && !eof; i++) {
				if (mm[i].msg_len == 0)
					eof = 1;
				else
					rx_take(r, rbuf + i * 4096, mm[i].msg_len);
			}
			if (eof && rx_result(r, 0))
				return;
		}
	} else if (!strcmp(api, "peek")) {
		int mismatches = 0;
		for (;;) {
			long p = recv(fd, pbuf, CHUNK, MSG_PEEK);
			if (rx_result(r, p))
				break;
			long n = read(fd, rbuf, p);
			if (n != p || memcmp(pbuf, rbuf, p))
				mismatches++;
			if (rx_result(r, n))
				break;
			rx_take(r, rbuf, n);
		}
		add_extra(r, "peek=%s", mismatches ? "differs-from-read" : "same-as-read");
	} else if (!strcmp(api, "waitall")) {
		/* One call for the whole expected size: TCP returns it all (or less only at end-of-file). */
		long n = recv(fd, rbuf, r->size ? r->size : 1, MSG_WAITALL);
		add_extra(r, "waitall-first=%ld", n);
		if (rx_result(r, n))
			return;
		rx_take(r, rbuf, n);
		rx_loop(fd, "read", r);
	} else if (!strcmp(api, "splice")) {
		int p[2];
		if (pipe(p))
			die("pipe: %s", strerror(errno));
		for (;;) {
			long n = splice(fd, NULL, p[1], NULL, 65536, SPLICE_F_MOVE);
			if (rx_result(r, n))
				break;
			for (long left = n; left > 0;) {
				long m = read(p[0], rbuf, left);
				if (m <= 0)
					die("reading back the pipe: %s", strerror(errno));
				rx_take(r, rbuf, m);
				left -= m;
			}
		}
		close(p[0]);
		close(p[1]);
	} else if (!strcmp(api, "fionread")) {
		/* As an application sizes its reads: wait until readable, ask how much, read that much;
		 * readable with 0 available means the peer closed. */
		int short_reads = 0;
		for (;;) {
			struct pollfd pf = { fd, POLLIN, 0 };
			if (poll(&pf, 1, -1) < 0) {
				if (rx_result(r, -1))
					break;
				continue;
			}
			int avail = 0;
			if (ioctl(fd, FIONREAD, &avail))
				die("FIONREAD: %s", strerror(errno));
			if (avail == 0) {
				long n = recv(fd, rbuf, CHUNK, MSG_DONTWAIT);
				if (n > 0) {
					strcpy(r->end, "fionread-0-with-data");
					break;
				}
				if (rx_result(r, n))
					break;
				continue;
			}
			long want = avail < BUF ? avail : BUF;
			long n = read(fd, rbuf, want);
			if (rx_result(r, n))
				break;
			if (n < want)
				short_reads++;
			rx_take(r, rbuf, n);
		}
		add_extra(r, "fionread=%s", short_reads ? "more-than-readable" : "exact");
	} else if (!strcmp(api, "rcvlowat")) {
		int lowat = r->size < 32768 ? (r->size ? r->size : 1) : 32768, under = 0, stalls = 0;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)))
			die("SO_RCVLOWAT: %s", strerror(errno));
		for (;;) {
			struct pollfd pf = { fd, POLLIN, 0 };
			int pr = poll(&pf, 1, 3000 * slowdown);
			if (pr == 0)
				stalls++; /* readable by the data, but poll never said so */
			long n = read(fd, rbuf, 65536);
			if (rx_result(r, n))
				break;
			if (n < lowat && r->got + n < r->size)
				under++;
			rx_take(r, rbuf, n);
		}
		add_extra(r, "lowat=%s poll=%s", under ? "under" : "kept", stalls ? "stalled" : "woke");
	} else if (!strcmp(api, "uring")) {
		struct io_uring ring;
		int e = io_uring_queue_init(4, &ring, 0);
		if (e < 0) {
			snprintf(r->end, sizeof(r->end), "io_uring-unavailable:%s", strerrorname_np(-e));
			return;
		}
		for (;;) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			io_uring_prep_recv(sqe, fd, rbuf, CHUNK, 0);
			io_uring_submit(&ring);
			struct io_uring_cqe *cqe;
			int w = io_uring_wait_cqe(&ring, &cqe);
			long n;
			if (w < 0) {
				errno = -w;
				n = -1;
			} else {
				n = cqe->res;
				if (n < 0) {
					errno = -n;
					n = -1;
				}
				io_uring_cqe_seen(&ring, cqe);
			}
			if (rx_result(r, n))
				break;
			rx_take(r, rbuf, n);
		}
		io_uring_queue_exit(&ring);
	} else if (!strcmp(api, "epoll")) {
		/* An event loop's way: non-blocking, woken by epoll, read until EAGAIN. */
		int fl = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		int ep = epoll_create1(0);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = fd };
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
		for (int done = 0; !done;) {
			int k = epoll_wait(ep, &ev, 1, -1);
			if (k < 0) {
				if (rx_result(r, -1))
					break;
				continue;
			}
			for (;;) {
				long n = read(fd, rbuf, CHUNK);
				if (n < 0 && errno == EAGAIN)
					break;
				if (rx_result(r, n)) {
					done = 1;
					break;
				}
				rx_take(r, rbuf, n);
			}
		}
		close(ep);
		fcntl(fd, F_SETFL, fl);
	} else {
		die("unknown recv api '%s'", api);
	}
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) && errno == EINTR && !deadline_hit)
		;
}

/* What one side observed while sending. */
struct tx {
	long sent;
	char err[48];
	char extra[96];
};

static int tx_fail(struct tx *t, const char *what)
{
	snprintf(t->err, sizeof(t->err), "%s:%s", what, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
	return -1;
}

/* Waits (bounded) for the kernel to report every MSG_ZEROCOPY send complete, as an application
 * must before it reuses the buffer. Returns how many of `calls` were reported. */
static long zerocopy_completions(int fd, long calls, int *copied)
{
	long done = 0;
	for (int waited = 0; done < calls && waited < 2000 * slowdown;) {
		struct pollfd pf = { fd, 0, 0 };
		if (poll(&pf, 1, 100) <= 0) {
			waited += 100;
			continue;
		}
		char control[128];
		struct msghdr m = { .msg_control = control, .msg_controllen = sizeof(control) };
		if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
			waited += 100;
			continue;
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			struct sock_extended_err *ee = (struct sock_extended_err *)CMSG_DATA(c);
			if (ee->ee_origin != SO_EE_ORIGIN_ZEROCOPY)
				continue;
			done += (long)ee->ee_data - ee->ee_info + 1;
			if (ee->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
				*copied = 1;
		}
	}
	return done;
}

static int tx_all(int fd, const char *api, const unsigned char *buf, int size, struct tx *t)
{
	if (!strcmp(api, "write")) {
		while (t->sent < size) {
			long n = write(fd, buf + t->sent, size - t->sent < CHUNK ? size - t->sent : CHUNK);
			if (n < 0)
				return tx_fail(t, "write");
			t->sent += n;
		}
	} else if (!strcmp(api, "writev")) {
		while (t->sent < size) {
			long left = size - t->sent, a = left < 700 ? left : 700, b = left - a < 5000 ? left - a : 5000;
			long c = left - a - b < CHUNK ? left - a - b : CHUNK;
			struct iovec iov[3] = { { (void *)(buf + t->sent), a }, { (void *)(buf + t->sent + a), b }, { (void *)(buf + t->sent + a + b), c } };
			long n = writev(fd, iov, 3);
			if (n < 0)
				return tx_fail(t, "writev");
			t->sent += n;
		}
	} else if (!strcmp(api, "sendfile")) {
		int mf = memfd_create("payload", 0);
		if (mf < 0 || write(mf, buf, size) != size)
			die("memfd: %s", strerror(errno));
		off_t off = 0;
		while (off < size) {
			long n = sendfile(fd, mf, &off, size - off);
			if (n < 0)
				return close(mf), tx_fail(t, "sendfile");
		}
		t->sent = off;
		close(mf);
	} else if (!strcmp(api, "splice")) {
		int p[2];
		if (pipe(p))
			die("pipe: %s", strerror(errno));
		while (t->sent < size) {
			long chunk = size - t->sent < 65536 ? size - t->sent : 65536;
			long in = write(p[1], buf + t->sent, chunk);
			if (in <= 0)
				die("filling the pipe: %s", strerror(errno));
			for (long left = in; left > 0;) {
				long n = splice(p[0], NULL, fd, NULL, left, SPLICE_F_MOVE);
				if (n < 0)
					return close(p[0]), close(p[1]), tx_fail(t, "splice");
				left -= n;
				t->sent += n;
			}
		}
		close(p[0]);
		close(p[1]);
	} else if (!strcmp(api, "zerocopy")) {
		int one = 1;
		if (setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)))
			return tx_fail(t, "SO_ZEROCOPY");
		long calls = 0;
		int copied = 0;
		while (t->sent < size) {
			long n = send(fd, buf + t->sent, size - t->sent < 65536 ? size - t->sent : 65536, MSG_ZEROCOPY);
			if (n < 0 && errno == ENOBUFS) { /* out of option memory: wait for completions */
				zerocopy_completions(fd, 1, &copied);
				continue;
			}
			if (n < 0)
				return tx_fail(t, "send");
			t->sent += n;
			calls++;
		}
		/* Completions are cumulative ranges; the ones consumed on ENOBUFS are counted again below
		 * only if not yet seen, so ask for what is still missing. */
		long seen = zerocopy_completions(fd, calls, &copied);
		snprintf(t->extra, sizeof(t->extra), "zerocopy=%s", seen >= calls ? "all-completed" : "completions-missing");
	} else {
		die("unknown send api '%s'", api);
	}
	return 0;
}

static void name_of(int fd, int peer, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if ((peer ? getpeername(fd, (struct sockaddr *)&ss, &len) : getsockname(fd, (struct sockaddr *)&ss, &len)) == 0) {
		if (ss.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
	}
	snprintf(out, cap, "%s:%d", ip, port);
}

/* Until the peer acknowledged everything this socket sent (bounded by the connection's deadline). */
static void wait_acked(int fd)
{
	int queued;
	while (!deadline_hit && ioctl(fd, SIOCOUTQ, &queued) == 0 && queued > 0)
		sleep_ms(5);
}

static void finish(int fd, const struct spec *s)
{
	if (!strcmp(s->end, "linger0")) {
		/* A reset discards what is still in the send queue: "reset after sending" means after
		 * the bytes left. Under qemu TCG, 200 kB through a sidecar took longer than the row's
		 * delay, and the iptables run itself lost a tail of varying length. */
		wait_acked(fd);
		struct linger l = { 1, 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	} else if (!strcmp(s->end, "rdwr")) {
		shutdown(fd, SHUT_RDWR);
	} else if (strcmp(s->end, "close")) {
		die("unknown end style '%s'", s->end);
	}
	close(fd);
}

static unsigned char txbuf[BUF * 4], wantbuf[BUF * 4];

/* One connection's exchange (fd connected), from either end; prints its report. `presend` bytes of
 * this side's stream already went out (with a TFO SYN). */
static void exchange(int fd, const struct spec *s, int is_client, const char *id, long presend)
{
	char local[80], peer[80], conn_extra[64] = "";
	name_of(fd, 0, local, sizeof(local));
	name_of(fd, 1, peer, sizeof(peer));
	if (s->rcvtimeo_ms) {
		struct timeval tv = { s->rcvtimeo_ms / 1000, (s->rcvtimeo_ms % 1000) * 1000 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	fill(txbuf, s->size, seed_of(is_client, s->size));
	fill(wantbuf, s->size, seed_of(!is_client, s->size));
	struct rx r = { .want = wantbuf, .size = s->size, .first_bad = -1, .hash = 0xcbf29ce484222325ull };
	struct tx t = { .sent = presend };
	int sends_first = is_client != s->server_first;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (sends_first) {
		if (tx_all(fd, s->send, txbuf, s->size, &t) == 0) {
			sleep_ms(s->delay_ms * slowdown);
			shutdown(fd, SHUT_WR);
		}
		rx_loop(fd, s->recv, &r);
	} else {
		rx_loop(fd, s->recv, &r);
		if (tx_all(fd, s->send, txbuf, s->size, &t) == 0)
			sleep_ms(s->delay_ms * slowdown);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (is_client && strcmp(s->conn, "connect")) {
		/* Whether the SYN's data was accepted: the same under any data path, or TFO changed meaning. */
		struct tcp_info ti;
		socklen_t len = sizeof(ti);
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0)
			snprintf(conn_extra, sizeof(conn_extra), "syn-data-acked=%d", !!(ti.tcpi_options & TCPI_OPT_SYN_DATA));
	}
	finish(fd, s);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	char line[1024];
	int n = snprintf(line, sizeof(line),
			 "{\"side\":\"%s\",\"id\":\"%s\",\"rx\":%ld,\"hash\":\"%016llx\",\"intact\":%s,\"firstBad\":%ld,\"end\":\"%s\","
			 "\"tx\":%ld,\"txErr\":\"%s\",\"local\":\"%s\",\"peer\":\"%s\",\"extra\":\"%s%s%s%s%s\",\"ms\":%ld}\n",
			 is_client ? "client" : "server", id, r.got, (unsigned long long)r.hash,
			 r.first_bad < 0 && r.got == s->size ? "true" : "false", r.first_bad, r.end, t.sent, t.err, local, peer,
			 r.extra, *r.extra && *t.extra ? " " : "", t.extra, *conn_extra && (*r.extra || *t.extra) ? " " : "", conn_extra, ms);
	if (write(1, line, n) != n)
		exit(1);
}

static void parse_addr(const char *host, int port, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(port);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		die("bad IPv4 address '%s'", host);
}

static int listen_on(int port)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 256))
		die("listen on %d: %s", port, strerror(errno));
	return fd;
}

static void arm_deadline(void)
{
	struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART: blocked calls return EINTR */
	sigaction(SIGALRM, &sa, NULL);
	alarm(CONN_DEADLINE_S * slowdown);
}

/* Accepts on every listener; each connection is handled by a child of its own. */
static void accept_loop(int n, const struct spec *specs, void (*handle)(int fd, const struct spec *s))
{
	struct pollfd *pf = calloc(n, sizeof(*pf));
	for (int i = 0; i < n; i++)
		pf[i] = (struct pollfd){ listen_on(specs[i].port), POLLIN, 0 };
	signal(SIGCHLD, SIG_IGN);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		if (poll(pf, n, -1) < 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (!(pf[i].revents & POLLIN))
				continue;
			int fd = accept(pf[i].fd, NULL, NULL);
			if (fd < 0)
				continue;
			if (fork() == 0) {
				for (int j = 0; j < n; j++)
					close(pf[j].fd);
				arm_deadline();
				handle(fd, &specs[i]);
				_exit(0);
			}
			close(fd);
		}
	}
}

static void serve_one(int fd, const struct spec *s)
{
	char id[16];
	snprintf(id, sizeof(id), "%d", s->port);
	exchange(fd, s, 0, id, 0);
}

/* One client connection by the spec's connect API, then the exchange. */
static void client_one(const struct spec *s, int iteration)
{
	char id[128];
	snprintf(id, sizeof(id), "%s#%d", s->tag, iteration);
	struct sockaddr_in sa;
	parse_addr(s->host, s->port, &sa);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0), rc = 0;
	long presend = 0;
	if (!strcmp(s->conn, "connect")) {
		rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	} else if (!strcmp(s->conn, "tfo-connect")) {
		rc = setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one));
		if (!rc)
			rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	} else if (!strcmp(s->conn, "tfo-sendto")) {
		/* The first bytes ride on the SYN (when a cookie allows); the exchange sends the rest. */
		if (s->server_first)
			die("conn=tfo-sendto needs first=client");
		fill(txbuf, s->size, seed_of(1, s->size));
		presend = sendto(fd, txbuf, s->size < 1000 ? s->size : 1000, MSG_FASTOPEN, (struct sockaddr *)&sa, sizeof(sa));
		rc = presend < 0 ? -1 : 0;
	} else {
		die("unknown conn api '%s'", s->conn);
	}
	if (rc) {
		char line[256];
		int n = snprintf(line, sizeof(line), "{\"side\":\"client\",\"id\":\"%s\",\"end\":\"connect:%s\"}\n", id, strerrorname_np(errno));
		close(fd);
		if (write(1, line, n) != n)
			exit(1);
		return;
	}
	exchange(fd, s, 1, id, presend);
}

/* Runs every spec's connections, at most `par` at a time across all specs, so that a hung
 * connection (ended by its deadline) overlaps the others instead of adding up. */
static void client(int n, const struct spec *specs, int par)
{
	signal(SIGCHLD, SIG_DFL);
	int running = 0;
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < specs[i].rep; k++) {
			if (running >= par) {
				wait(NULL);
				running--;
			}
			pid_t pid = fork();
			if (pid == 0) {
				arm_deadline();
				client_one(&specs[i], k);
				_exit(0);
			}
			if (pid < 0)
				die("fork: %s", strerror(errno));
			running++;
		}
	}
	while (running-- > 0)
		wait(NULL);
}

/* The forwarder: copies each direction in a thread of its own, the way Go's io.Copy does
 * between two TCPConns (splice through a pipe on Linux), half-closing the far side at end-of-file. */
struct leg {
	int from, to;
	const char *copy;
	long bytes;
	char end[48];
};

static void *copy_leg(void *arg)
{
	struct leg *l = arg;
	struct rx r = { .first_bad = -1 };
	int p[2] = { -1, -1 };
	if (!strcmp(l->copy, "splice") && pipe(p))
		die("pipe: %s", strerror(errno));
	static __thread unsigned char buf[65536];
	for (;;) {
		long n = p[0] >= 0 ? splice(l->from, NULL, p[1], NULL, 65536, SPLICE_F_MOVE) : read(l->from, buf, sizeof(buf));
		if (rx_result(&r, n))
			break;
		for (long left = n; left > 0;) {
			long m = p[0] >= 0 ? splice(p[0], NULL, l->to, NULL, left, SPLICE_F_MOVE) : write(l->to, buf + (n - left), left);
			if (m <= 0) {
				snprintf(r.end, sizeof(r.end), "write:%s", strerrorname_np(errno));
				goto out;
			}
			left -= m;
		}
		l->bytes += n;
	}
	shutdown(l->to, SHUT_WR);
out:
	strcpy(l->end, r.end);
	if (p[0] >= 0)
		close(p[0]), close(p[1]);
	return NULL;
}

static void forward_one(int fd, const struct spec *s)
{
	char host[64];
	strcpy(host, s->to);
	char *colon = strrchr(host, ':');
	if (!colon)
		die("to=%s: want IP:PORT", s->to);
	*colon = 0;
	struct sockaddr_in sa;
	parse_addr(host, atoi(colon + 1), &sa);
	int up = socket(AF_INET, SOCK_STREAM, 0);
	char line[512];
	int n;
	if (connect(up, (struct sockaddr *)&sa, sizeof(sa))) {
		n = snprintf(line, sizeof(line), "{\"side\":\"forwarder\",\"id\":\"%d\",\"end\":\"connect:%s\"}\n", s->port, strerrorname_np(errno));
	} else {
		relay_fds[0] = fd;
		relay_fds[1] = up;
		struct leg a = { fd, up, s->copy, 0, "" }, b = { up, fd, s->copy, 0, "" };
		pthread_t ta, tb;
		pthread_create(&ta, NULL, copy_leg, &a);
		pthread_create(&tb, NULL, copy_leg, &b);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		n = snprintf(line, sizeof(line), "{\"side\":\"forwarder\",\"id\":\"%d\",\"rx\":%ld,\"end\":\"%s\",\"tx\":%ld,\"extra\":\"reply-leg=%s\"}\n",
			     s->port, a.bytes, deadline_hit ? "hang" : a.end, b.bytes, b.end);
	}
	close(up);
	close(fd);
	if (write(1, line, n) != n)
		exit(1);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *slow = getenv("MESHLANE_LAB_SLOWDOWN");
	if (slow && atoi(slow) > 1)
		slowdown = atoi(slow);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 3)
		die("usage: sockapp serve SPEC... | client PAR SPEC... | forward SPEC...");
	int first = !strcmp(argv[1], "client") ? 3 : 2, n = argc - first;
	if (n < 1)
		die("%s: no SPEC given", argv[1]);
	struct spec *specs = calloc(n, sizeof(*specs));
	for (int i = 0; i < n; i++)
		specs[i] = parse_spec(argv[first + i]);
	if (!strcmp(argv[1], "serve"))
		accept_loop(n, specs, serve_one);
	else if (!strcmp(argv[1], "forward"))
		accept_loop(n, specs, forward_one);
	else if (!strcmp(argv[1], "client")) {
		int par = atoi(argv[2]);
		if (par < 1)
			die("client: PAR must be a positive number, not '%s'", argv[2]);
		client(n, specs, par);
	} else
		die("unknown command '%s'", argv[1]);
	return 0;
}
