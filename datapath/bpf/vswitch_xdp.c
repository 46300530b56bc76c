// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
//
// vswitch's XDP program, attached to every AF_XDP port of a switch (one program and one
// set of maps per switch). For each received frame it either
//   - drops it when it is longer than the port's AF_XDP frames can hold, counted per port
//     (userspace reports it as `mtu_exceeded`: the frame is never truncated), or
//   - forwards it in the kernel (the *fast path*, XDP_REDIRECT through a devmap) when it is
//     known unicast between two fast-path ports of the same VLAN whose source is already
//     learned on the ingress port: the 802.1Q tag is pushed/popped here exactly as the
//     userspace pipeline would, and per-port packet/byte counters are kept, or
//   - hands it to the switch's AF_XDP socket of (port, queue) (the *slow path*): everything
//     else, i.e. broadcast/multicast/unknown unicast, first frames of new or moved sources,
//     every frame the fast path does not understand, and one frame per source every
//     `refresh_ns` so that userspace's MAC table keeps its entries alive.
// The fast path never decides a drop: every case it does not handle completely goes to
// userspace, which applies the full forwarding rules and counts the drop with its reason.
// The fast path's FDB is a mirror of userspace's table written by userspace only; this
// program only updates the `seen` timestamps of the entries it uses.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/types.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define INLINE static inline __attribute__((always_inline))

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
/* Coarse (tick-granular) monotonic time: a jiffies read instead of a TSC read per
 * frame; the FDB timestamps it keeps are compared in seconds. */
static __u64 (*bpf_ktime_get_coarse_ns)(void) = (void *)BPF_FUNC_ktime_get_coarse_ns;
static long (*bpf_xdp_adjust_head)(struct xdp_md *ctx, int delta) = (void *)BPF_FUNC_xdp_adjust_head;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;
static __u64 (*bpf_xdp_get_buff_len)(struct xdp_md *ctx) = (void *)BPF_FUNC_xdp_get_buff_len;
static long (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to, __u32 len) = (void *)BPF_FUNC_skb_load_bytes;
static long (*bpf_skb_vlan_push)(struct __sk_buff *skb, __be16 proto, __u16 tci) = (void *)BPF_FUNC_skb_vlan_push;
static long (*bpf_skb_vlan_pop)(struct __sk_buff *skb) = (void *)BPF_FUNC_skb_vlan_pop;
static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect;

/* vswitch's mark (program metadata, shown by `bpftool prog`): libbpf binds .rodata to the
 * program, so the kernel reports this map among the program's maps. An XDP program found
 * on an interface is replaced without being asked only when it is named vswitch_port and
 * carries this mark (datapath/src/sys/xdp.rs, OWNER_MARK). */
volatile const char bpf_metadata_vswitch_owner[] SEC(".rodata") = "vswitch-xdp-port-owner-v1";

#define MAX_PORTS 1024
#define MAX_QUEUES 64

/* port_cfg.flags */
#define PORT_FAST 1u     /* the fast path may forward from and to this port */
#define PORT_UP 2u       /* the port is up in the switch's topology */
#define PORT_ISOLATED 4u /* isolated ports never exchange frames */
#define PORT_NO_REDIRECT 8u /* the kernel would drop frames redirected to this port */
#define PORT_SKB 16u /* a packet port: forwarded by vswitch_filter + vswitch_ingress */

/* Must match datapath/src/sys/bpf.rs (PortCfg). */
struct port_cfg {
	__u16 index;            /* the switch's port id */
	__u16 in_vid;           /* VLAN of untagged frames received; 0: none (dropped) */
	__u16 out_untagged_vid; /* the VLAN that leaves untagged; 0: none */
	__u16 pad;
	__u32 flags;
	__u32 mtu;              /* L3 MTU at egress: payload after the Ethernet header and tag */
	__u32 max_rx;           /* longest frame one AF_XDP frame of this port holds */
	__u32 ifindex;          /* the port's interface; 0: the slot is free */
	__u64 in_tagged[64]; /* VIDs accepted tagged on ingress */
	__u64 members[64];   /* VIDs this port transmits (tagged unless == untagged_vid) */
};

