// The discrete-event engine's queue of small POD events ordered by (virtual time, insertion
// sequence). The sequence number makes ties deterministic, so a run is a pure function of the
// scenario and seed. Payloads that are not POD (messages) live in a slab owned by the caller
// and are referred to by index.
//
// A calendar queue: the near future is a ring of kBuckets buckets of kWidthUs each (unsorted
// appends); the bucket being drained is sorted once and read in order; events beyond the
// ring's horizon wait in a binary heap and move into the ring as time advances. Messages (the
// bulk: 20-25 ms ahead) cost an append and a share of one sort instead of two walks down a
// heap of 10^5-10^6 events that misses the cache; timers (a few seconds ahead, about one per
// node) wait in the heap. The pop order is exactly the (at, seq) order of a heap.
//
// The horizon is short (kBuckets x 1 ms) on purpose: a bucket keeps the capacity of the
// busiest millisecond that ever passed through it, so the ring's memory is kBuckets x the peak
// events per ms. With an 8 s ring that was ~1 GB per run at 10,000 nodes; at 256 ms it is a
// few MB, and the heap holds only the timers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace meshd::sim {

using SimTimeUs = std::int64_t;  // virtual time since simulation start, microseconds

struct Event {
  SimTimeUs at = 0;
  std::uint64_t seq = 0;
  std::uint32_t node = 0;  // node the event happens at
  std::uint32_t a = 0;     // kind-specific (e.g. message slot, claim index)
  std::uint32_t b = 0;     // kind-specific (e.g. sending node)
  std::uint8_t kind = 0;
};

class EventQueue {
 public:
  static constexpr SimTimeUs kWidthUs = 1000;       // one bucket: 1 ms of virtual time
  static constexpr std::size_t kBuckets = 1u << 8;  // horizon 256 ms

  EventQueue() : ring_(kBuckets) {}

  void reserve(std::size_t n) { far_.reserve(n / 4); }
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  std::uint64_t pushed() const { return next_seq_; }
  // Precondition: !empty().
  const Event& top() const { return cur_[pos_]; }
  // The k-th event after top() if it is already known to come next (same bucket), else null.
  // For prefetching only: a push may still insert before it.
  const Event* peek(std::size_t k) const {
    return pos_ + k < cur_.size() ? &cur_[pos_ + k] : nullptr;
  }

  // Precondition: `at` is not earlier than the last popped event's time.
  void push(SimTimeUs at, std::uint8_t kind, std::uint32_t node, std::uint32_t a = 0,
            std::uint32_t b = 0) {
    const Event e{at, next_seq_++, node, a, b, kind};
    ++size_;
    const SimTimeUs k = bucket_of(at);
    if (k <= base_) {
      // The bucket being drained: after every queued event at the same time (later seq).
      auto it = std::upper_bound(cur_.begin() + static_cast<std::ptrdiff_t>(pos_), cur_.end(), e,
                                 [](const Event& x, const Event& y) { return x.at < y.at; });
      cur_.insert(it, e);
    } else if (k < base_ + static_cast<SimTimeUs>(kBuckets)) {
      ring_[static_cast<std::size_t>(k) & (kBuckets - 1)].push_back(e);
      ++in_ring_;
    } else {
      far_push(e);
    }
    if (pos_ == cur_.size()) advance();
  }

  Event pop() {
    const Event e = cur_[pos_++];
    --size_;
    if (pos_ == cur_.size()) advance();
    return e;
  }

 private:
  static SimTimeUs bucket_of(SimTimeUs at) { return at / kWidthUs; }
  static bool less(const Event& x, const Event& y) {
    return x.at < y.at || (x.at == y.at && x.seq < y.seq);
  }

  // Makes cur_ the next non-empty bucket (if any event is left).
  void advance() {
    cur_.clear();
    pos_ = 0;
    while (size_ > 0) {
      if (in_ring_ == 0) base_ = std::max(base_, bucket_of(far_.front().at) - 1);
      ++base_;
      // The ring's horizon moved by one bucket: take what the heap holds for it.
      const SimTimeUs horizon = base_ + static_cast<SimTimeUs>(kBuckets);
      while (!far_.empty() && bucket_of(far_.front().at) < horizon) {
        const Event e = far_pop();
        ring_[static_cast<std::size_t>(bucket_of(e.at)) & (kBuckets - 1)].push_back(e);
        ++in_ring_;
      }
      auto& b = ring_[static_cast<std::size_t>(base_) & (kBuckets - 1)];
      if (b.empty()) continue;
      in_ring_ -= b.size();
      cur_.swap(b);  // b gets cur_'s (empty) storage back for reuse
      std::sort(cur_.begin(), cur_.end(), less);
      return;
    }
  }

  void far_push(const Event& e) {
    far_.push_back(e);
    std::push_heap(far_.begin(), far_.end(),
                   [](const Event& x, const Event& y) { return less(y, x); });
  }
  Event far_pop() {
    std::pop_heap(far_.begin(), far_.end(),
                  [](const Event& x, const Event& y) { return less(y, x); });
    const Event e = far_.back();
    far_.pop_back();
    return e;
  }

  std::vector<Event> cur_;  // the bucket being drained, sorted; cur_[pos_] is the top
  std::size_t pos_ = 0;
  SimTimeUs base_ = -1;  // bucket index of cur_
  std::vector<std::vector<Event>> ring_;
  std::size_t in_ring_ = 0;
  std::vector<Event> far_;  // min-heap (via the inverted comparison) beyond the horizon
  std::size_t size_ = 0;
  std::uint64_t next_seq_ = 0;
};

}  // namespace meshd::sim
