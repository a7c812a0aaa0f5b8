// User-space writer of the IPv4 pre-filter bitset (meshd_v4_filter, see bpf/meshd_shared.h):
// one bit per /24, set when some IPv4 block entry covers or lies inside that /24. The map
// is BPF_F_MMAPABLE, so bits are written straight into kernel memory, no syscalls.
//
// The 2 MB bitset is mapped lazily, in chunks of kChunkBytes: mmap of a BPF array maps all
// its pages at once (they count in the daemon's RSS whether touched or not), so only chunks
// holding set bits stay mapped. A chunk whose bits all cleared is unmapped again; one never
// mapped is known to be zero once a rebuild has checked it (a pinned map may keep bits of an
// earlier daemon).
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
  static constexpr std::size_t kChunkBytes = 64 * 1024;  // unit of mapping

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
  // Chunks mapped now (each kChunkBytes), and mmap calls that failed (the bits they were for
  // could not be written: the filter is disarmed until a rebuild succeeds).
  std::size_t mapped_chunks() const;
  std::uint64_t map_failures() const { return map_failures_; }

 private:
  static constexpr std::uint32_t kChunkWords = kChunkBytes / sizeof(std::uint64_t);
  enum class ChunkState : std::uint8_t { unknown, zero, mapped };

  V4Filter(Fd fd, std::size_t bytes);
  static void mark(std::vector<std::uint64_t>& words, const Prefix& p);
  void commit(const std::vector<std::uint64_t>& next);
  // The chunk holding word `index`, mapped on demand (nullptr if mmap failed).
  std::uint64_t* chunk(std::uint32_t c);
  void unmap(std::uint32_t c);
  std::size_t chunk_bytes(std::uint32_t c) const;
  // Word `index` of a mapped chunk.
  std::atomic_ref<std::uint64_t> word(std::uint64_t* base, std::uint32_t index) const {
    return std::atomic_ref<std::uint64_t>(base[index % kChunkWords]);
  }
  void release();

  Fd fd_;
  std::size_t bytes_ = 0;
  std::vector<std::uint64_t*> chunks_;
  std::vector<ChunkState> state_;
  std::uint64_t marked_ = 0;
  std::uint64_t map_failures_ = 0;
};

}  // namespace meshd::sensor
