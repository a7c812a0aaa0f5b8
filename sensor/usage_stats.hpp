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
  // Counts `flows` flows to a host address at `at`.
  void record(const Prefix& destination, TimeMs at, std::uint32_t flows = 1);

  // Flows to any address inside `prefix` within the window ending at `now`.
  std::uint64_t flows_to(const Prefix& prefix, TimeMs now) const;

  // Forgets buckets older than the window and addresses without recent flows. Called by
  // record() once per bucket period; callers may call it more often.
  void expire(TimeMs now);

  const UsageStatsCounters& counters() const { return counters_; }
  const UsageConfig& config() const { return config_; }

 private:
  using Key = std::pair<std::uint8_t, Addr128>;  // (family, address)
  struct Bucket {
    std::int64_t index;
    std::uint32_t count;
  };
  std::int64_t bucket_of(TimeMs t) const;

  UsageConfig config_;
  std::map<Key, std::vector<Bucket>> flows_;  // buckets ascending by index
  // Far in the past until the first record or expire, so early events are never "old".
  std::int64_t last_expire_bucket_ = std::numeric_limits<std::int64_t>::min() / 2;
  UsageStatsCounters counters_;
};

}  // namespace meshd::sensor
