/* Kernel/user shared definitions of meshd's data plane: the ONE place where map keys,
 * map values, ring-buffer records, counter indices and constants are defined. Included by
 * bpf/meshd.bpf.c (clang -target bpf) and by sensor/bpf_*.cpp (g++), which static_asserts
 * every size and offset below. Fixed-width types only, explicit padding, no bitfields.
 *
 * Byte order: addresses are in network order (as on the wire), ports in host order.
 */
#ifndef MESHD_BPF_SHARED_H
#define MESHD_BPF_SHARED_H

#include <linux/types.h>

/* Capacity of each block trie (v4 and v6). BPF_F_NO_PREALLOC: memory is used per entry. */
#define MESHD_BLOCK_MAX_ENTRIES 1000000
/* Ring buffer for connect events, bytes (power of two, multiple of the page size). */
#define MESHD_EVENTS_RINGBUF_BYTES (1u << 20)
/* Ring-buffer wakeups. One wakeup per connect costs more than the rest of the hook
 * (measured: UDP connect() rate fell to 0.4x with per-event wakeups), so the hooks wake the
 * reader only
 *   - when MESHD_EVENTS_WAKEUP_BYTES are unread (a busy host: the reader is behind), or
 *   - for the first event at least MESHD_EVENTS_WAKEUP_INTERVAL_NS after the last such
 *     wakeup.
 * So an idle reader can block in epoll with no timeout and sees the first event of a quiet
 * period at once, and a storm costs at most one wakeup per interval (plus one per
 * WAKEUP_BYTES). Events within the interval after a wakeup send none: a reader whose drain
 * found events must drain again MESHD_EVENTS_RECHECK_NS later before it blocks with no
 * timeout (RingbufEventSource::next_drain_in_ms() says when). */
#define MESHD_EVENTS_WAKEUP_BYTES (64u * 1024)
#define MESHD_EVENTS_WAKEUP_INTERVAL_NS (10ull * 1000 * 1000)
/* Twice the interval: the drain that found the event behind a wakeup comes after that
 * wakeup, so its recheck comes at least one full interval after every event the wakeup
 * suppressed, with room for such an event's record to become visible. */
#define MESHD_EVENTS_RECHECK_NS (2 * MESHD_EVENTS_WAKEUP_INTERVAL_NS)

/* Map names as they appear in the object, in bpftool and as pin file names under the pin
 * path (BPF object names are at most 15 characters). */
#define MESHD_MAP_BLOCK_V4 "meshd_block_v4"
#define MESHD_MAP_BLOCK_V6 "meshd_block_v6"
#define MESHD_MAP_COUNTERS "meshd_counters"
#define MESHD_MAP_EVENTS "meshd_events"

#define MESHD_MAP_V4_FILTER "meshd_v4_filter"
#define MESHD_MAP_EXACT_V4 "meshd_exact_v4"
#define MESHD_MAP_EXACT_V6 "meshd_exact_v6"
#define MESHD_MAP_V4_TRIE_FILTER "meshd_v4_tfilt"

/* Exact-match maps (hash, BPF_F_NO_PREALLOC; same key and value layout as the tries): the
 * entries whose prefix length is one of the two commonest, IPv4 /32 and /24, IPv6 /128 and
 * /64, live here instead of in the tries. A lookup there costs one hash probe (one or two
 * cache lines) whatever the number of entries, where a trie walk at 1M entries follows
 * ~20 dependent pointers: in live traffic, with the caches busy, that walk cost ~1.2 us
 * per packet (tests/bench/bpf/enforcer_drop_bench). The programs check, longest first:
 * the host length, the trie's entries longer than the net length, the net length, the
 * trie's shorter entries, so a match is still the longest one that applies. BpfEnforcer
 * puts each prefix in exactly one map (the trie when an exact map is full, and for entries
 * an older version left in a trie). Their bucket arrays are allocated up front (16 bytes
 * per bucket), hence the smaller IPv6 map. */
#define MESHD_EXACT_V4_MAX_ENTRIES 1000000
#define MESHD_EXACT_V6_MAX_ENTRIES 262144
#define MESHD_V4_HOST_LEN 32
#define MESHD_V4_NET_LEN 24
#define MESHD_V6_HOST_LEN 128
#define MESHD_V6_NET_LEN 64

/* IPv4 pre-filter: a bitset with one bit per /24 (2^24 bits in u64 words), set when some
 * entry of the IPv4 trie covers or lies inside that /24. The programs consult the trie only
 * when the bit is set, so an unblocked packet costs two array reads whatever the trie size
 * (at 1M random entries ~5% of /24s are set). BpfEnforcer sets bits before inserting
 * entries and recomputes the set after removals, so a bit is never missing for a live
 * entry. Word MESHD_V4_FILTER_ARMED_INDEX is non-zero only while the bitset is complete;
 * until user space has built it (fresh map next to reused tries) every lookup goes to the
 * trie. IPv6 has no pre-filter.
 *
 * meshd_v4_tfilt has the same layout and rules, for the entries of the IPv4 trie only: while
 * it is armed and an address's /24 bit is clear, the programs skip the trie walk (a source
 * blocked by a /32 or /24, or an unblocked one next to them, costs hash probes only). */
