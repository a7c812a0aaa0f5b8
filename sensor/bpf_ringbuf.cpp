#include "sensor/bpf_ringbuf.hpp"

#include <bpf/libbpf.h>

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <limits>

#include "meshd/common/errno_text.hpp"
#include "sensor/bpf_loader.hpp"
#include "sensor/bpf_maps.hpp"

namespace meshd::sensor {

struct RingbufEventSource::Impl {
  Fd events;
  Fd counters;
  ring_buffer* rb = nullptr;
  // Raw records drained from the ring but not yet returned (poll drains all available
  // records at once; at most `max` + one ring's worth are held here).
  std::deque<meshd_connect_event> pending;
  std::uint64_t malformed = 0;
  // CLOCK_MONOTONIC ns at which the next drain is due without a wakeup; 0: none due.
  std::int64_t recheck_at = 0;

  // Moves every available record into `pending` and keeps recheck_at up to date.
  void drain() {
    const std::size_t before = pending.size();
    ring_buffer__consume(rb);
    settle(pending.size() > before);
  }
  void settle(bool found) {
    const std::int64_t now = monotonic_ns();
    if (found)
      recheck_at = now + static_cast<std::int64_t>(MESHD_EVENTS_RECHECK_NS);
    else if (recheck_at != 0 && now >= recheck_at)
      recheck_at = 0;
  }
  // The longest wait allowed for a caller's timeout (-1: unlimited).
  int wait_ms(int timeout_ms) const {
    if (recheck_at == 0) return timeout_ms;
    const std::int64_t left = recheck_at - monotonic_ns();
    const int due = left <= 0 ? 0 : static_cast<int>((left + 999'999) / 1'000'000);
    return timeout_ms < 0 ? due : std::min(timeout_ms, due);
  }
  static std::int64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  }

  ~Impl() {
    if (rb != nullptr) ring_buffer__free(rb);
  }

  static int on_record(void* ctx, void* data, size_t size) {
    auto* self = static_cast<Impl*>(ctx);
    if (size != sizeof(meshd_connect_event)) {
      ++self->malformed;
      return 0;
    }
    meshd_connect_event e;
    std::memcpy(&e, data, sizeof e);
    self->pending.push_back(e);
    return 0;
  }
};

namespace {

ConnectEvent convert(const meshd_connect_event& e, std::int64_t boot_now, std::int64_t real_now) {
  ConnectEvent out;
  const auto age_ns = boot_now - static_cast<std::int64_t>(e.ts_boot_ns);
  out.at = (real_now - age_ns) / 1'000'000;
  out.cgroup_id = e.cgroup_id;
  out.pid = e.pid;
  out.tgid = e.tgid;
  out.uid = e.uid;
  out.comm.assign(e.comm, strnlen(e.comm, sizeof e.comm));
  Prefix dst;
  if (e.family == 4) {
    dst.family = Family::v4;
    dst.len = 32;
    std::memcpy(dst.addr.data(), e.addr, 4);
  } else {
    dst.family = Family::v6;
    dst.len = 128;
    std::memcpy(dst.addr.data(), e.addr, 16);
  }
  out.destination = dst;
  out.port = e.port;
  out.protocol = e.protocol == 6    ? Protocol::tcp
                 : e.protocol == 17 ? Protocol::udp
                                    : Protocol::other;
  out.verdict = e.verdict == MESHD_VERDICT_DENIED ? Verdict::denied : Verdict::allowed;
  return out;
}

}  // namespace

RingbufEventSource::RingbufEventSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RingbufEventSource::RingbufEventSource(RingbufEventSource&&) noexcept = default;
RingbufEventSource& RingbufEventSource::operator=(RingbufEventSource&&) noexcept = default;
RingbufEventSource::~RingbufEventSource() = default;

Result<RingbufEventSource> RingbufEventSource::create(const BpfLoader& loader) {
  auto impl = std::make_unique<Impl>();
  auto events = Fd::dup_of(loader.events_fd());
  if (!events) return std::unexpected(events.error());
  auto counters = Fd::dup_of(loader.counters_fd());
  if (!counters) return std::unexpected(counters.error());
  impl->events = std::move(*events);
  impl->counters = std::move(*counters);
  impl->rb = ring_buffer__new(impl->events.get(), &Impl::on_record, impl.get(), nullptr);
  if (impl->rb == nullptr) {
    return fail("ringbuf_open",
                std::string("opening the meshd_events ring buffer: ") + errno_text(errno));
  }
  return RingbufEventSource(std::move(impl));
}

std::size_t RingbufEventSource::poll(std::vector<ConnectEvent>& out, std::size_t max,
                                     int timeout_ms) {
  if (max == 0) return 0;
  if (impl_->pending.size() < max) {
    // Drain what is there without waiting; wait only if nothing at all is pending: until a
    // wakeup, a due recheck, or the caller's timeout.
    impl_->drain();
    constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
    const std::int64_t deadline =
        timeout_ms < 0 ? kNever : Impl::monotonic_ns() + std::int64_t{timeout_ms} * 1'000'000;
    while (impl_->pending.empty() && timeout_ms != 0) {
      const std::int64_t now = Impl::monotonic_ns();
      if (now >= deadline) break;
      if (impl_->recheck_at != 0 && now >= impl_->recheck_at) {
        impl_->drain();  // clears recheck_at, or sets the next one if it found events
        continue;
      }
      std::int64_t until = deadline;
      if (impl_->recheck_at != 0) until = std::min(until, impl_->recheck_at);
      const int wait = until == kNever ? -1 : static_cast<int>((until - now + 999'999) / 1'000'000);
      const std::size_t before = impl_->pending.size();
      ring_buffer__poll(impl_->rb, wait);  // consumes what a wakeup announced
      ring_buffer__consume(impl_->rb);
      impl_->settle(impl_->pending.size() > before);
    }
  }
  const std::int64_t boot_now = boot_time_ns();
  const std::int64_t real_now = realtime_ns();
  std::size_t n = 0;
  while (n < max && !impl_->pending.empty()) {
    out.push_back(convert(impl_->pending.front(), boot_now, real_now));
    impl_->pending.pop_front();
    ++n;
  }
  return n;
}

std::uint64_t RingbufEventSource::lost_events() const {
  std::uint64_t lost = impl_->malformed;
  if (auto hooks = read_hook_counters(impl_->counters.get())) {
    for (const auto& h : *hooks) lost += h.events_lost;
  }
  return lost;
}

std::uint64_t RingbufEventSource::malformed_records() const {
  return impl_->malformed;
}

int RingbufEventSource::next_drain_in_ms() const {
  return impl_->recheck_at == 0 ? -1 : std::max(impl_->wait_ms(-1), 0);
}

int RingbufEventSource::readable_fd() const {
  return ring_buffer__epoll_fd(impl_->rb);
}

}  // namespace meshd::sensor