/* Must match FdbKey / FdbVal in datapath/src/sys/bpf.rs. */
struct fdb_key {
	__u8 mac[6];
	__u16 vid;
};

#define FDB_STATIC 1u

struct fdb_val {
	__u32 ifindex;
	__u16 port;  /* the switch's port id */
	__u16 flags;
	__u16 slot;  /* the port's slot in `ports`, `devs` and `stats` */
	__u16 pad;
	__u32 pad2;
	__u64 seen_ns;    /* last time a frame from this source took the fast path */
	__u64 refresh_ns; /* last time a frame from this source was sent to userspace */
};

struct port_stats {
	__u64 fwd_rx_packets;
	__u64 fwd_rx_bytes;
	__u64 fwd_tx_packets;
	__u64 fwd_tx_bytes;
	__u64 oversize;
	__u64 fwd_tx_refused; /* redirected here, refused by the kernel (vswitch_redirect_refused) */
	__u64 no_socket;      /* for userspace, but no socket on the queue: dropped (see slow) */
};

struct conf {
	__u64 refresh_ns; /* send a frame of each known source to userspace this often */
};

/* Ports by slot. Array maps are looked up inline (no hashing): the per-frame cost of
 * finding the ingress and the egress port is two array reads. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32); /* slot */
	__type(value, struct port_cfg);
} ports SEC(".maps");

/* ifindex -> slot + 1 (0: not a port of this program), for ifindexes below
 * IFSLOT_DIRECT; larger ifindexes are looked up in `ifslots_far`. */
#define IFSLOT_DIRECT 65536
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, IFSLOT_DIRECT);
	__type(key, __u32);
	__type(value, __u32);
} ifslots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} ifslots_far SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* resized to the FDB capacity before load */
	__type(key, struct fdb_key);
	__type(value, struct fdb_val);
} fdb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_PORTS * MAX_QUEUES);
	__type(key, __u32); /* port index * 64 + queue */
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);   /* slot */
	__type(value, __u32); /* ifindex */
} devs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32); /* port index */
	__type(value, struct port_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct conf);
} config SEC(".maps");

/* The kernel's id of the `devs` map, written by userspace after load (see
 * vswitch_redirect_refused). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ident SEC(".maps");

#define ONE_SECOND 1000000000ull

INLINE int bit(const __u64 *set, __u16 vid)
{
	return (set[(vid >> 6) & 63] >> (vid & 63)) & 1;
}

/* The port on `ifindex`, or NULL when it is not one of this program's ports. */
INLINE struct port_cfg *port_on(__u32 ifindex)
{
	__u32 *s = ifindex < IFSLOT_DIRECT ? bpf_map_lookup_elem(&ifslots, &ifindex)
					   : bpf_map_lookup_elem(&ifslots_far, &ifindex);
	if (!s || !*s)
		return 0;
	__u32 slot = *s - 1;
	struct port_cfg *pc = bpf_map_lookup_elem(&ports, &slot);
	if (!pc || pc->ifindex != ifindex)
		return 0;
	return pc;
}

INLINE struct port_stats *port_stats(__u16 index)
{
	__u32 k = index;
	return bpf_map_lookup_elem(&stats, &k);
}

/* Counts a frame the fast path forwarded at both ports. */
INLINE void count_forwarded(__u16 in_index, __u64 len, __u16 out_index, __u64 out_len)
{
	struct port_stats *si = port_stats(in_index);
	if (si) {
		si->fwd_rx_packets++;
		si->fwd_rx_bytes += len;
	}
	struct port_stats *so = port_stats(out_index);
	if (so) {
		so->fwd_tx_packets++;
		so->fwd_tx_bytes += out_len;
	}
}

