// Internal: allocation-free (in steady state) sets of 32-byte event ids.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "meshd/common/time.hpp"
#include "meshd/core/messages.hpp"

namespace meshd::core::detail {

// Open addressing, linear probing, backward-shift deletion. Only the first 16 bytes of an id
// are kept: ids are uniformly distributed hashes (BLAKE2b-256 in production), so 128 bits
// keep accidental collisions out of reach (2^-64 at 2^32 ids) at half the memory. The
// all-zero key marks an empty slot; an id whose key is zero is tracked by a flag. Any table
// size: the home slot is the high half of (first 8 id bytes) x size, so the table grows by
// half at 75% load (between 0.5 and 0.75 ids per slot, ~26 bytes per id) instead of doubling
// at 70% (0.35-0.7, ~35 bytes per id: 4 MiB for a generation of 100k ids). Never shrinks (its
// memory is reused after clear()).
class FlatIdSet {
 public:
  bool contains(const EventId& id) const { return contains(key_of(id)); }
  // A probe at 70% load walks a few slots: fetch the home slot's line and the next one.
  void prefetch(const EventId& id) const {
    if (slots_.empty()) return;
    const char* p = reinterpret_cast<const char*>(&slots_[home(key_of(id))]);
    const char* end = reinterpret_cast<const char*>(slots_.data() + slots_.size());
    for (int line = 0; line < 2 && p < end; ++line, p += 64) __builtin_prefetch(p);
  }
  // Returns false if already present.
  bool insert(const EventId& id) {
    const Key k = key_of(id);
    if (is_zero(k)) {
      if (has_zero_) return false;
      has_zero_ = true;
      ++size_;
      return true;
    }
    if ((size_ + 1) * 4 > slots_.size() * 3) grow();
    for (std::size_t i = home(k);; i = next(i)) {
      Key& s = slots_[i];
      if (s == k) return false;
      if (is_zero(s)) {
        s = k;
        ++size_;
        return true;
      }
    }
  }
  bool erase(const EventId& id) {
    const Key k = key_of(id);
    if (is_zero(k)) {
      if (!has_zero_) return false;
      has_zero_ = false;
      --size_;
      return true;
    }
    if (slots_.empty()) return false;
    std::size_t i = home(k);
    for (;; i = next(i)) {
      if (slots_[i] == k) break;
      if (is_zero(slots_[i])) return false;
    }
    // Backward shift: pull later members of the probe run into the hole.
    std::size_t hole = i;
    for (std::size_t j = next(i); !is_zero(slots_[j]); j = next(j)) {
      std::size_t h = home(slots_[j]);
      // Move j into the hole if its home is not in the cyclic range (hole, j].
      bool in_range = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (!in_range) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = Key{};
    --size_;
    return true;
  }
  void clear() {
    std::fill(slots_.begin(), slots_.end(), Key{});
    has_zero_ = false;
    size_ = 0;
  }
  std::size_t size() const { return size_; }
  std::size_t memory_bytes() const { return slots_.capacity() * sizeof(Key); }

 private:
  struct Key {
    std::uint64_t lo = 0, hi = 0;  // bytes 0-7 and 8-15 of the id
    bool operator==(const Key&) const = default;
  };
  static Key key_of(const EventId& id) {
    Key k;
    std::memcpy(&k.lo, id.data(), sizeof k.lo);
    std::memcpy(&k.hi, id.data() + sizeof k.lo, sizeof k.hi);
    return k;
  }
  static bool is_zero(const Key& k) { return (k.lo | k.hi) == 0; }
  // From the id's first 8 bytes (uniform: ids are hashes), scaled to the table size.
  std::size_t home(const Key& k) const {
    return static_cast<std::size_t>((static_cast<unsigned __int128>(k.lo) * slots_.size()) >> 64);
  }
  std::size_t next(std::size_t i) const { return i + 1 == slots_.size() ? 0 : i + 1; }
  bool contains(const Key& k) const {
    if (is_zero(k)) return has_zero_;
    if (slots_.empty()) return false;
    for (std::size_t i = home(k);; i = next(i)) {
      const Key& s = slots_[i];
      if (s == k) return true;
      if (is_zero(s)) return false;
    }
  }
  void grow() {
    std::vector<Key> old;
    old.swap(slots_);
    const std::size_t n = old.empty() ? 64 : old.size() + old.size() / 2;
    slots_.assign(n, Key{});
    bool zero = has_zero_;
    size_ = zero ? 1 : 0;
    for (const Key& s : old) {
      if (is_zero(s)) continue;
      for (std::size_t i = home(s);; i = next(i)) {
        if (is_zero(slots_[i])) {
          slots_[i] = s;
          ++size_;
          break;
        }
      }
    }
  }

  std::vector<Key> slots_;
  std::size_t size_ = 0;
  bool has_zero_ = false;
};

// Bounded, time-evicted seen-set: two generations. Inserts go to the current one; every
// ttl/2 (or when the current one holds capacity/2 ids) the previous generation is dropped
// and the current one becomes the previous. An id is thus remembered for at least
// min(ttl/2, the time it takes to see capacity/2 new ids) and at most ttl.
class SeenSet {
 public:
  SeenSet(std::size_t capacity, DurationMs ttl) : half_cap_(capacity / 2), half_ttl_(ttl / 2) {}

  bool contains(const EventId& id) const { return cur_.contains(id) || prev_.contains(id); }
  void prefetch(const EventId& id) const {
    cur_.prefetch(id);
    prev_.prefetch(id);
  }
  // Returns false if already present.
  bool insert(const EventId& id, TimeMs now) {
    if (contains(id)) return false;
    if (rotate_at_ == kNever) rotate_at_ = now + half_ttl_;
    if (cur_.size() >= half_cap_) rotate();
    cur_.insert(id);
    return true;
  }
  bool erase(const EventId& id) { return cur_.erase(id) || prev_.erase(id); }
  // Time-based rotation; call from tick.
  void expire(TimeMs now) {
    if (rotate_at_ == kNever || now < rotate_at_) return;
    rotate();
    if (now >= rotate_at_ + half_ttl_) rotate();  // two half-periods passed: all is old
    rotate_at_ = size() == 0 ? kNever : now + half_ttl_;
  }
  TimeMs next_rotation() const { return rotate_at_; }
  std::size_t size() const { return cur_.size() + prev_.size(); }

  static constexpr TimeMs kNever = INT64_MAX;

 private:
  void rotate() {
    std::swap(prev_, cur_);
    cur_.clear();
  }
  std::size_t half_cap_;
  DurationMs half_ttl_;
  FlatIdSet cur_, prev_;
  TimeMs rotate_at_ = kNever;
};

}  // namespace meshd::core::detail
