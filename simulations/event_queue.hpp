// The discrete-event engine's queue: a binary min-heap of small POD events ordered by
// (virtual time, insertion sequence). The sequence number makes ties deterministic, so a
// run is a pure function of the scenario and seed. Payloads that are not POD (messages)
// live in a slab owned by the caller and are referred to by index.
#pragma once

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
  void reserve(std::size_t n) { heap_.reserve(n); }
  bool empty() const { return heap_.empty(); }
  std::size_t size() const { return heap_.size(); }
  std::uint64_t pushed() const { return next_seq_; }
  const Event& top() const { return heap_.front(); }

  void push(SimTimeUs at, std::uint8_t kind, std::uint32_t node, std::uint32_t a = 0,
            std::uint32_t b = 0) {
    heap_.push_back(Event{at, next_seq_++, node, a, b, kind});
    sift_up(heap_.size() - 1);
  }

  Event pop() {
    Event top = heap_.front();
    heap_.front() = heap_.back();
    heap_.pop_back();
    if (!heap_.empty()) sift_down(0);
    return top;
  }

 private:
  static bool less(const Event& x, const Event& y) {
    return x.at < y.at || (x.at == y.at && x.seq < y.seq);
  }
  void sift_up(std::size_t i) {
    Event e = heap_[i];
    while (i > 0) {
      std::size_t parent = (i - 1) / 2;
      if (!less(e, heap_[parent])) break;
      heap_[i] = heap_[parent];
      i = parent;
    }
    heap_[i] = e;
  }
  void sift_down(std::size_t i) {
    const std::size_t n = heap_.size();
    Event e = heap_[i];
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && less(heap_[child + 1], heap_[child])) ++child;
      if (!less(heap_[child], e)) break;
      heap_[i] = heap_[child];
      i = child;
    }
    heap_[i] = e;
  }

  std::vector<Event> heap_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace meshd::sim
