// The default enforcement backend: writes block rules into the LPM tries that the BPF
// programs of bpf/meshd.bpf.c consult (connect/sendmsg hooks and TC egress for egress
// rules, XDP for ingress rules).
//
// Ownership: the block maps under a pin path belong to exactly one BpfEnforcer at a time
// (the daemon configured with that pin path). Every entry in them was written by a
// BpfEnforcer, so list() and remove() touch only meshd's own rules; other nodes on the
// same host use their own pin paths.
//
// Semantics of the maps: one entry per prefix (applying a rule for a prefix that is
// already present replaces it, last one wins within a batch); an entry blocks the
// directions in its flags until its boot-time expiry, checked by the programs themselves.
// Nested prefixes combine: a packet is blocked when any live entry covering it has the
// direction (up to MESHD_MAX_NESTED_LOOKUPS nested entries).
//
// Where an entry lives: IPv4 /32 and /24 and IPv6 /128 and /64 in the exact-match hash
// maps (meshd_exact_v4/6), every other length in the LPM tries (see bpf/meshd_shared.h);
// an exact-length prefix goes to the trie when its exact map is full, and one found in a
// trie on open (written by an older version) stays there. The enforcer remembers where
// each prefix is, so re-timing writes it in place and removal deletes it from its map.
//
// The IPv4 pre-filter bitsets (meshd_v4_filter for all entries, meshd_v4_tfilt for the
// trie's) are rebuilt from the maps on open and kept in step by apply()/remove().
//
// Cost model (measured on the 2-core CI VM: one bpf() syscall costs ~6 us there): every
// bulk operation uses the BPF_MAP_*_BATCH commands, never one syscall per entry. The set
// of installed prefixes is mirrored in memory (loaded from the maps on open), so apply()
// knows which entries are new, remove() only deletes present keys, and stats() is O(1).
//
// Not thread-safe: call from one thread (the daemon's enforcement strand).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sensor/bpf_filter.hpp"
#include "sensor/bpf_maps.hpp"
#include "sensor/enforcer.hpp"
#include "sensor/prefix_table.hpp"

namespace meshd::sensor {

class BpfLoader;

// Counters beyond EnforcerStats, for metrics export.
struct BpfEnforcerStats {
  HookCounters hooks{};             // kernel per-hook counters (summed over CPUs)
  std::uint64_t rules_written = 0;  // entries inserted or re-timed by apply()
  std::uint64_t rules_refused = 0;  // protected / invalid rules refused by apply()
  std::uint64_t rules_skipped_expired = 0;
  std::uint64_t rules_removed = 0;
  std::uint64_t rules_pruned = 0;        // expired entries deleted by prune_expired()
  std::uint64_t map_errors = 0;          // failed map syscalls (apply/remove/list)
  bool batch_updates = false;            // the kernel accepted BPF_MAP_UPDATE_BATCH on the tries
  bool v4_filter_armed = false;          // IPv4 pre-filter in use by the programs
  std::uint64_t v4_filter_slash24s = 0;  // /24s the pre-filter lets through to a lookup
  std::uint64_t v4_trie_filter_slash24s = 0;  // /24s whose lookups also walk the IPv4 trie
  // Bytes of both pre-filters mapped into this process (they are mapped where bits are set),
  // and mmap calls that failed (the filter stays disarmed until a rebuild succeeds).
  std::uint64_t v4_filter_mapped_bytes = 0;
  std::uint64_t v4_filter_map_failures = 0;
  std::uint64_t exact_map_full = 0;  // exact-length rules written to a trie: exact map full
};

class BpfEnforcer final : public Enforcer {
 public:
  // Opens the maps BpfLoader pinned under `pin_path` (the loader must have run first).
  static Result<BpfEnforcer> open_pinned(const std::string& pin_path);
  // Uses the maps of a loaded BpfLoader (pinned or not); the fds are duplicated, so the
  // enforcer stays valid when the loader is destroyed.
  static Result<BpfEnforcer> from_loader(const BpfLoader& loader);

  BpfEnforcer(BpfEnforcer&&) noexcept = default;
  BpfEnforcer& operator=(BpfEnforcer&&) noexcept = default;

  std::string_view name() const override { return "bpf"; }
  void set_protected(std::vector<Prefix> protected_prefixes) override;

  // Refuses rules that overlap a protected prefix or carry no valid direction; skips rules
  // with expires_at <= now. The rest are written with expiry
  //   CLOCK_BOOTTIME(read once per batch) + (expires_at - now) ms.
  // Uses BPF_MAP_UPDATE_BATCH when the kernel supports it on LPM tries, else one update
  // per rule. A map error stops the batch and is returned (rules written before it stay
  // written and are accounted for).
  Result<ApplyReport> apply(std::span<const BlockRule> rules, TimeMs now) override;
  Result<std::size_t> remove(std::span<const Prefix> prefixes) override;
  // Live entries of both tries (expired ones are left out), expires_at rebuilt as
  // now + (expiry_boot_ns - CLOCK_BOOTTIME) rounded up to the next ms.
  Result<std::vector<BlockRule>> list(TimeMs now) override;
  // active_rules = entries in the tries (expired ones count until pruned);
  // packets_dropped = XDP + TC drops; connects_denied = connect + sendmsg EPERMs.
  EnforcerStats stats() const override;

  // Deletes entries whose expiry has passed (they no longer block; this frees memory).
  Result<std::size_t> prune_expired();
  BpfEnforcerStats detailed_stats() const;

 private:
  // Where a prefix's entry is (bits: an older version's entry may be in both).
  static constexpr std::uint8_t kInTrie = 1;
  static constexpr std::uint8_t kInExact = 2;
  struct Maps {
    Fd v4, v6;          // LPM tries
    Fd exact4, exact6;  // exact-match hashes
    Fd filter, trie_filter, counters;
  };

  BpfEnforcer(Maps maps, V4Filter filter, V4Filter trie_filter);
  static Result<BpfEnforcer> make(Maps maps);
  // Reads every entry of the four block maps (batched); calls fn(prefix, value, kIn*).
  template <class Fn>
  Result<void> for_each(Fn&& fn);
  // Writes keys[i] -> values[i] into map `fd` and records the prefixes as installed there;
  // `done` says how many were written (also on error).
  template <class Key>
  Result<void> write(int fd, std::uint8_t where, const std::vector<Key>& keys,
                     const std::vector<meshd_block_value>& values, std::size_t& done);
  template <class Key>
  Result<std::size_t> erase(int fd, const std::vector<Key>& keys);
  void rebuild_filters();

  Fd v4_;
  Fd v6_;
  Fd exact4_;
  Fd exact6_;
  V4Filter filter_;
  V4Filter trie_filter_;
  Fd counters_;
  std::vector<Prefix> protected_;
  PrefixTable installed_;  // prefix -> kInTrie | kInExact (prefix_table.hpp: ~30 B per entry)
  int batch_state_ = 0;    // 0 unknown, 1 supported, -1 unsupported (probed on first use)
  BpfEnforcerStats stats_;
};

}  // namespace meshd::sensor
