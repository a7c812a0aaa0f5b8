// Internal: a flat map Prefix -> small nonzero flags byte, for the BPF enforcer's mirror of
// what it installed in the kernel maps (which map each prefix is in).
//
// Memory is the reason it exists: a node holding 100k blocks keeps 100k entries. An
// std::unordered_map node for (Prefix, uint8_t) is a 48-byte heap chunk plus an 8-byte
// bucket, ~56-60 bytes per entry, and 100k small long-lived chunks scattered through the heap
// keep freed burst buffers around them from going back to the OS. Here an entry is one
// 19-byte slot of a single array: open addressing, linear probing, backward-shift deletion,
// any table size (the home slot comes from the high bits of hash x size, not a mask), grown
// by half at 80 % load, so it holds between 0.53 and 0.8 entries per slot: 24-36 bytes per
// entry. The flags value 0 marks an empty slot, so stored flags must be nonzero.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "meshd/common/prefix.hpp"

namespace meshd::sensor {

class PrefixTable {
 public:
  // The flags of `p`, 0 if absent.
  std::uint8_t find(const Prefix& p) const {
    if (slots_.empty()) return 0;
    for (std::size_t i = home(p);; i = next(i)) {
      const Slot& s = slots_[i];
      if (s.flags == 0) return 0;
      if (s.prefix == p) return s.flags;
    }
  }
  // flags(p) |= bits (inserting p if absent). `bits` must be nonzero.
  void add(const Prefix& p, std::uint8_t bits) {
    if ((size_ + 1) * 5 > slots_.size() * 4) grow();
    for (std::size_t i = home(p);; i = next(i)) {
      Slot& s = slots_[i];
      if (s.flags == 0) {
        s.prefix = p;
        s.flags = bits;
        ++size_;
        return;
      }
      if (s.prefix == p) {
        s.flags |= bits;
        return;
      }
    }
  }
  // Removes `p`; returns its flags (0 if it was absent).
  std::uint8_t erase(const Prefix& p) {
    if (slots_.empty()) return 0;
    std::size_t i = home(p);
    for (;; i = next(i)) {
      if (slots_[i].flags == 0) return 0;
      if (slots_[i].prefix == p) break;
    }
    const std::uint8_t flags = slots_[i].flags;
    // Backward shift: a later member of the probe run moves into the hole unless its home
    // lies cyclically in (hole, j], where it would no longer be found.
    std::size_t hole = i;
    for (std::size_t j = next(i); slots_[j].flags != 0; j = next(j)) {
      const std::size_t h = home(slots_[j].prefix);
      const bool in_range = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (!in_range) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = Slot{};
    --size_;
    return flags;
  }
  // fn(prefix, flags) for every entry, in table order.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const Slot& s : slots_)
      if (s.flags != 0) fn(s.prefix, s.flags);
  }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::size_t memory_bytes() const { return slots_.capacity() * sizeof(Slot); }

 private:
  struct Slot {
    Prefix prefix;
    std::uint8_t flags = 0;
  };
  static_assert(sizeof(Slot) == 19, "PrefixTable::Slot is meant to be unpadded");

  std::size_t home(const Prefix& p) const {
    std::uint64_t h = PrefixHash{}(p);
    h ^= h >> 33;  // the FNV hash's high bits are weak: mix before taking them
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return static_cast<std::size_t>((static_cast<unsigned __int128>(h) * slots_.size()) >> 64);
  }
  std::size_t next(std::size_t i) const { return i + 1 == slots_.size() ? 0 : i + 1; }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    const std::size_t n = old.empty() ? 16 : old.size() + old.size() / 2;
    slots_.assign(n, Slot{});
    size_ = 0;
    for (const Slot& s : old)
      if (s.flags != 0) add(s.prefix, s.flags);
  }

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

}  // namespace meshd::sensor
