// An EventSource fed by the caller instead of the kernel, so that the sensor -> detector ->
// claim path runs in unit tests without BPF, root or a cgroup (like Falco's test_input
// engine). It behaves like the ring buffer for an event loop: readable_fd() is readable
// exactly while pushed events are waiting.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "meshd/common/fd.hpp"
#include "meshd/common/result.hpp"
#include "sensor/events.hpp"

namespace meshd::sensor {

class SyntheticEventSource final : public EventSource {
 public:
  // Fails only when no eventfd can be created (fd limit).
  static Result<SyntheticEventSource> create();

  // Queues `event` for the next poll().
  void push(ConnectEvent event);
  // Counts `n` events as lost, as a full ring buffer would.
  void lose(std::uint64_t n) { lost_ += n; }

  // Never waits: a synthetic source has nothing to wait for, so `timeout_ms` is ignored.
  std::size_t poll(std::vector<ConnectEvent>& out, std::size_t max, int timeout_ms) override;
  std::uint64_t lost_events() const override { return lost_; }
  int readable_fd() const override { return ready_.get(); }
  int next_drain_in_ms() const override { return -1; }

 private:
  explicit SyntheticEventSource(Fd ready) : ready_(std::move(ready)) {}
  Fd ready_;  // eventfd, non-zero while `pending_` is not empty
  std::deque<ConnectEvent> pending_;
  std::uint64_t lost_ = 0;
};

}  // namespace meshd::sensor
