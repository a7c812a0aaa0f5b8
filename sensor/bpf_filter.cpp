#include "sensor/bpf_filter.hpp"

#include "meshd/common/errno_text.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace meshd::sensor {
namespace {

// [first, last] /24 numbers covered by an IPv4 prefix.
std::pair<std::uint32_t, std::uint32_t> slash24_range(const Prefix& p) {
  const std::uint32_t first =
      (std::uint32_t{p.addr[0]} << 16) | (std::uint32_t{p.addr[1]} << 8) | p.addr[2];
  if (p.len >= 24) return {first, first};
  const std::uint32_t span = 1u << (24 - p.len);
  const std::uint32_t start = first & ~(span - 1);
  return {start, start + span - 1};
}

template <class SetWord>
void for_each_word(const Prefix& p, SetWord&& set_word) {
  auto [first, last] = slash24_range(p);
  for (std::uint32_t w = first >> 6; w <= last >> 6; ++w) {
    const std::uint32_t lo = std::max(first, w << 6) & 63;
    const std::uint32_t hi = std::min(last, (w << 6) | 63) & 63;
    const std::uint64_t mask =
        (hi - lo == 63) ? ~std::uint64_t{0} : (((std::uint64_t{1} << (hi - lo + 1)) - 1) << lo);
    set_word(w, mask);
  }
}

}  // namespace

Result<V4Filter> V4Filter::open(Fd fd) {
  const long page = ::sysconf(_SC_PAGESIZE);
  const std::size_t bytes =
      (MESHD_V4_FILTER_ENTRIES * sizeof(std::uint64_t) + page - 1) / page * page;
  static_assert(kChunkBytes % 4096 == 0);
  if (kChunkBytes % static_cast<std::size_t>(page) != 0)
    return fail("filter_mmap", "page size " + std::to_string(page) +
                                   " does not divide the pre-filter's chunk size");
  V4Filter f(std::move(fd), bytes);
  // The chunk of the armed word stays mapped: armed() reads it.
  if (f.chunk(MESHD_V4_FILTER_ARMED_INDEX / kChunkWords) == nullptr) {
    return fail(
        "filter_mmap",
        std::string("mapping the IPv4 pre-filter (" MESHD_MAP_V4_FILTER "): ") + errno_text(errno));
  }
  return f;
}

V4Filter::V4Filter(Fd fd, std::size_t bytes) : fd_(std::move(fd)), bytes_(bytes) {
  const std::size_t n = (bytes + kChunkBytes - 1) / kChunkBytes;
  chunks_.assign(n, nullptr);
  state_.assign(n, ChunkState::unknown);
}

V4Filter::V4Filter(V4Filter&& o) noexcept
    : fd_(std::move(o.fd_)),
      bytes_(std::exchange(o.bytes_, 0)),
      chunks_(std::move(o.chunks_)),
      state_(std::move(o.state_)),
      marked_(o.marked_),
      map_failures_(o.map_failures_) {
  o.chunks_.clear();
  o.state_.clear();
}

V4Filter& V4Filter::operator=(V4Filter&& o) noexcept {
  if (this != &o) {
    release();
    fd_ = std::move(o.fd_);
    bytes_ = std::exchange(o.bytes_, 0);
    chunks_ = std::move(o.chunks_);
    state_ = std::move(o.state_);
    o.chunks_.clear();
    o.state_.clear();
    marked_ = o.marked_;
    map_failures_ = o.map_failures_;
  }
  return *this;
}

V4Filter::~V4Filter() {
  release();
}

void V4Filter::release() {
  for (std::uint32_t c = 0; c < chunks_.size(); ++c) unmap(c);
}

std::size_t V4Filter::chunk_bytes(std::uint32_t c) const {
  return std::min(kChunkBytes, bytes_ - std::size_t{c} * kChunkBytes);
}

