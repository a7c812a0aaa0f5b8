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

  // Returns up to `max` events, waiting up to `timeout_ms` (0: no wait; -1: no limit) when
  // none are pending. The wait ends at the first wakeup from the kernel, or earlier when a
  // recheck is due (next_drain_in_ms()), so events never wait longer than that recheck for
  // a blocked reader. Event times are wall-clock ms converted from the kernel's boot-time
  // stamps (both clocks read once per call).
  std::size_t poll(std::vector<ConnectEvent>& out, std::size_t max, int timeout_ms) override;
  std::uint64_t lost_events() const override;

  // Records dropped because of their size (layout mismatch), included in lost_events().
  std::uint64_t malformed_records() const;
  // The ring buffer's epoll fd: readable when the kernel wakes readers. The hooks send a
  // wakeup for the first event of a quiet period and then at most one per
  // MESHD_EVENTS_WAKEUP_INTERVAL_NS (or when 64 KiB are unread), see bpf/meshd_shared.h, so
  // events found between two wakeups are only seen by draining (EventSource's loop step 2).
  // Delaying the drain by a few ms after a wakeup batches a burst.
  int readable_fd() const override;
  // A drain that found events must be followed by another MESHD_EVENTS_RECHECK_NS (20 ms)
  // later, because the kernel sends no wakeup for events that follow a wakeup within the
  // interval. -1: none due; wait on readable_fd() with no timeout.
  int next_drain_in_ms() const override;

 private:
  struct Impl;
  explicit RingbufEventSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshd::sensor
