#include "sensor/bpf_filter.hpp"

#include "meshd/common/errno_text.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>

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
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) {
    return fail(
        "filter_mmap",
        std::string("mapping the IPv4 pre-filter (" MESHD_MAP_V4_FILTER "): ") + errno_text(errno));
  }
  return V4Filter(std::move(fd), static_cast<std::uint64_t*>(p), bytes);
}

V4Filter::V4Filter(V4Filter&& o) noexcept
    : fd_(std::move(o.fd_)),
      words_(std::exchange(o.words_, nullptr)),
      bytes_(std::exchange(o.bytes_, 0)),
      marked_(o.marked_) {}

V4Filter& V4Filter::operator=(V4Filter&& o) noexcept {
  if (this != &o) {
    if (words_ != nullptr) ::munmap(words_, bytes_);
    fd_ = std::move(o.fd_);
    words_ = std::exchange(o.words_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    marked_ = o.marked_;
  }
  return *this;
}

V4Filter::~V4Filter() {
  if (words_ != nullptr) ::munmap(words_, bytes_);
}

void V4Filter::set_bits(const Prefix& p) {
  if (p.family != Family::v4) return;
  for_each_word(p, [&](std::uint32_t w, std::uint64_t mask) {
    const std::uint64_t before = word(w).fetch_or(mask, std::memory_order_release);
    marked_ += static_cast<std::uint64_t>(std::popcount(mask & ~before));
  });
}

void V4Filter::mark(std::vector<std::uint64_t>& words, const Prefix& p) {
  if (p.family != Family::v4) return;
  for_each_word(p, [&](std::uint32_t w, std::uint64_t mask) { words[w] |= mask; });
}

void V4Filter::commit(const std::vector<std::uint64_t>& next) {
  marked_ = 0;
  for (std::uint32_t w = 0; w < MESHD_V4_FILTER_WORDS; ++w) {
    marked_ += static_cast<std::uint64_t>(std::popcount(next[w]));
    if (word(w).load(std::memory_order_relaxed) != next[w]) {
      word(w).store(next[w], std::memory_order_release);
    }
  }
  word(MESHD_V4_FILTER_ARMED_INDEX).store(1, std::memory_order_release);
}

bool V4Filter::armed() const {
  return word(MESHD_V4_FILTER_ARMED_INDEX).load(std::memory_order_acquire) != 0;
}

}  // namespace meshd::sensor
