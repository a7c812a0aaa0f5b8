// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* meshd's kernel side: one object with every program, so all of them share the same maps
 * (which user space pins under its pin path so that blocks survive a daemon restart).
 *
 *  - cgroup/connect4|6, cgroup/sendmsg4|6: report each outbound connect()/sendmsg() to the
 *    ring buffer and deny (EPERM) destinations blocked for egress;
 *  - tc (egress, tcx or clsact): drop packets to destinations blocked for egress;
 *  - xdp (ingress): drop packets from sources blocked for ingress.
 *
 * Truncated or malformed packets are passed (and counted): the data plane enforces blocks,
 * it is not a packet validator, and a parse error must never turn into an outage.
 * Layouts and constants come from meshd_shared.h (shared with sensor/).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "bpf/meshd_shared.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, MESHD_BLOCK_MAX_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct meshd_v4_key);
  __type(value, struct meshd_block_value);
} meshd_block_v4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, MESHD_BLOCK_MAX_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct meshd_v6_key);
  __type(value, struct meshd_block_value);
} meshd_block_v6 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, MESHD_EXACT_V4_MAX_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct meshd_v4_key);
  __type(value, struct meshd_block_value);
} meshd_exact_v4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, MESHD_EXACT_V6_MAX_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct meshd_v6_key);
  __type(value, struct meshd_block_value);
} meshd_exact_v6 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, MESHD_V4_FILTER_ENTRIES);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, __u64);
} meshd_v4_filter SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, MESHD_V4_FILTER_ENTRIES);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, __u64);
} meshd_v4_tfilt SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, MESHD_HOOK_COUNT);
  __type(key, __u32);
  __type(value, struct meshd_hook_counters);
} meshd_counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, MESHD_EVENTS_RINGBUF_BYTES);
} meshd_events SEC(".maps");

struct vlan_tag {
  __be16 tci;
  __be16 inner_proto;
};

static __always_inline struct meshd_hook_counters* counters(__u32 hook) {
  return bpf_map_lookup_elem(&meshd_counters, &hook);
}

/* Result of matching one address against the block maps of its family. */
struct match {
  const struct meshd_block_value* value; /* live entry covering the direction, or NULL */
  int expired;                           /* an entry covered it but had expired */
};

/* False only when the armed bitset `filter` (meshd_v4_filter: any entry; meshd_v4_tfilt:
 * trie entries) says no entry can cover this address. */
static __always_inline int v4_filter_may_match(void* filter, const __u8* addr) {
  __u32 armed_key = MESHD_V4_FILTER_ARMED_INDEX;
  const __u64* armed = bpf_map_lookup_elem(filter, &armed_key);
  if (!armed || !*armed) return 1;
  __u32 slash24 = ((__u32)addr[0] << 16) | ((__u32)addr[1] << 8) | addr[2];
  __u32 word_key = slash24 >> 6;
  const __u64* word = bpf_map_lookup_elem(filter, &word_key);
  return !word || ((*word >> (slash24 & 63)) & 1);
}

/* True when `v` is a live entry for `direction`: the match is decided. Notes expired ones.
 * The boot clock is read only once, and only when an entry matched. */
static __always_inline int applies(const struct meshd_block_value* v, __u32 direction, __u64* now,
                                   struct match* m) {
  if (!v || !(v->direction & direction)) return 0;
  if (*now == 0) *now = bpf_ktime_get_boot_ns();
  if (*now < v->expiry_boot_ns) {
    m->value = v;
    return 1;
  }
  m->expired = 1;
  return 0;
}

/* Longest-prefix match over the exact map and the trie of one family (see meshd_shared.h),
 * skipping entries which do not apply (other direction, expired): after a trie entry that
 * does not apply, the trie is asked again just above its prefix length, so a shorter live
 * entry still blocks. The exact map's net-length entry is checked where it falls in that
 * order: once the trie has nothing longer than the net length left. `key` holds the full
 * address with the family's host length; `net` the same address cut to the net length. */
#define MATCH_LONGEST(exact, trie, key, net, net_len, use_trie, direction, m)           \
  do {                                                                                  \
    __u64 now_ = 0;                                                                     \
    if (applies(bpf_map_lookup_elem(exact, &(key)), direction, &now_, &(m))) break;     \
    const struct meshd_block_value* v_ = 0;                                             \
    if (use_trie) v_ = bpf_map_lookup_elem(trie, &(key));                               \
    int net_checked_ = 0;                                                               \
    for (int i_ = 0; i_ < MESHD_MAX_NESTED_LOOKUPS; i_++) {                             \
      if (!net_checked_ && (!v_ || v_->prefixlen <= (net_len))) {                       \
        net_checked_ = 1;                                                               \
        if (applies(bpf_map_lookup_elem(exact, &(net)), direction, &now_, &(m))) break; \
      }                                                                                 \
      if (!v_) break;                                                                   \
      if (applies(v_, direction, &now_, &(m))) break;                                   \
      if (v_->prefixlen == 0 || v_->prefixlen > (key).prefixlen) break;                 \
      (key).prefixlen = v_->prefixlen - 1;                                              \
      v_ = bpf_map_lookup_elem(trie, &(key));                                           \
    }                                                                                   \
  } while (0)

