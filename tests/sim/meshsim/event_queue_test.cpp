// The calendar queue pops exactly in (time, insertion) order, like a binary heap of
// (at, seq), wherever an event was pushed: the bucket being drained, the ring (the next
// kBuckets ms) or the heap beyond the ring's horizon.
#include "simulations/event_queue.hpp"

#include <gtest/gtest.h>

#include <queue>
#include <random>
#include <tuple>
#include <vector>

namespace {

using meshd::sim::Event;
using meshd::sim::EventQueue;
using meshd::sim::SimTimeUs;

struct Later {
  bool operator()(const Event& x, const Event& y) const {
    return std::tie(x.at, x.seq) > std::tie(y.at, y.seq);
  }
};

TEST(EventQueue, PopsInTimeThenInsertionOrderAcrossBucketRingAndHeap) {
  std::mt19937_64 rng(7);
  EventQueue q;
  std::priority_queue<Event, std::vector<Event>, Later> ref;
  std::uint64_t seq = 0;
  SimTimeUs now = 0;
  const SimTimeUs horizon = SimTimeUs(EventQueue::kBuckets) * EventQueue::kWidthUs;
  auto push = [&](SimTimeUs at, std::uint32_t id) {
    q.push(at, 1, id);
    ref.push(Event{at, seq++, id, 0, 0, 1});
  };
  // Delays: same time as now (the bucket being drained), within 1 ms, message-like (20-25 ms),
  // at the ring's edge, timer-like (seconds: the heap), and exact ties.
  auto delay = [&]() -> SimTimeUs {
    switch (rng() % 7) {
      case 0:
        return 0;
      case 1:
        return SimTimeUs(rng() % 1000);
      case 2:
        return 20'000 + SimTimeUs(rng() % 5000);
      case 3:
        return horizon - 1 + SimTimeUs(rng() % 3);
      case 4:
        return 2'000'000 + SimTimeUs(rng() % 1'000'000);
      case 5:
        return 30'000'000;
      default:
        return 1000 * SimTimeUs(rng() % 4);
    }
  };
  std::uint32_t id = 0;
  for (int i = 0; i < 2000; ++i) push(delay(), id++);
  std::size_t popped = 0;
  while (!q.empty()) {
    ASSERT_FALSE(ref.empty());
    const Event e = q.pop();
    const Event r = ref.top();
    ref.pop();
    ASSERT_EQ(e.at, r.at) << "event " << popped;
    ASSERT_EQ(e.node, r.node) << "event " << popped << " at " << e.at;
    ASSERT_GE(e.at, now);
    now = e.at;
    ++popped;
    // As the simulator does: handling an event schedules more, from `now` on.
    if (id < 60000) {
      const int more = int(rng() % 3);
      for (int k = 0; k < more; ++k) push(now + delay(), id++);
    }
  }
  EXPECT_TRUE(ref.empty());
  EXPECT_EQ(popped, id);
  EXPECT_GT(popped, 50000u);
}

}  // namespace