#define MESHD_V4_FILTER_WORDS (1u << 18)
#define MESHD_V4_FILTER_ARMED_INDEX MESHD_V4_FILTER_WORDS
#define MESHD_V4_FILTER_ENTRIES (MESHD_V4_FILTER_WORDS + 1)

/* Direction flags of a block entry: same bit values as Direction. */
#define MESHD_DIR_EGRESS 1u  /* traffic to the prefix: connect/sendmsg hooks, TC egress */
#define MESHD_DIR_INGRESS 2u /* traffic from the prefix: XDP ingress */
#define MESHD_DIR_MASK 3u

/* An LPM match that does not apply (expired, or other direction) makes the programs look
 * again for a shorter covering entry, at most this many times: nested blocks such as a
 * live /16 around an expired /24 still take effect. Deeper nesting is not followed. */
#define MESHD_MAX_NESTED_LOOKUPS 8

/* VLAN handling, the same in XDP and TC: up to this many 802.1Q (0x8100) / 802.1ad
 * (0x88A8) tags are skipped and the inner IPv4/IPv6 header is matched, so tagged traffic
 * cannot bypass a block. Frames with more tags are passed and counted as unparsed. */
#define MESHD_MAX_VLAN_TAGS 2

/* LPM trie keys (layout required by BPF_MAP_TYPE_LPM_TRIE: prefix length, then data). */
struct meshd_v4_key {
  __u32 prefixlen; /* 0..32 */
  __u8 addr[4];    /* network order, host bits zero */
};

struct meshd_v6_key {
  __u32 prefixlen; /* 0..128 */
  __u8 addr[16];   /* network order, host bits zero */
};

/* One block entry. An entry blocks while bpf_ktime_get_boot_ns() < expiry_boot_ns; after
 * that the programs ignore it (so a dead daemon leaves no permanent block) until user space
 * prunes it. */
struct meshd_block_value {
  __u64 expiry_boot_ns; /* CLOCK_BOOTTIME ns */
  __u64 rule_id;        /* the daemon's rule id, reported in events */
  __u32 direction;      /* MESHD_DIR_* bits */
  __u32 prefixlen;      /* copy of the key's prefixlen: lets the programs look for a
                           shorter covering entry when this one does not apply */
};

/* Per-CPU counter slots, one per hook (index of the meshd_counters array). */
enum meshd_hook {
  MESHD_HOOK_CONNECT4 = 0,
  MESHD_HOOK_CONNECT6 = 1,
  MESHD_HOOK_SENDMSG4 = 2,
  MESHD_HOOK_SENDMSG6 = 3,
  MESHD_HOOK_TC_EGRESS = 4,
  MESHD_HOOK_XDP_INGRESS = 5,
  MESHD_HOOK_COUNT = 6,
};

struct meshd_hook_counters {
  __u64 seen;        /* calls (connects, sendmsgs, packets) */
  __u64 blocked;     /* denied (EPERM) or dropped */
  __u64 expired;     /* matched only entries whose expiry had passed: allowed */
  __u64 unparsed;    /* packets passed without lookup: truncated or malformed IP, too many
                        VLAN tags (non-IP frames such as ARP are passed uncounted) */
  __u64 events_lost; /* ring buffer full: the event was not emitted (verdict still applied) */
};

/* Verdict and protocol values of an event. */
#define MESHD_VERDICT_ALLOWED 0
#define MESHD_VERDICT_DENIED 1

/* One connect()/sendmsg() seen by a cgroup hook, as written to the ring buffer. */
struct meshd_connect_event {
  __u64 ts_boot_ns; /* bpf_ktime_get_boot_ns() at the hook */
  __u64 cgroup_id;  /* bpf_get_current_cgroup_id(): inode of the cgroup v2 directory */
  __u64 rule_id;    /* matching block's rule id when denied, else 0 */
  __u32 pid;        /* thread id */
  __u32 tgid;       /* process id */
  __u32 uid;
  __u16 port;    /* destination port, host order */
  __u8 family;   /* 4 or 6 (an IPv4-mapped IPv6 destination is reported as 4) */
  __u8 protocol; /* IPPROTO_TCP / IPPROTO_UDP / other as the socket says */
  __u8 verdict;  /* MESHD_VERDICT_* */
  __u8 hook;     /* enum meshd_hook */
  __u8 pad[6];
  __u8 addr[16]; /* destination, network order; v4 uses [0,4) */
  char comm[16]; /* task comm, NUL-terminated */
};

#endif /* MESHD_BPF_SHARED_H */
