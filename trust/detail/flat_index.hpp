// Internal: an open-addressing hash set of 32-bit record indexes. The keys live in the
// records themselves (claims, targets), so a slot costs 4 bytes instead of a node per entry:
// that is what keeps the engine under ~200 bytes per active claim.
#pragma once

#include <algorithm>
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
    for (std::size_t i = home(hash);; i = next(i)) {
      std::uint32_t s = slots_[i];
      if (s == kEmpty) return kNone;
      if (s != kTomb && eq(s)) return s;
    }
  }

  // Inserts idx (whose key must not be present). `hash_of(idx)` rehashes stored records.
  template <class HashOf>
  void insert(std::uint64_t hash, std::uint32_t idx, HashOf&& hash_of) {
    if ((used_ + 1) * 10 > slots_.size() * 7) grow(hash_of);
    for (std::size_t i = home(hash);; i = next(i)) {
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
    for (std::size_t i = home(hash);; i = next(i)) {
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

  // Any table size: the home slot is the high half of (mixed hash) x size. A rehash sizes
  // the table to twice the live entries (50% full, at least 16 slots), and the next one comes
  // at 70% (tombstones included): 0.5-0.7 entries per slot, 5.7-8 bytes per entry, where
  // power-of-two tables held 0.35-0.7 (up to 11.4 bytes: 1 MiB per index at 100k claims).
  std::size_t home(std::uint64_t hash) const {
    return static_cast<std::size_t>((static_cast<unsigned __int128>(mix(hash)) * slots_.size()) >>
                                    64);
  }
  std::size_t next(std::size_t i) const { return i + 1 == slots_.size() ? 0 : i + 1; }
  // The callers' hashes need not be uniform in their high bits (PrefixHash is plain FNV-1a).
  static std::uint64_t mix(std::uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
  }

  template <class HashOf>
  void grow(HashOf&& hash_of) {
    const std::size_t cap = std::max<std::size_t>(16, (size_ + 1) * 2);
    std::vector<std::uint32_t> old(cap, kEmpty);
    old.swap(slots_);
    used_ = size_;
    for (std::uint32_t s : old) {
      if (s == kEmpty || s == kTomb) continue;
      for (std::size_t i = home(hash_of(s));; i = next(i)) {
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