/* Hands the frame to the port's AF_XDP socket of its receive queue. A queue without one
 * (a device queue beyond the port's `queues`, the port between attach and socket
 * insert, its process killed) drops the frame, counted per port (`no_socket`): the
 * interface belongs to the switch, so the host stack must not see its frames. */
INLINE int slow(struct xdp_md *ctx, const struct port_cfg *pc)
{
	__u32 q = ctx->rx_queue_index;
	if (q < MAX_QUEUES &&
	    bpf_redirect_map(&xsks, (__u32)pc->index * MAX_QUEUES + q, XDP_DROP) == XDP_REDIRECT)
		return XDP_REDIRECT;
	struct port_stats *st = port_stats(pc->index);
	if (st)
		st->no_socket++;
	return XDP_DROP;
}

/* The egress port of a known unicast frame in `vid` from `src` (learned on the ingress
 * port `pc` on `ifindex`) to `dst`, when the fast path may forward it: the destination is
 * learned on another fast-path port that is up, a member of the VLAN, and not isolated
 * from the ingress port. NULL: the frame goes to userspace (also once per source every
 * `refresh_ns`, so that the workers keep fast-path sources alive). */
INLINE struct port_cfg *fast_egress(const struct port_cfg *pc, __u32 ifindex, __u16 vid,
				    const __u8 *src_mac, const __u8 *dst_mac, __u32 *out_slot)
{
	struct fdb_key k = { .vid = vid };
	__builtin_memcpy(k.mac, src_mac, 6);
	struct fdb_val *src = bpf_map_lookup_elem(&fdb, &k);
	if (!src || src->ifindex != ifindex)
		return 0; /* new or moved source: userspace learns */
	__u64 now = bpf_ktime_get_coarse_ns();
	if (now - src->seen_ns >= ONE_SECOND)
		src->seen_ns = now;
	if (!(src->flags & FDB_STATIC)) {
		__u32 zero = 0;
		struct conf *c = bpf_map_lookup_elem(&config, &zero);
		if (c && c->refresh_ns && now - src->refresh_ns >= c->refresh_ns) {
			src->refresh_ns = now;
			return 0;
		}
	}

	__builtin_memcpy(k.mac, dst_mac, 6);
	struct fdb_val *dst = bpf_map_lookup_elem(&fdb, &k);
	if (!dst || dst->ifindex == ifindex)
		return 0;
	__u32 slot = dst->slot;
	struct port_cfg *ec = bpf_map_lookup_elem(&ports, &slot);
	if (!ec || ec->ifindex != dst->ifindex ||
	    (ec->flags & (PORT_FAST | PORT_UP)) != (PORT_FAST | PORT_UP))
		return 0;
	if ((pc->flags & PORT_ISOLATED) && (ec->flags & PORT_ISOLATED))
		return 0;
	if (!bit(ec->members, vid))
		return 0;
	*out_slot = slot;
	return ec;
}

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