static __always_inline struct match match_v4(const void* addr, __u32 direction) {
  struct match m = {0};
  struct meshd_v4_key key = {.prefixlen = MESHD_V4_HOST_LEN};
  __builtin_memcpy(key.addr, addr, sizeof(key.addr));
  if (!v4_filter_may_match(&meshd_v4_filter, key.addr)) return m;
  struct meshd_v4_key net = key;
  net.prefixlen = MESHD_V4_NET_LEN;
  net.addr[3] = 0;
  const int use_trie = v4_filter_may_match(&meshd_v4_tfilt, key.addr);
  MATCH_LONGEST(&meshd_exact_v4, &meshd_block_v4, key, net, MESHD_V4_NET_LEN, use_trie, direction,
                m);
  return m;
}

static __always_inline struct match match_v6(const void* addr, __u32 direction) {
  struct match m = {0};
  struct meshd_v6_key key = {.prefixlen = MESHD_V6_HOST_LEN};
  __builtin_memcpy(key.addr, addr, sizeof(key.addr));
  struct meshd_v6_key net = key;
  net.prefixlen = MESHD_V6_NET_LEN;
  __builtin_memset(&net.addr[8], 0, 8);
  MATCH_LONGEST(&meshd_exact_v6, &meshd_block_v6, key, net, MESHD_V6_NET_LEN, 1, direction, m);
  return m;
}

static __always_inline void count_match(struct meshd_hook_counters* c, const struct match* m) {
  if (!c) return;
  if (m->value)
    c->blocked++;
  else if (m->expired)
    c->expired++;
}

/* ---- cgroup sock_addr hooks ---------------------------------------------------------- */

/* Boot time of the last timed wakeup (see MESHD_EVENTS_WAKEUP_INTERVAL_NS). Shared by all
 * CPUs; a lost race between two of them costs one extra wakeup at most. */
__u64 meshd_last_wakeup_ns = 0;

/* Submit flags for a record reserved at boot time `now`. */
static __always_inline __u64 wakeup_flags(__u64 now) {
  if (bpf_ringbuf_query(&meshd_events, BPF_RB_AVAIL_DATA) >= MESHD_EVENTS_WAKEUP_BYTES)
    return BPF_RB_FORCE_WAKEUP;
  if (now - meshd_last_wakeup_ns >= MESHD_EVENTS_WAKEUP_INTERVAL_NS) {
    meshd_last_wakeup_ns = now;
    return BPF_RB_FORCE_WAKEUP;
  }
  return BPF_RB_NO_WAKEUP;
}

static __always_inline void emit_event(struct bpf_sock_addr* ctx, __u32 hook, __u8 family,
                                       const __u8* addr, const struct match* m,
                                       struct meshd_hook_counters* c) {
  struct meshd_connect_event* e = bpf_ringbuf_reserve(&meshd_events, sizeof(*e), 0);
  if (!e) {
    if (c) c->events_lost++;
    return;
  }
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  e->ts_boot_ns = bpf_ktime_get_boot_ns();
  e->cgroup_id = bpf_get_current_cgroup_id();
  e->rule_id = m->value ? m->value->rule_id : 0;
  e->pid = (__u32)pid_tgid;
  e->tgid = (__u32)(pid_tgid >> 32);
  e->uid = (__u32)bpf_get_current_uid_gid();
  e->port = bpf_ntohs((__u16)ctx->user_port);
  e->family = family;
  e->protocol = (__u8)ctx->protocol;
  e->verdict = m->value ? MESHD_VERDICT_DENIED : MESHD_VERDICT_ALLOWED;
  e->hook = (__u8)hook;
  __builtin_memset(e->pad, 0, sizeof(e->pad));
  __builtin_memset(e->addr, 0, sizeof(e->addr));
  __builtin_memcpy(e->addr, addr, family == 4 ? 4 : 16);
  if (bpf_get_current_comm(e->comm, sizeof(e->comm)) != 0) e->comm[0] = 0;
  bpf_ringbuf_submit(e, wakeup_flags(e->ts_boot_ns));
}

/* cgroup sock_addr programs return 1 to allow and 0 to fail the call with EPERM. */
static __always_inline int sock_addr4(struct bpf_sock_addr* ctx, __u32 hook) {
  struct meshd_hook_counters* c = counters(hook);
  if (c) c->seen++;
  __u32 ip = ctx->user_ip4;
  __u8 addr[4];
  __builtin_memcpy(addr, &ip, 4);
  struct match m = match_v4(addr, MESHD_DIR_EGRESS);
  count_match(c, &m);
  emit_event(ctx, hook, 4, addr, &m, c);
  return m.value ? 0 : 1;
}

