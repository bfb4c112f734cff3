// reference.c is the bench's reference NFLOG receiver: the least work any
// reader of an NFLOG group has to do, so that its CPU time per message is the
// floor the kernel-to-user transfer costs on the machine.
//
// It binds one group in a single configuration request with the settings the
// bench gives it (the exporter's: copy range, kernel batch size, queue
// threshold, flush timeout, sequence-number flags), sets the socket receive
// buffer (SO_RCVBUFFORCE) and NETLINK_NO_ENOBUFS, then blocks in one recvfrom
// per kernel batch and walks the batch's messages, counting packet messages
// and the gaps in their per-instance sequence numbers (messages the kernel
// built but could not queue). It decodes and classifies nothing.
//
// On SIGTERM or SIGINT it prints
//
//	received=N lost=N datagrams=N truncated=N no_seq=N errors=N
//
// and exits 0.
//
// Usage: reference -g GROUP -r COPY_RANGE -N BATCH_BYTES -q QTHRESHOLD
//                  -t FLUSH_TIMEOUT_CS -b RCVBUF_BYTES [-G]
//   -G also asks for global sequence numbers (NFULNL_CFG_F_SEQ_GLOBAL), as
//      the exporter does: every message then carries one attribute more.
//   A value of 0 leaves that setting at the kernel's default.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

// The same receive buffer as the exporter's: larger than the largest kernel
// batch (128 KiB), so no datagram is truncated.
#define BUFLEN (256 * 1024)

static unsigned long long received, lost, datagrams, truncated, noseq, errors;
static uint32_t next_seq;
static int started;

// A signal that arrives while the loop waits in (or is about to enter)
// recvfrom ends the wait at once; one that arrives while a datagram is counted
// only sets stop, and the loop ends after the datagram.
static sigjmp_buf waiting_env;
static volatile sig_atomic_t waiting, stop;

static void on_signal(int sig) {
	(void)sig;
	stop = 1;
	if (waiting) siglongjmp(waiting_env, 1);
}

static unsigned long parse(const char *s, const char *what) {
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0') {
		fprintf(stderr, "reference: %s '%s' is not a number\n", what, s);
		exit(2);
	}
	return v;
}

static void put_attr(struct nlmsghdr *n, uint16_t type, const void *data, uint16_t len) {
	struct nlattr *a = (struct nlattr *)((char *)n + NLMSG_ALIGN(n->nlmsg_len));
	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	memcpy((char *)a + NLA_HDRLEN, data, len);
	n->nlmsg_len = NLMSG_ALIGN(n->nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static void put_u32(struct nlmsghdr *n, uint16_t type, uint32_t v) {
	v = htonl(v);
	put_attr(n, type, &v, sizeof(v));
}

// seen counts one packet message with per-instance sequence number seq, as
// the exporter does: the first message of a fresh binding is number 0, and a
// gap shorter than half the number space is loss.
static void seen(uint32_t seq) {
	if (started) {
		uint32_t d = seq - next_seq;
		if (d < 1u << 31) lost += d;
	} else if (seq < 1u << 31) {
		lost += seq;
	}
	started = 1;
	next_seq = seq + 1;
}

// count walks the netlink messages of one datagram.
static void count(const char *buf, int len) {
	const uint16_t packet = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
	for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
		if (h->nlmsg_type != packet) continue;
		received++;
		int alen = (int)h->nlmsg_len - NLMSG_LENGTH(sizeof(struct nfgenmsg));
		const struct nlattr *a = (const struct nlattr *)((const char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct nfgenmsg)));
		int found = 0;
		while (alen >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= alen) {
			if ((a->nla_type & NLA_TYPE_MASK) == NFULA_SEQ && a->nla_len >= NLA_HDRLEN + 4) {
				uint32_t s;
				memcpy(&s, (const char *)a + NLA_HDRLEN, 4);
				seen(ntohl(s));
				found = 1;
				break;
			}
			alen -= NLA_ALIGN(a->nla_len);
			a = (const struct nlattr *)((const char *)a + NLA_ALIGN(a->nla_len));
		}
		if (!found) noseq++;
	}
}