SEC("xdp.frags")
int vswitch_port(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	struct port_cfg *pc = port_on(ifindex);
	if (!pc)
		return XDP_PASS;
	__u64 len = bpf_xdp_get_buff_len(ctx);
	if (len > pc->max_rx) {
		struct port_stats *st = port_stats(pc->index);
		if (st)
			st->oversize++;
		return XDP_DROP;
	}
	if ((pc->flags & (PORT_FAST | PORT_UP)) != (PORT_FAST | PORT_UP))
		return slow(ctx, pc);

	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if ((__u64)(end - data) != len) /* multi-buffer: userspace */
		return slow(ctx, pc);
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return slow(ctx, pc);
	/* group destinations flood; group/zero sources are dropped by userspace */
	if ((eth->h_dest[0] & 1) || (eth->h_source[0] & 1))
		return slow(ctx, pc);

	int tagged = 0;
	__u16 vid;
	if (eth->h_proto == __builtin_bswap16(ETH_P_8021Q)) {
		struct vlan_tag *t = (void *)(eth + 1);
		if ((void *)(t + 1) > end)
			return slow(ctx, pc);
		__u16 tci = __builtin_bswap16(t->tci);
		vid = tci & 0x0fff;
		/* priority tags and VID 4095 have their own rules */
		if (vid == 0 || vid == 4095 || !bit(pc->in_tagged, vid))
			return slow(ctx, pc);
		tagged = 1;
	} else {
		vid = pc->in_vid;
		if (vid == 0)
			return slow(ctx, pc);
	}

	__u32 out_slot;
	struct port_cfg *ec = fast_egress(pc, ifindex, vid, eth->h_source, eth->h_dest, &out_slot);
	/* the XDP path redirects through the devmap: never into packet ports (theirs is
	 * the tc path below) nor into devices that would refuse XDP frames */
	if (!ec || (ec->flags & (PORT_NO_REDIRECT | PORT_SKB)))
		return slow(ctx, pc);
	int tagged_out = ec->out_untagged_vid != vid;
	__u64 l3 = len - sizeof(struct ethhdr) - (tagged ? sizeof(struct vlan_tag) : 0);
	if (l3 > ec->mtu)
		return slow(ctx, pc); /* userspace counts mtu_exceeded */
	__u64 out_len = len + (tagged_out ? 4 : 0) - (tagged ? 4 : 0);
	__u16 in_index = pc->index, out_index = ec->index;

	if (tagged && !tagged_out) {
		/* pop: move the addresses over the tag */
		__u8 macs[12];
		__builtin_memcpy(macs, data, 12);
		if (bpf_xdp_adjust_head(ctx, 4))
			return slow(ctx, pc);
		data = (void *)(long)ctx->data;
		end = (void *)(long)ctx->data_end;
		if (data + 12 > end)
			return XDP_DROP; /* cannot happen: the frame had 18 bytes */
		__builtin_memcpy(data, macs, 12);
	} else if (!tagged && tagged_out) {
		/* push: the tag carries PCP 0 (the frame arrived untagged) */
		if (bpf_xdp_adjust_head(ctx, -4))
			return slow(ctx, pc);
		data = (void *)(long)ctx->data;
		end = (void *)(long)ctx->data_end;
		if (data + 18 > end)
			return XDP_DROP; /* cannot happen: 4 bytes were added to >= 14 */
		__u8 macs[12];
		__builtin_memcpy(macs, data + 4, 12);
		__builtin_memcpy(data, macs, 12);
		__be16 *tag = data + 12;
		tag[0] = __builtin_bswap16(ETH_P_8021Q);
		tag[1] = __builtin_bswap16(vid);
		/* the original EtherType is already in place after the new tag */
	}
	/* tagged -> tagged: the tag (VID and PCP) leaves as it came */

	count_forwarded(in_index, len, out_index, out_len);
	return bpf_redirect_map(&devs, out_slot, 0);
}

/* Frames the fast path redirected that the kernel refused (a tracing program, attached
 * when the fast path is on). The kernel checks the egress device when the program's
 * verdict is applied (xdp_do_redirect): a veth whose peer has neither GRO nor an XDP
 * program has no NAPI context to take XDP frames and does not advertise
 * NETDEV_XDP_ACT_NDO_XMIT, so the redirect fails (-EOPNOTSUPP) and the frame is freed with
 * no counter on the egress device. The port's egress watch stops such redirects within
 * about a second; this counts the ones before that, at the egress port. (A veth whose peer
 * is down fails later, at the devmap's flush, and counts those frames in its own
 * tx_dropped, which the port reports as tx_ring_full.)
 * The xdp_redirect_err tracepoint fires for failed redirects only: nothing runs for a
 * forwarded frame. As a raw tracepoint it needs neither BTF nor tracefs; its arguments
 * are (dev, xdp prog, target, err, map type, map id, map index). Only redirects through
 * this program's own devmap count: its map id identifies it system-wide, and the map
 * index is the egress port's slot, under which the port's counters are kept. */
struct bpf_raw_tracepoint_args_ {
	__u64 args[7];
};

