// Internal: an open-addressing hash set of 32-bit record indexes. The keys live in the
// records themselves (claims, targets), so a slot costs 4 bytes instead of a node per entry:
// that is what keeps the engine under ~200 bytes per active claim.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace meshd::trust::detail {

class FlatIndex {
 public:
  static constexpr std::uint32_t kNone = 0xffffffffu;

  // Returns the stored index whose key equals the probe, or kNone.
  // `hash` is the probe key's hash; `eq(idx)` compares record idx with the probe key.
  template <class Eq>
  std::uint32_t find(std::uint64_t hash, Eq&& eq) const {
    if (slots_.empty()) return kNone;
    std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
      std::uint32_t s = slots_[i];
      if (s == kEmpty) return kNone;
      if (s != kTomb && eq(s)) return s;
    }
  }

  // Inserts idx (whose key must not be present). `hash_of(idx)` rehashes stored records.
  template <class HashOf>
  void insert(std::uint64_t hash, std::uint32_t idx, HashOf&& hash_of) {
    if ((used_ + 1) * 10 > slots_.size() * 7) grow(hash_of);
    std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
      if (slots_[i] == kEmpty || slots_[i] == kTomb) {
        if (slots_[i] == kEmpty) ++used_;
        slots_[i] = idx;
        ++size_;
        return;
      }
    }
  }

  // Removes idx (found by its own key's hash). Returns false if absent.
  bool erase(std::uint64_t hash, std::uint32_t idx) {
    if (slots_.empty()) return false;
    std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
      if (slots_[i] == kEmpty) return false;
      if (slots_[i] == idx) {
        slots_[i] = kTomb;
        --size_;
        return true;
      }
    }
  }

  std::size_t size() const { return size_; }
  std::size_t bytes() const { return slots_.capacity() * sizeof(std::uint32_t); }

 private:
  static constexpr std::uint32_t kEmpty = 0xffffffffu;
  static constexpr std::uint32_t kTomb = 0xfffffffeu;

  template <class HashOf>
  void grow(HashOf&& hash_of) {
    std::size_t cap = slots_.empty() ? 16 : slots_.size();
    while ((size_ + 1) * 10 > cap * 5) cap *= 2;  // after rehash at most 50% full
    std::vector<std::uint32_t> old(cap, kEmpty);
    old.swap(slots_);
    used_ = size_;
    std::size_t mask = slots_.size() - 1;
    for (std::uint32_t s : old) {
      if (s == kEmpty || s == kTomb) continue;
      for (std::size_t i = hash_of(s) & mask;; i = (i + 1) & mask) {
        if (slots_[i] == kEmpty) {
          slots_[i] = s;
          break;
        }
      }
    }
  }

  std::vector<std::uint32_t> slots_;
  std::size_t size_ = 0;  // live entries
  std::size_t used_ = 0;  // live + tombstones
};

// Grows a vector by a quarter instead of doubling: the record vectors are the engine's bulk,
// and doubling would leave up to half of them unused.
template <class V>
void grow_gently(V& v) {
  if (v.size() == v.capacity()) v.reserve(v.capacity() + v.capacity() / 4 + 64);
}

inline std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

// Hash of an id string (FNV-1a, finalised with mix64): keys FlatIndex by origin name.
inline std::uint64_t string_hash(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return mix64(h);
}

}  // namespace meshd::trust::detail