int main(int argc, char **argv) {
	unsigned long group = 0, range = 0, batch = 0, qthresh = 0, timeout = 0, rcvbuf = 0;
	uint16_t flags = NFULNL_CFG_F_SEQ;
	int opt;
	while ((opt = getopt(argc, argv, "g:r:N:q:t:b:G")) != -1) {
		switch (opt) {
		case 'g': group = parse(optarg, "group"); break;
		case 'r': range = parse(optarg, "copy range"); break;
		case 'N': batch = parse(optarg, "batch size"); break;
		case 'q': qthresh = parse(optarg, "queue threshold"); break;
		case 't': timeout = parse(optarg, "flush timeout"); break;
		case 'b': rcvbuf = parse(optarg, "receive buffer"); break;
		case 'G': flags |= NFULNL_CFG_F_SEQ_GLOBAL; break;
		default:
			fprintf(stderr, "usage: reference -g GROUP -r COPY_RANGE -N BATCH_BYTES -q QTHRESHOLD -t FLUSH_CS -b RCVBUF [-G]\n");
			return 2;
		}
	}
	if (group > 65535 || range > 0xffff || rcvbuf > 1u << 30) {
		fprintf(stderr, "reference: group, copy range or receive buffer out of range\n");
		return 2;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (fd < 0) {
		perror("reference: socket");
		return 1;
	}
	struct sockaddr_nl local = {.nl_family = AF_NETLINK};
	if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
		perror("reference: bind");
		return 1;
	}
	if (rcvbuf > 0) {
		int v = (int)rcvbuf;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) < 0) {
			perror("reference: SO_RCVBUFFORCE");
			return 1;
		}
	}
	int one = 1;
	if (setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one)) < 0) {
		perror("reference: NETLINK_NO_ENOBUFS");
		return 1;
	}

	// One request binds the group and sets everything, so the instance never
	// runs with half its settings.
	static char req[512] __attribute__((aligned(4)));
	struct nlmsghdr *n = (struct nlmsghdr *)req;
	n->nlmsg_len = NLMSG_LENGTH(sizeof(struct nfgenmsg));
	n->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
	n->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	n->nlmsg_seq = 1;
	struct nfgenmsg *g = NLMSG_DATA(n);
	g->nfgen_family = AF_UNSPEC;
	g->version = NFNETLINK_V0;
	g->res_id = htons((uint16_t)group);
	struct nfulnl_msg_config_cmd cmd = {.command = NFULNL_CFG_CMD_BIND};
	put_attr(n, NFULA_CFG_CMD, &cmd, sizeof(cmd));
	struct nfulnl_msg_config_mode mode = {.copy_range = htonl((uint32_t)range), .copy_mode = NFULNL_COPY_PACKET};
	put_attr(n, NFULA_CFG_MODE, &mode, sizeof(mode));
	if (batch > 0) put_u32(n, NFULA_CFG_NLBUFSIZ, (uint32_t)batch);
	if (timeout > 0) put_u32(n, NFULA_CFG_TIMEOUT, (uint32_t)timeout);
	if (qthresh > 0) put_u32(n, NFULA_CFG_QTHRESH, (uint32_t)qthresh);
	uint16_t f = htons(flags);
	put_attr(n, NFULA_CFG_FLAGS, &f, sizeof(f));
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	if (sendto(fd, req, n->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		perror("reference: configure");
		return 1;
	}

	char *buf = malloc(BUFLEN);
	if (!buf) {
		perror("reference: malloc");
		return 1;
	}
	// Messages that arrive before the acknowledgement are real packets.
	for (int acked = 0; !acked;) {
		ssize_t r = recv(fd, buf, BUFLEN, 0);
		if (r < 0) {
			if (errno == EINTR && !stop) continue;
			perror("reference: configure");
			return 1;
		}
		int len = (int)r;
		for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq == 1) {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				if (e->error != 0) {
					fprintf(stderr, "reference: bind NFLOG group %lu: %s\n", group, strerror(-e->error));
					return 1;
				}
				acked = 1;
			}
		}
		count(buf, (int)r);
	}

	if (sigsetjmp(waiting_env, 1) == 0) {
		for (;;) {
			waiting = 1;
			if (stop) break;
			ssize_t r = recvfrom(fd, buf, BUFLEN, MSG_TRUNC, NULL, NULL);
			waiting = 0;
			if (r < 0) {
				if (errno != EINTR) errors++;
				if (stop) break;
				continue;
			}
			datagrams++;
			if (r > BUFLEN) {
				truncated++;
				r = BUFLEN;
			}
			count(buf, (int)r);
		}
	}
	waiting = 0;
	printf("received=%llu lost=%llu datagrams=%llu truncated=%llu no_seq=%llu errors=%llu\n", received, lost, datagrams,
	       truncated, noseq, errors);
	fflush(stdout);
	return 0;
}