SEC("raw_tp/xdp_redirect_err")
int vswitch_redirect_refused(struct bpf_raw_tracepoint_args_ *ctx)
{
	__u32 map_id = (__u32)ctx->args[5];
	__u32 slot = (__u32)ctx->args[6];
	__u32 zero = 0;
	__u64 *mine = bpf_map_lookup_elem(&ident, &zero);
	if (!mine || *mine == 0 || map_id != *mine || slot >= MAX_PORTS)
		return 0;
	struct port_stats *so = port_stats(slot);
	if (so)
		so->fwd_tx_refused++;
	return 0;
}

/* ---- The fast path of packet ports (AF_PACKET sockets on veths and VMs' taps) ----
 *
 * A packet port's frames are skbs that may be 64 KiB GSO superframes with partial
 * checksums; the kernel can forward them whole to another device (bpf_redirect), in the
 * sender's softirq, which is what makes the Linux bridge fast. Two programs cooperate:
 *   - vswitch_filter, the socket filter of the port's AF_PACKET socket, decides: it runs
 *     in the device's receive path when the frame is delivered to the socket, before the
 *     device's tc ingress. A frame the fast path forwards is not queued to the socket
 *     (verdict 0); every other frame is, exactly as without the fast path.
 *   - vswitch_ingress, on the device's tcx ingress, applies that decision: push/pop the
 *     tag and redirect to the egress device, or drop the frame the socket already took
 *     (the switch owns the port's frames, as a bridge port does: the host stack does not
 *     see them).
 * The decision travels in a per-CPU slot: both programs run for the same skb on the same
 * CPU, one right after the other (__netif_receive_skb_core delivers the taps, then runs
 * ingress, with no other frame in between), and the slot names the device and length it
 * is for and is cleared when used. So each frame is decided once: never both forwarded
 * and queued to the socket, whatever the maps do between the two programs. A frame
 * without a fresh verdict (the socket is closing) is left to the kernel as before. */

#define TCX_NEXT (-1)
#define TCX_DROP 2

/* vlan edit of a fast-path frame */
#define EDIT_KEEP 0
#define EDIT_POP 1
#define EDIT_PUSH 2

struct verdict {
	__u32 ifindex;     /* ingress device of the frame decided; 0: none */
	__u32 len;         /* its length as the filter saw it */
	__u32 out_ifindex; /* fast: the egress device; 0: the frame went to the socket */
	__u16 vid;
	__u16 edit;
	__u16 in_index;
	__u16 out_index;
	__u32 out_len;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct verdict);
} verdicts SEC(".maps");

/* Bytes the socket keeps: all of the frame. */
#define KEEP_ALL 0x7fffffff

/* The network and transport header bytes of a GSO frame whose IP header starts at
 * `l3`, or 0 when the fast path does not know them (userspace then decides). */
INLINE __u32 gso_headers(struct __sk_buff *skb, __u32 l3, __u16 ethertype)
{
	__u32 iph, l4off;
	__u8 proto;
	if (ethertype == ETH_P_IP) {
		__u8 b[10];
		if (bpf_skb_load_bytes(skb, l3, b, sizeof(b)))
			return 0;
		iph = (b[0] & 15) * 4;
		proto = b[9];
	} else if (ethertype == ETH_P_IPV6) {
		__u8 b[7];
		if (bpf_skb_load_bytes(skb, l3, b, sizeof(b)))
			return 0;
		iph = 40;
		proto = b[6]; /* extension headers: not known here */
	} else {
		return 0;
	}
	if (iph < 20)
		return 0;
	l4off = l3 + iph;
	if (proto == 6) {
		__u8 doff;
		if (bpf_skb_load_bytes(skb, l4off + 12, &doff, 1))
			return 0;
		return iph + (doff >> 4) * 4;
	}
	if (proto == 17)
		return iph + 8;
	return 0;
}

