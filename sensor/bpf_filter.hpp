// User-space writer of the IPv4 pre-filter bitset (meshd_v4_filter, see bpf/meshd_shared.h):
// one bit per /24, set when some IPv4 block entry covers or lies inside that /24. The map
// is BPF_F_MMAPABLE, so bits are written straight into kernel memory, no syscalls.
//
// Invariant kept by BpfEnforcer: while armed, every live IPv4 entry has its bits set
// (set_bits() before inserting; rebuild() after removing recomputes from the full set).
// Move-only; unmaps on destruction (the map and its bits stay with the pin).
#pragma once

#include <atomic>
#include <cstdint>
#include <unordered_set>

#include "meshd/common/result.hpp"
#include "sensor/bpf_maps.hpp"
#include "trust/prefix.hpp"

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
  void set_bits(const trust::Prefix& p);
  // Recomputes every word from `installed` (IPv4 members count) and arms the filter. A word
  // only ever changes to a superset of what the remaining entries need, so the programs
  // never see a missing bit for a live entry while this runs.
  void rebuild(const std::unordered_set<trust::Prefix, trust::PrefixHash>& installed);
  bool armed() const;
  // Number of /24s marked (popcount at the last rebuild plus bits set since).
  std::uint64_t marked_slash24s() const { return marked_; }

 private:
  V4Filter(Fd fd, std::uint64_t* words, std::size_t bytes)
      : fd_(std::move(fd)), words_(words), bytes_(bytes) {}
  std::atomic_ref<std::uint64_t> word(std::uint32_t index) const {
    return std::atomic_ref<std::uint64_t>(words_[index]);
  }

  Fd fd_;
  std::uint64_t* words_ = nullptr;
  std::size_t bytes_ = 0;
  std::uint64_t marked_ = 0;
};

}  // namespace meshd::sensor
