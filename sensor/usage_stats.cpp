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
  record(e.destination, e.at, 1, source_of(e));
}

std::uint64_t UsageStats::source_of(const ConnectEvent& e) {
  // Cgroup ids and process ids live in different spaces: the top bit tells them apart.
  if (e.cgroup_id != 0) return e.cgroup_id & ~(std::uint64_t{1} << 63);
  return e.tgid != 0 ? (std::uint64_t{1} << 63) | e.tgid : 0;
}

void UsageStats::record(const Prefix& dst, TimeMs at, std::uint32_t n, std::uint64_t source) {
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
    it = flows_.emplace(key, Address{}).first;
    counters_.addresses = flows_.size();
  }
  auto& buckets = it->second.buckets;
  // Events arrive almost in order: the matching bucket is nearly always the last one.
  auto pos =
      std::find_if(buckets.rbegin(), buckets.rend(), [&](const Bucket& x) { return x.index <= b; });
  if (pos != buckets.rend() && pos->index == b) {
    pos->count += n;
    pos->first_at = std::min(pos->first_at, at);
    pos->last_at = std::max(pos->last_at, at);
  } else {
    buckets.insert(pos.base(), Bucket{b, n, at, at});
  }
  auto& sources = it->second.sources;
  auto seen = std::ranges::find_if(sources, [&](const SourceSeen& x) { return x.id == source; });
  if (seen != sources.end()) {
    seen->last_at = std::max(seen->last_at, at);
  } else if (sources.size() < kMaxSourcesPerAddress) {
    sources.push_back(SourceSeen{source, at});
  } else {
    // Saturated: the least recently seen source gives way, so the list stays current.
    auto oldest = std::ranges::min_element(sources, {}, &SourceSeen::last_at);
    if (oldest->last_at < at) *oldest = SourceSeen{source, at};
  }
  counters_.recorded += n;
  mark_changed(key);
}

void UsageStats::mark_changed(const Key& key) {
  if (changed_overflow_) return;
  if (changed_.size() >= kMaxChanged && !changed_.contains(key)) {
    changed_overflow_ = true;
    changed_.clear();  // everything is re-checked anyway
    return;
  }
  changed_.insert(key);
}

UsageStats::Changed UsageStats::take_changed() {
  Changed c;
  c.overflow = changed_overflow_;
  c.destinations.reserve(changed_.size());
  for (const auto& [family, addr] : changed_) {
    const auto f = static_cast<Family>(family);
    c.destinations.push_back(from_addr(f, addr, f == Family::v4 ? 32 : 128));
  }
  changed_.clear();
  changed_overflow_ = false;
  return c;
}

void UsageStats::flag(const Prefix& target, TimeMs at) {
  for (auto& [p, when] : flagged_)
    if (p == target) {
      when = std::max(when, at);
      return;
    }
  if (flagged_.size() >= kMaxFlagged) flagged_.erase(flagged_.begin());
  flagged_.emplace_back(target, at);
}

UsageEvidence UsageStats::evidence(const Prefix& prefix, TimeMs now) const {
  const std::int64_t newest = bucket_of(now);
  const std::int64_t oldest = oldest_bucket(now);
  const auto fam = static_cast<std::uint8_t>(prefix.family);
  const Addr128 hi = last_addr(prefix);
  UsageEvidence e;
  TimeMs first = std::numeric_limits<TimeMs>::max();
  TimeMs last = std::numeric_limits<TimeMs>::min();
  std::vector<std::uint64_t> ids;  // distinct sources, capped: a count, not an inventory
  const std::size_t max_ids = 4 * kMaxSourcesPerAddress;
  const TimeMs window_start = oldest * config_.bucket_ms;
  for (auto it = flows_.lower_bound(Key{fam, to_addr(prefix)});
       it != flows_.end() && it->first.first == fam && it->first.second <= hi; ++it) {
    bool any = false;
    for (const Bucket& b : it->second.buckets)
      if (b.index >= oldest && b.index <= newest) {
        e.flows += b.count;
        first = std::min(first, b.first_at);
        last = std::max(last, b.last_at);
        any = true;
      }
    if (!any) continue;
    for (const SourceSeen& s : it->second.sources)
      if (s.last_at >= window_start && ids.size() < max_ids &&
          std::ranges::find(ids, s.id) == ids.end())
        ids.push_back(s.id);
  }
  e.sources = ids.size();
  e.span_ms = e.flows > 0 ? last - first : 0;
  for (const auto& [p, when] : flagged_)
    if (when >= window_start && when <= now + config_.bucket_ms && p.overlaps(prefix)) {
      e.flagged = true;
      break;
    }
  return e;
}

std::uint64_t UsageStats::flows_to(const Prefix& prefix, TimeMs now) const {
  const std::int64_t newest = bucket_of(now);
  const std::int64_t oldest = newest - config_.buckets + 1;
  const auto fam = static_cast<std::uint8_t>(prefix.family);
  const Addr128 hi = last_addr(prefix);
  std::uint64_t total = 0;
  for (auto it = flows_.lower_bound(Key{fam, to_addr(prefix)});
       it != flows_.end() && it->first.first == fam && it->first.second <= hi; ++it)
    for (const Bucket& b : it->second.buckets)
      if (b.index >= oldest && b.index <= newest) total += b.count;
  return total;
}

void UsageStats::expire(TimeMs now) {
  const std::int64_t b = bucket_of(now);
  if (b < last_expire_bucket_) return;  // time went backwards: keep what we have
  last_expire_bucket_ = b;
  const std::int64_t oldest = b - config_.buckets + 1;
  for (auto it = flows_.begin(); it != flows_.end();) {
    auto& v = it->second.buckets;
    auto keep = std::ranges::find_if(v, [&](const Bucket& x) { return x.index >= oldest; });
    if (keep != v.begin()) mark_changed(it->first);  // flows left the window: evidence fell
    v.erase(v.begin(), keep);
    it = v.empty() ? flows_.erase(it) : std::next(it);
  }
  counters_.addresses = flows_.size();
  const TimeMs window_start = oldest * config_.bucket_ms;
  std::erase_if(flagged_, [&](const auto& f) { return f.second < window_start; });
}

}  // namespace meshd::sensor
