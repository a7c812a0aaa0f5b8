// EventSource reading the connect events that the cgroup hooks of bpf/meshd.bpf.c write to
// the meshd_events ring buffer, converted to ConnectEvent.
//
// Lost events are counted in two places and reported together by lost_events():
//   - in the kernel, when the ring buffer is full (bpf_ringbuf_reserve failed; per-CPU
//     counter events_lost of each hook); the verdict is still enforced;
//   - here, for records with an unexpected size (a kernel/user layout mismatch).
//
// Not thread-safe. Move-only; the source keeps its own references to the ring buffer and
// counter maps, so it stays valid when the BpfLoader is destroyed (it then stops seeing
// new events, since the programs are detached).
#pragma once

#include <memory>

#include "meshd/common/result.hpp"
#include "sensor/events.hpp"

namespace meshd::sensor {

class BpfLoader;

class RingbufEventSource final : public EventSource {
 public:
  static Result<RingbufEventSource> create(const BpfLoader& loader);

  RingbufEventSource(RingbufEventSource&&) noexcept;
  RingbufEventSource& operator=(RingbufEventSource&&) noexcept;
  ~RingbufEventSource() override;

  // Returns up to `max` events, waiting up to `timeout_ms` (0: no wait) when none are
  // pending. The kernel wakes readers only when MESHD_EVENTS_WAKEUP_BYTES are unread, so
  // a quiet node's events surface when the timeout expires: call with a timeout (e.g.
  // 100 ms), never -1, or events may wait until the buffer fills. Event times are wall-clock ms
  // converted from the kernel's boot-time stamps (both clocks read once per call).
  std::size_t poll(std::vector<ConnectEvent>& out, std::size_t max, int timeout_ms) override;
  std::uint64_t lost_events() const override;

  // Records dropped because of their size (layout mismatch), included in lost_events().
  std::uint64_t malformed_records() const;
  // An fd that becomes readable when events are available (for an event loop).
  int epoll_fd() const;

 private:
  struct Impl;
  explicit RingbufEventSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshd::sensor
