// Longest-prefix match over a fixed set of prefixes (a threat feed, rebuilt on reload).
// One sorted array per prefix length present, binary-searched from the longest length
// down: lookups cost O(L log n) with L = number of distinct lengths (a handful for real
// feeds), memory is 20 bytes per entry, and building 100k+ entries is a sort.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "meshd/common/prefix.hpp"

namespace meshd::sensor {

class PrefixMatcher {
 public:
  struct Entry {
    Prefix prefix;
    std::uint32_t value = 0;  // caller's payload, e.g. an index into feed metadata
  };
  struct Match {
    Prefix prefix;  // the longest stored prefix containing the query
    std::uint32_t value = 0;
  };

  PrefixMatcher() = default;
  // Duplicated prefixes keep the first entry's value.
  explicit PrefixMatcher(std::span<const Entry> entries);

  // Longest stored prefix that contains all of `query` (usually a host prefix).
  std::optional<Match> longest_match(const Prefix& query) const;
  std::size_t size() const { return size_; }

 private:
  struct Bucket {
    int len = 0;
    std::vector<std::pair<Addr128, std::uint32_t>> keys;  // sorted by address
  };
  // Per family, buckets ordered by length, longest first.
  std::vector<Bucket> v4_;
  std::vector<Bucket> v6_;
  std::size_t size_ = 0;
};

}  // namespace meshd::sensor
