// User-space writer of the IPv4 pre-filter bitset (meshd_v4_filter, see bpf/meshd_shared.h):
// one bit per /24, set when some IPv4 block entry covers or lies inside that /24. The map
// is BPF_F_MMAPABLE, so bits are written straight into kernel memory, no syscalls.
//
// Invariant kept by BpfEnforcer: while armed, every live IPv4 entry the filter is about
// (meshd_v4_filter: all of them; meshd_v4_tfilt: the trie's) has its bits set (set_bits()
// before inserting; rebuild() after removing recomputes from the full set).
// Move-only; unmaps on destruction (the map and its bits stay with the pin).
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "meshd/common/prefix.hpp"
#include "meshd/common/result.hpp"
#include "sensor/bpf_maps.hpp"

namespace meshd::sensor {

class V4Filter {
 public:
  // Maps the filter array of `fd` (taken over).
  static Result<V4Filter> open(Fd fd);

  V4Filter(V4Filter&& o) noexcept;
  V4Filter& operator=(V4Filter&& o) noexcept;
  V4Filter(const V4Filter&) = delete;
  V4Filter& operator=(const V4Filter&) = delete;
  ~V4Filter();

  // Sets the bits of one IPv4 prefix (ignored for IPv6).
  void set_bits(const Prefix& p);
  // Recomputes every word from the prefixes `for_each` hands out (for_each(visit) calls
  // visit(prefix) once per prefix; IPv6 ones are ignored) and arms the filter. A word only
  // ever changes to a superset of what the remaining entries need, so the programs never
  // see a missing bit for a live entry while this runs.
  template <class ForEach>
  void rebuild(ForEach&& for_each) {
    std::vector<std::uint64_t> next(MESHD_V4_FILTER_WORDS, 0);
    for_each([&](const Prefix& p) { mark(next, p); });
    commit(next);
  }
  bool armed() const;
  // Number of /24s marked (popcount at the last rebuild plus bits set since).
  std::uint64_t marked_slash24s() const { return marked_; }

 private:
  V4Filter(Fd fd, std::uint64_t* words, std::size_t bytes)
      : fd_(std::move(fd)), words_(words), bytes_(bytes) {}
  static void mark(std::vector<std::uint64_t>& words, const Prefix& p);
  void commit(const std::vector<std::uint64_t>& next);
  std::atomic_ref<std::uint64_t> word(std::uint32_t index) const {
    return std::atomic_ref<std::uint64_t>(words_[index]);
  }

  Fd fd_;
  std::uint64_t* words_ = nullptr;
  std::size_t bytes_ = 0;
  std::uint64_t marked_ = 0;
};

}  // namespace meshd::sensor
