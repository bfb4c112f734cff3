//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only OR MIT
//
// kfree_skb.bpf.c sees every packet the kernel frees as dropped
// (tracepoint skb:kfree_skb, attached as tp_btf), keeps those of one network
// namespace, counts them by drop reason, and hands the IPv4/IPv6 packets that
// netfilter dropped to user space through a ring buffer.
//
// It is CO-RE: the kernel types below declare only the fields this program
// reads, and every field offset and enum value is relocated against the
// running kernel's BTF when the program is loaded. No vmlinux.h is needed.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef signed short __s16;
typedef signed int __s32;
typedef signed long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

// Map types and flags of include/uapi/linux/bpf.h (stable UAPI numbers).
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_RINGBUF 27

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

// How many bytes of each dropped packet, from its network header, go into a
// record: an IPv6 header with extension headers and a TCP header with options.
#define PAYLOAD_MAX 128

// The values of enum skb_drop_reason differ between kernels (reasons are
// added in the middle). The numbers below are placeholders that clang needs;
// bpf_core_enum_value() replaces each with the running kernel's value.
enum skb_drop_reason {
	SKB_DROP_REASON_NETFILTER_DROP = 1,
	SKB_DROP_REASON_MAX = 2,
};

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	int ifindex;
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

struct sock_common {
	possible_net_t skc_net;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	unsigned long _nfct;
	unsigned int len;
	unsigned int data_len;
	__u32 mark;
	__be16 protocol;
	__u16 network_header;
	unsigned char *head;
	unsigned char *data;
} __attribute__((preserve_access_index));

// The record of one netfilter drop, as user space reads it from the ring
// buffer (decoded in record.go; keep both in step).
struct drop_record {
	__u64 boot_ns;    // bpf_ktime_get_boot_ns() at the drop: CLOCK_BOOTTIME
	__u32 ifindex;    // skb->dev->ifindex; 0 when the packet has no device
	__u32 skb_len;    // skb->len: the bytes from skb->data (the IP datagram at the netfilter hooks)
	__u32 mark;       // skb->mark
	__u16 copied;     // bytes of payload that are valid (0..PAYLOAD_MAX)
	__u8 family;      // 4 or 6
	__u8 ct;          // conntrack: CT_HAS_ENTRY, and the ctinfo in CT_INFO_MASK
	__u8 payload[PAYLOAD_MAX]; // from the network header, never past the linear data
};

// Puts struct drop_record into the object's BTF, so that bpf2go declares it
// in Go and a test can hold the Go decoder to this layout.
struct drop_record *const volatile unused_drop_record = 0;

// skb->_nfct is the conntrack entry's address with enum ip_conntrack_info in
// its low 3 bits (NFCT_INFOMASK). Three cases:
//   - an entry:       address != 0, ctinfo = ESTABLISHED 0, RELATED 1, NEW 2,
//                     ESTABLISHED_REPLY 3, RELATED_REPLY 4;
//   - untracked:      address == 0, ctinfo = IP_CT_UNTRACKED 7 (a notrack rule);
//   - nothing:        _nfct == 0: conntrack found the packet INVALID, or does
//                     not run in this namespace (or is not built).
#define NFCT_INFOMASK 7UL
#define CT_HAS_ENTRY 0x80
#define CT_INFO_MASK 0x07

// Slots of the counters map.
#define COUNT_MATCHED 0 // netfilter drops of IPv4/IPv6 in the namespace: each got a record or a lost count
#define COUNT_LOST 1    // of those, the ones whose ring buffer reservation failed (the ring was full)
#define COUNT_SLOTS 2

// The network namespace to watch: the inode number of its nsfs file (what
// stat(2) of /proc/PID/ns/net says), set by the loader.
volatile const __u32 netns_ino = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024); // the loader sets the size
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// Every drop of the namespace by reason value: slot r for a reason r below
// SKB_DROP_REASON_MAX, slot SKB_DROP_REASON_MAX for any other value (the
// subsystem reasons carry their subsystem in the high 16 bits). The loader
// sizes it to SKB_DROP_REASON_MAX + 1 from the kernel's BTF.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} reasons SEC(".maps");

// count adds one to a per-CPU slot. No atomic add is needed: the kernel
// never runs this program twice at once on one CPU (a nested run is skipped
// and counted in the program's recursion_misses).
static __always_inline void count(void *map, __u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(map, &slot);
	if (v)
		*v += 1;
}

// netns_of returns the network namespace a dropped packet belongs to: its
// device's, or for a locally generated packet that has no device yet, its
// socket's. NULL when it has neither (it cannot be attributed).
static __always_inline struct net *netns_of(struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;
	if (dev)
		return dev->nd_net.net;
	struct sock *sk = skb->sk;
	if (sk)
		return sk->__sk_common.skc_net.net;
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	// A kernel without network namespaces has one: every drop is in it.
	if (bpf_core_field_exists(((struct net_device *)0)->nd_net.net)) {
		struct net *net = netns_of(skb);
		if (!net || net->ns.inum != netns_ino)
			return 0;
	}

	__u32 max = bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_MAX);
	__u32 r = reason;
	count(&reasons, r < max ? r : max);

	if (r != bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP))
		return 0;
	__u8 family;
	switch (bpf_ntohs(skb->protocol)) {
	case ETH_P_IP:
		family = 4;
		break;
	case ETH_P_IPV6:
		family = 6;
		break;
	default:
		return 0;
	}
	count(&counters, COUNT_MATCHED);

	struct drop_record *rec = bpf_ringbuf_reserve(&drops, sizeof(*rec), 0);
	if (!rec) {
		count(&counters, COUNT_LOST);
		return 0;
	}
	rec->boot_ns = bpf_ktime_get_boot_ns();
	rec->family = family;
	rec->skb_len = skb->len;
	rec->mark = skb->mark;

	struct net_device *dev = skb->dev;
	rec->ifindex = dev ? dev->ifindex : 0;

	__u8 ct = 0;
	if (bpf_core_field_exists(skb->_nfct)) {
		unsigned long nfct = skb->_nfct;
		ct = nfct & NFCT_INFOMASK;
		if (nfct & ~NFCT_INFOMASK)
			ct |= CT_HAS_ENTRY;
	}
	rec->ct = ct;

	// The linear data ends at data + (len - data_len); the network header
	// may lie before data (the IP header was pulled) but never before head.
	unsigned char *head = skb->head;
	unsigned char *nh = head + skb->network_header;
	unsigned char *end = skb->data + (skb->len - skb->data_len);
	__s64 avail = (__s64)(end - nh);
	__u32 n = 0;
	if (avail > 0)
		n = avail > PAYLOAD_MAX ? PAYLOAD_MAX : (__u32)avail;
	if (n > 0 && bpf_probe_read_kernel(rec->payload, n & 0xff, nh) < 0)
		n = 0;
	rec->copied = n;

	// Default wakeup: user space is woken when it has caught up with the
	// ring, so a busy reader is not woken per record and an idle one sleeps.
	bpf_ringbuf_submit(rec, 0);
	return 0;
}

// The kernel lets only GPL-compatible programs call bpf_probe_read_kernel.
char LICENSE[] SEC("license") = "Dual MIT/GPL";