std::uint64_t* V4Filter::chunk(std::uint32_t c) {
  if (chunks_[c] != nullptr) return chunks_[c];
  void* p = ::mmap(nullptr, chunk_bytes(c), PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(),
                   static_cast<off_t>(std::size_t{c} * kChunkBytes));
  if (p == MAP_FAILED) {
    ++map_failures_;
    return nullptr;
  }
  chunks_[c] = static_cast<std::uint64_t*>(p);
  state_[c] = ChunkState::mapped;
  return chunks_[c];
}

void V4Filter::unmap(std::uint32_t c) {
  if (chunks_[c] == nullptr) return;
  ::munmap(chunks_[c], chunk_bytes(c));
  chunks_[c] = nullptr;
  state_[c] = ChunkState::unknown;
}

std::size_t V4Filter::mapped_chunks() const {
  return static_cast<std::size_t>(
      std::count_if(chunks_.begin(), chunks_.end(), [](const auto* p) { return p != nullptr; }));
}

void V4Filter::set_bits(const Prefix& p) {
  if (p.family != Family::v4) return;
  for_each_word(p, [&](std::uint32_t w, std::uint64_t mask) {
    std::uint64_t* base = chunk(w / kChunkWords);
    if (base == nullptr) {
      // The bit cannot be set: the filter must not claim to be complete. Every lookup goes
      // to the maps until a rebuild succeeds.
      word(chunks_[MESHD_V4_FILTER_ARMED_INDEX / kChunkWords], MESHD_V4_FILTER_ARMED_INDEX)
          .store(0, std::memory_order_release);
      return;
    }
    const std::uint64_t before = word(base, w).fetch_or(mask, std::memory_order_release);
    marked_ += static_cast<std::uint64_t>(std::popcount(mask & ~before));
  });
}

void V4Filter::mark(std::vector<std::uint64_t>& words, const Prefix& p) {
  if (p.family != Family::v4) return;
  for_each_word(p, [&](std::uint32_t w, std::uint64_t mask) { words[w] |= mask; });
}

void V4Filter::commit(const std::vector<std::uint64_t>& next) {
  marked_ = 0;
  bool complete = true;
  constexpr std::uint32_t kArmedChunk = MESHD_V4_FILTER_ARMED_INDEX / kChunkWords;
  for (std::uint32_t c = 0; c * kChunkWords < MESHD_V4_FILTER_WORDS; ++c) {
    const std::uint32_t first = c * kChunkWords;
    const std::uint32_t last = std::min<std::uint32_t>(first + kChunkWords, MESHD_V4_FILTER_WORDS);
    bool any = false;
    for (std::uint32_t w = first; w < last; ++w) {
      marked_ += static_cast<std::uint64_t>(std::popcount(next[w]));
      any = any || next[w] != 0;
    }
    if (!any && state_[c] == ChunkState::zero) continue;  // nothing there, nothing wanted
    std::uint64_t* base = chunk(c);
    if (base == nullptr) {
      complete = false;
      continue;
    }
    for (std::uint32_t w = first; w < last; ++w) {
      if (word(base, w).load(std::memory_order_relaxed) != next[w]) {
        word(base, w).store(next[w], std::memory_order_release);
      }
    }
    if (!any && c != kArmedChunk) {
      unmap(c);
      state_[c] = ChunkState::zero;
    }
  }
  word(chunks_[kArmedChunk], MESHD_V4_FILTER_ARMED_INDEX)
      .store(complete ? 1 : 0, std::memory_order_release);
}

bool V4Filter::armed() const {
  constexpr std::uint32_t kArmedChunk = MESHD_V4_FILTER_ARMED_INDEX / kChunkWords;
  return std::atomic_ref<std::uint64_t>(
             chunks_[kArmedChunk][MESHD_V4_FILTER_ARMED_INDEX % kChunkWords])
             .load(std::memory_order_acquire) != 0;
}

}  // namespace meshd::sensor
