// Usage statistics for the trust cost model: how many flows this node recently sent to each
// destination, queried per prefix ("how much would blocking 10.1.0.0/16 hurt us?").
//
// Sliding window of `buckets` × `bucket_ms` (default 10 × 1 min): counts live in per-address
// sparse bucket lists inside one ordered map keyed by (family, address), so a prefix query
// is a range scan over exactly the addresses inside the prefix: O(log n + k·b) for k active
// addresses in it. Pure (time comes from events and callers), so the simulator can use it too.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "meshd/common/prefix.hpp"
#include "meshd/common/time.hpp"
#include "sensor/events.hpp"

namespace meshd::sensor {

struct UsageConfig {
  DurationMs bucket_ms = kMinute;
  int buckets = 10;
  // Addresses tracked at once; flows to new addresses beyond it are counted as dropped.
  std::size_t max_addresses = 1'000'000;
};

// This node's own evidence about a destination over the window (the trust engine's
// BenignEvidence, without depending on trust/).
struct UsageEvidence {
  std::uint64_t flows = 0;    // as flows_to()
  std::uint64_t sources = 0;  // distinct local sources (cgroups, else processes), saturating
  DurationMs span_ms = 0;     // first to last of those flows
  bool flagged = false;       // a local detector flagged an address inside it in the window
};

struct UsageStatsCounters {
  std::uint64_t recorded = 0;
  std::uint64_t ignored_denied = 0;  // connects our own blocks denied (see record())
  std::uint64_t ignored_old = 0;     // older than the window when they arrived
  std::uint64_t dropped_full = 0;    // max_addresses reached
  std::uint64_t addresses = 0;       // currently tracked
};

class UsageStats {
 public:
  explicit UsageStats(UsageConfig config = {});

  // Counts one flow to the event's destination. Denied connects are not counted: a blocked
  // malware process retrying its C2 server must not raise the cost of keeping it blocked.
  void record(const ConnectEvent& event);
  // Counts `flows` flows to a host address at `at`, made by local source `source` (a cgroup
  // id, or a process id tagged by source_of(); 0 = unknown, counted as one anonymous source).
  void record(const Prefix& destination, TimeMs at, std::uint32_t flows = 1,
              std::uint64_t source = 0);
  // A local detector flagged `target` at `at`: traffic to it is not benign evidence for the
  // rest of the window (a compromised workload's C2 traffic must not protect the C2).
  void flag(const Prefix& target, TimeMs at);

  // Flows, distinct sources, span and the flag for `prefix` within the window ending at `now`.
  UsageEvidence evidence(const Prefix& prefix, TimeMs now) const;
  // The source id of a connect event: its cgroup, or its process when the cgroup is unknown.
  static std::uint64_t source_of(const ConnectEvent& event);
  // Distinct sources remembered per address; more are counted as this many.
  static constexpr std::size_t kMaxSourcesPerAddress = 8;
  // Flagged targets remembered at once; the oldest is forgotten first.
  static constexpr std::size_t kMaxFlagged = 4096;

  // Flows to any address inside `prefix` within the window ending at `now`.
  std::uint64_t flows_to(const Prefix& prefix, TimeMs now) const;

  // Forgets buckets older than the window and addresses without recent flows. Called by
  // record() once per bucket period; callers may call it more often.
  void expire(TimeMs now);

  // The destinations whose evidence moved since the last call: a flow was recorded to them,
  // or a bucket of theirs left the window. Host prefixes, sorted; at most kMaxChanged of
  // them: past that `overflow` says "more moved than were remembered" (check everything).
  // The caller decides the pace (the daemon: once per bucket), so the work of re-checking
  // follows the number of destinations, not the number of flows.
  struct Changed {
    std::vector<Prefix> destinations;
    bool overflow = false;
  };
  Changed take_changed();
  static constexpr std::size_t kMaxChanged = 4096;
  // The bucket `t` falls in (bucket_ms wide, floor division).
  std::int64_t bucket_of(TimeMs t) const;

  const UsageStatsCounters& counters() const { return counters_; }
  const UsageConfig& config() const { return config_; }

 private:
  using Key = std::pair<std::uint8_t, Addr128>;  // (family, address)
  struct Bucket {
    std::int64_t index;
    std::uint32_t count;
    TimeMs first_at;  // earliest and latest flow in this bucket
    TimeMs last_at;
  };
  struct SourceSeen {
    std::uint64_t id;
    TimeMs last_at;
  };
  struct Address {
    std::vector<Bucket> buckets;      // ascending by index
    std::vector<SourceSeen> sources;  // at most kMaxSourcesPerAddress
  };
  void mark_changed(const Key& key);
  std::int64_t oldest_bucket(TimeMs now) const { return bucket_of(now) - config_.buckets + 1; }

  UsageConfig config_;
  std::map<Key, Address> flows_;
  std::vector<std::pair<Prefix, TimeMs>> flagged_;  // (target, flagged at), oldest first
  std::set<Key> changed_;  // since the last take_changed(), at most kMaxChanged
  bool changed_overflow_ = false;
  // Far in the past until the first record or expire, so early events are never "old".
  std::int64_t last_expire_bucket_ = std::numeric_limits<std::int64_t>::min() / 2;
  UsageStatsCounters counters_;
};

}  // namespace meshd::sensor