SEC("socket")
int vswitch_filter(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct verdict *v = bpf_map_lookup_elem(&verdicts, &zero);
	if (!v)
		return KEEP_ALL;
	__u32 ifindex = skb->ifindex;
	__u32 len = skb->len;
	v->ifindex = ifindex;
	v->len = len;
	v->out_ifindex = 0;
	struct port_cfg *pc = port_on(ifindex);
	if (!pc || (pc->flags & (PORT_FAST | PORT_UP | PORT_SKB)) != (PORT_FAST | PORT_UP | PORT_SKB))
		return KEEP_ALL;

	struct {
		__u8 dst[6];
		__u8 src[6];
		__be16 proto;
		__be16 tci;
		__be16 inner;
	} h;
	if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)))
		return KEEP_ALL;
	if ((h.dst[0] & 1) || (h.src[0] & 1))
		return KEEP_ALL;

	/* The outer tag: out of band (the sender's TX VLAN offload) or in the bytes. */
	int tagged = 0, inband = 0;
	__u16 vid, ethertype = __builtin_bswap16(h.proto);
	if (skb->vlan_present) {
		if (skb->vlan_proto != __builtin_bswap16(ETH_P_8021Q))
			return KEEP_ALL;
		vid = skb->vlan_tci & 0x0fff;
		tagged = 1;
	} else if (ethertype == ETH_P_8021Q) {
		vid = __builtin_bswap16(h.tci) & 0x0fff;
		ethertype = __builtin_bswap16(h.inner);
		tagged = 1;
		inband = 1;
	} else {
		vid = pc->in_vid;
		if (vid == 0)
			return KEEP_ALL;
	}
	if (tagged && (vid == 0 || vid == 4095 || !bit(pc->in_tagged, vid)))
		return KEEP_ALL;

	__u32 out_slot;
	struct port_cfg *ec = fast_egress(pc, ifindex, vid, h.src, h.dst, &out_slot);
	if (!ec)
		return KEEP_ALL;

	/* The egress MTU applies to what leaves: each segment of a GSO frame. */
	__u32 l3 = ETH_HLEN + (inband ? 4 : 0);
	if (len < l3)
		return KEEP_ALL;
	__u32 l3len = len - l3;
	if (skb->gso_size) {
		__u32 hdrs = gso_headers(skb, l3, ethertype);
		if (!hdrs)
			return KEEP_ALL;
		l3len = hdrs + skb->gso_size;
	}
	if (l3len > ec->mtu)
		return KEEP_ALL; /* userspace segments or counts mtu_exceeded */

	int tagged_out = ec->out_untagged_vid != vid;
	v->edit = tagged == tagged_out ? EDIT_KEEP : (tagged ? EDIT_POP : EDIT_PUSH);
	v->vid = vid;
	v->in_index = pc->index;
	v->out_index = ec->index;
	v->out_len = len + (tagged_out ? 4 : 0) - (tagged ? 4 : 0);
	v->out_ifindex = ec->ifindex;
	return 0;
}

SEC("tcx/ingress")
int vswitch_ingress(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct verdict *v = bpf_map_lookup_elem(&verdicts, &zero);
	if (!v || v->ifindex != skb->ifindex || v->len != skb->len)
		return TCX_NEXT; /* not decided by the socket filter */
	v->ifindex = 0;
	__u32 out = v->out_ifindex;
	if (!out)
		return TCX_DROP; /* the socket has it */
	__u16 vid = v->vid, edit = v->edit, in_index = v->in_index, out_index = v->out_index;
	__u32 len = v->len, out_len = v->out_len;
	if (edit == EDIT_POP) {
		if (bpf_skb_vlan_pop(skb))
			return TCX_DROP;
	} else if (edit == EDIT_PUSH) {
		/* PCP 0: the frame arrived untagged */
		if (bpf_skb_vlan_push(skb, __builtin_bswap16(ETH_P_8021Q), vid))
			return TCX_DROP;
	}
	count_forwarded(in_index, len, out_index, out_len);
	return bpf_redirect(out, 0);
}

char _license[] SEC("license") = "Dual BSD/GPL";