static __always_inline int sock_addr6(struct bpf_sock_addr* ctx, __u32 hook) {
  struct meshd_hook_counters* c = counters(hook);
  if (c) c->seen++;
  __u32 w[4];
  w[0] = ctx->user_ip6[0];
  w[1] = ctx->user_ip6[1];
  w[2] = ctx->user_ip6[2];
  w[3] = ctx->user_ip6[3];
  struct match m;
  /* ::ffff:a.b.c.d from a dual-stack socket goes out as IPv4: match the IPv4 trie. */
  if (w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff)) {
    m = match_v4(&w[3], MESHD_DIR_EGRESS);
    count_match(c, &m);
    emit_event(ctx, hook, 4, (const __u8*)&w[3], &m, c);
  } else {
    m = match_v6(w, MESHD_DIR_EGRESS);
    count_match(c, &m);
    emit_event(ctx, hook, 6, (const __u8*)w, &m, c);
  }
  return m.value ? 0 : 1;
}

SEC("cgroup/connect4")
int meshd_connect4(struct bpf_sock_addr* ctx) {
  return sock_addr4(ctx, MESHD_HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int meshd_connect6(struct bpf_sock_addr* ctx) {
  return sock_addr6(ctx, MESHD_HOOK_CONNECT6);
}

SEC("cgroup/sendmsg4")
int meshd_sendmsg4(struct bpf_sock_addr* ctx) {
  return sock_addr4(ctx, MESHD_HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int meshd_sendmsg6(struct bpf_sock_addr* ctx) {
  return sock_addr6(ctx, MESHD_HOOK_SENDMSG6);
}

/* ---- packet programs ----------------------------------------------------------------- */

static __always_inline int is_vlan(__be16 proto) {
  return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

/* XDP ingress: drop packets whose source is blocked for ingress. */
SEC("xdp")
int meshd_xdp_ingress(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  struct meshd_hook_counters* c = counters(MESHD_HOOK_XDP_INGRESS);
  if (c) c->seen++;

  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) goto unparsed;
  __be16 proto = eth->h_proto;
  void* cursor = eth + 1;
#pragma unroll
  for (int i = 0; i < MESHD_MAX_VLAN_TAGS; i++) {
    if (!is_vlan(proto)) break;
    struct vlan_tag* tag = cursor;
    if ((void*)(tag + 1) > data_end) goto unparsed;
    proto = tag->inner_proto;
    cursor = tag + 1;
  }
  if (is_vlan(proto)) goto unparsed;

  struct match m;
  if (proto == bpf_htons(ETH_P_IP)) {
    struct iphdr* ip = cursor;
    if ((void*)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5) goto unparsed;
    m = match_v4(&ip->saddr, MESHD_DIR_INGRESS);
  } else if (proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr* ip6 = cursor;
    if ((void*)(ip6 + 1) > data_end || ip6->version != 6) goto unparsed;
    m = match_v6(&ip6->saddr, MESHD_DIR_INGRESS);
  } else {
    return XDP_PASS; /* ARP, LLDP, ...: not ours to judge */
  }
  count_match(c, &m);
  return m.value ? XDP_DROP : XDP_PASS;

unparsed:
  if (c) c->unparsed++;
  return XDP_PASS;
}

/* TC egress: drop packets whose destination is blocked for egress. Headers are read with
 * bpf_skb_load_bytes, which also works when they are not in the linear part of the skb.
 * "Pass" is TC_ACT_UNSPEC (== TCX_NEXT), so programs attached after us still run. */
SEC("tc")
int meshd_tc_egress(struct __sk_buff* skb) {
  struct meshd_hook_counters* c = counters(MESHD_HOOK_TC_EGRESS);
  if (c) c->seen++;

  struct ethhdr eth;
  if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) != 0) goto unparsed;
  __be16 proto = eth.h_proto;
  __u32 off = sizeof(eth);
#pragma unroll
  for (int i = 0; i < MESHD_MAX_VLAN_TAGS; i++) {
    if (!is_vlan(proto)) break;
    struct vlan_tag tag;
    if (bpf_skb_load_bytes(skb, off, &tag, sizeof(tag)) != 0) goto unparsed;
    proto = tag.inner_proto;
    off += sizeof(tag);
  }
  if (is_vlan(proto)) goto unparsed;

  struct match m;
  if (proto == bpf_htons(ETH_P_IP)) {
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) != 0) goto unparsed;
    if (ip.version != 4 || ip.ihl < 5) goto unparsed;
    m = match_v4(&ip.daddr, MESHD_DIR_EGRESS);
  } else if (proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr ip6;
    if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)) != 0) goto unparsed;
    if (ip6.version != 6) goto unparsed;
    m = match_v6(&ip6.daddr, MESHD_DIR_EGRESS);
  } else {
    return TC_ACT_UNSPEC;
  }
  count_match(c, &m);
  return m.value ? TC_ACT_SHOT : TC_ACT_UNSPEC;

unparsed:
  if (c) c->unparsed++;
  return TC_ACT_UNSPEC;
}
