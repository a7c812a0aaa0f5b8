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

// Open addressing, linear probing, backward-shift deletion. The all-zero id marks an empty
// slot; a real all-zero id is tracked by a flag. Grows at 70% load, never shrinks (its
// memory is reused after clear()).
class FlatIdSet {
 public:
  bool contains(const EventId& id) const {
    if (is_zero(id)) return has_zero_;
    if (slots_.empty()) return false;
    for (std::size_t i = home(id);; i = (i + 1) & mask_) {
      const EventId& s = slots_[i];
      if (same(s, id)) return true;
      if (is_zero(s)) return false;
    }
  }
  // A probe at 70% load walks a few slots: fetch the home slot's line and the next two.
  void prefetch(const EventId& id) const {
    if (slots_.empty()) return;
    const char* p = reinterpret_cast<const char*>(&slots_[home(id)]);
    const char* end = reinterpret_cast<const char*>(slots_.data() + slots_.size());
    for (int line = 0; line < 3 && p < end; ++line, p += 64) __builtin_prefetch(p);
  }
  // Returns false if already present.
  bool insert(const EventId& id) {
    if (is_zero(id)) {
      if (has_zero_) return false;
      has_zero_ = true;
      ++size_;
      return true;
    }
    if ((size_ + 1) * 10 > slots_.size() * 7) grow();
    for (std::size_t i = home(id);; i = (i + 1) & mask_) {
      EventId& s = slots_[i];
      if (same(s, id)) return false;
      if (is_zero(s)) {
        s = id;
        ++size_;
        return true;
      }
    }
  }
  bool erase(const EventId& id) {
    if (is_zero(id)) {
      if (!has_zero_) return false;
      has_zero_ = false;
      --size_;
      return true;
    }
    if (slots_.empty()) return false;
    std::size_t i = home(id);
    for (;; i = (i + 1) & mask_) {
      if (same(slots_[i], id)) break;
      if (is_zero(slots_[i])) return false;
    }
    // Backward shift: pull later members of the probe run into the hole.
    std::size_t hole = i;
    for (std::size_t j = (i + 1) & mask_; !is_zero(slots_[j]); j = (j + 1) & mask_) {
      std::size_t h = home(slots_[j]);
      // Move j into the hole if its home is not in the cyclic range (hole, j].
      bool in_range = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (!in_range) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = EventId{};
    --size_;
    return true;
  }
  void clear() {
    std::fill(slots_.begin(), slots_.end(), EventId{});
    has_zero_ = false;
    size_ = 0;
  }
  std::size_t size() const { return size_; }
  std::size_t memory_bytes() const { return slots_.capacity() * sizeof(EventId); }

 private:
  static bool same(const EventId& a, const EventId& b) {
    std::uint64_t x[4], y[4];
    std::memcpy(x, a.data(), sizeof x);
    std::memcpy(y, b.data(), sizeof y);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
  }
  static bool is_zero(const EventId& id) {
    std::uint64_t w[4];
    std::memcpy(w, id.data(), sizeof w);
    return (w[0] | w[1] | w[2] | w[3]) == 0;
  }
  std::size_t home(const EventId& id) const { return EventIdHash{}(id)&mask_; }
  void grow() {
    std::vector<EventId> old;
    old.swap(slots_);
    std::size_t n = old.empty() ? 64 : old.size() * 2;
    slots_.assign(n, EventId{});
    mask_ = n - 1;
    bool zero = has_zero_;
    size_ = zero ? 1 : 0;
    for (const EventId& s : old) {
      if (is_zero(s)) continue;
      for (std::size_t i = home(s);; i = (i + 1) & mask_) {
        if (is_zero(slots_[i])) {
          slots_[i] = s;
          ++size_;
          break;
        }
      }
    }
  }

  std::vector<EventId> slots_;
  std::size_t mask_ = 0;
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
