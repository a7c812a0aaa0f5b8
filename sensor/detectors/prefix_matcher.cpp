#include "sensor/detectors/prefix_matcher.hpp"

#include <algorithm>
#include <array>

namespace meshd::sensor {

PrefixMatcher::PrefixMatcher(std::span<const Entry> entries) {
  std::array<Bucket, 33> by_len4;
  std::array<Bucket, 129> by_len6;
  for (const auto& e : entries) {
    auto& b = e.prefix.family == Family::v4 ? by_len4[e.prefix.len] : by_len6[e.prefix.len];
    b.len = e.prefix.len;
    b.keys.emplace_back(to_addr(e.prefix), e.value);
  }
  auto finish = [this](auto& by_len, std::vector<Bucket>& out) {
    for (auto it = by_len.rbegin(); it != by_len.rend(); ++it) {
      if (it->keys.empty()) continue;
      // Stable so that the first of several duplicates wins, as documented.
      std::ranges::stable_sort(it->keys, {}, &std::pair<Addr128, std::uint32_t>::first);
      auto dup = std::ranges::unique(it->keys, {}, &std::pair<Addr128, std::uint32_t>::first);
      it->keys.erase(dup.begin(), dup.end());
      size_ += it->keys.size();
      out.push_back(std::move(*it));
    }
  };
  finish(by_len4, v4_);
  finish(by_len6, v6_);
}

std::optional<PrefixMatcher::Match> PrefixMatcher::longest_match(const Prefix& query) const {
  const auto& buckets = query.family == Family::v4 ? v4_ : v6_;
  const Addr128 addr = to_addr(query);
  for (const auto& b : buckets) {
    if (b.len > query.len) continue;
    const Addr128 key = addr & net_mask(query.family, b.len);
    auto it = std::ranges::lower_bound(b.keys, key, {}, &std::pair<Addr128, std::uint32_t>::first);
    if (it != b.keys.end() && it->first == key)
      return Match{from_addr(query.family, key, b.len), it->second};
  }
  return std::nullopt;
}

}  // namespace meshd::sensor
