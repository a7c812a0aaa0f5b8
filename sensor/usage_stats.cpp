#include "sensor/usage_stats.hpp"

#include <algorithm>

namespace meshd::sensor {

UsageStats::UsageStats(UsageConfig config) : config_(config) {
  config_.bucket_ms = std::max<DurationMs>(config_.bucket_ms, 1);
  config_.buckets = std::max(config_.buckets, 1);
}

std::int64_t UsageStats::bucket_of(TimeMs t) const {
  // Floor division, so negative (simulated) times bucket consistently.
  return t >= 0 ? t / config_.bucket_ms : -((-t + config_.bucket_ms - 1) / config_.bucket_ms);
}

void UsageStats::record(const ConnectEvent& e) {
  if (e.verdict == Verdict::denied) {
    ++counters_.ignored_denied;
    return;
  }
  record(e.destination, e.at, 1);
}

void UsageStats::record(const Prefix& dst, TimeMs at, std::uint32_t n) {
  const std::int64_t b = bucket_of(at);
  if (b > last_expire_bucket_) expire(at);
  if (b <= last_expire_bucket_ - config_.buckets) {
    ++counters_.ignored_old;
    return;
  }
  Key key{static_cast<std::uint8_t>(dst.family), to_addr(dst)};
  auto it = flows_.find(key);
  if (it == flows_.end()) {
    if (flows_.size() >= config_.max_addresses) {
      ++counters_.dropped_full;
      return;
    }
    it = flows_.emplace(key, std::vector<Bucket>{}).first;
    counters_.addresses = flows_.size();
  }
  auto& buckets = it->second;
  // Events arrive almost in order: the matching bucket is nearly always the last one.
  auto pos =
      std::find_if(buckets.rbegin(), buckets.rend(), [&](const Bucket& x) { return x.index <= b; });
  if (pos != buckets.rend() && pos->index == b)
    pos->count += n;
  else
    buckets.insert(pos.base(), Bucket{b, n});
  counters_.recorded += n;
}

std::uint64_t UsageStats::flows_to(const Prefix& prefix, TimeMs now) const {
  const std::int64_t newest = bucket_of(now);
  const std::int64_t oldest = newest - config_.buckets + 1;
  const auto fam = static_cast<std::uint8_t>(prefix.family);
  const Addr128 hi = last_addr(prefix);
  std::uint64_t total = 0;
  for (auto it = flows_.lower_bound(Key{fam, to_addr(prefix)});
       it != flows_.end() && it->first.first == fam && it->first.second <= hi; ++it)
    for (const Bucket& b : it->second)
      if (b.index >= oldest && b.index <= newest) total += b.count;
  return total;
}

void UsageStats::expire(TimeMs now) {
  const std::int64_t b = bucket_of(now);
  if (b < last_expire_bucket_) return;  // time went backwards: keep what we have
  last_expire_bucket_ = b;
  const std::int64_t oldest = b - config_.buckets + 1;
  for (auto it = flows_.begin(); it != flows_.end();) {
    auto& v = it->second;
    v.erase(v.begin(), std::ranges::find_if(v, [&](const Bucket& x) { return x.index >= oldest; }));
    it = v.empty() ? flows_.erase(it) : std::next(it);
  }
  counters_.addresses = flows_.size();
}

}  // namespace meshd::sensor
