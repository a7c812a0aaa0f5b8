#include "sensor/bpf_ringbuf.hpp"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "meshd/common/errno_text.hpp"
#include "sensor/bpf_loader.hpp"
#include "sensor/bpf_maps.hpp"

namespace meshd::sensor {

// The consumer side of a BPF ring buffer, mapped ONCE. libbpf's ring_buffer maps the data
// area twice in a row so that a record wrapping around the end reads as contiguous bytes;
// the kernel populates every page of such a mapping at mmap time, so that second copy cost
// the daemon a whole ring's worth of RSS (1 MB) for nothing: the rare wrapping record is
// copied in two pieces instead. Same protocol as libbpf (ringbuf_process_ring).
class RingReader {
 public:
  static Result<RingReader> open(int map_fd) {
    bpf_map_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(map_fd, &info, &len) != 0)
      return fail("ringbuf_open", "reading the ring buffer's map info: " + errno_text(errno));
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::size_t size = info.max_entries;
    if (size == 0 || (size & (size - 1)) != 0 || size % page != 0)
      return fail("ringbuf_open", "ring buffer size " + std::to_string(size) +
                                      " is not a power of two multiple of the page size");
    RingReader r;
    r.page_ = page;
    r.size_ = size;
    r.consumer_ = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
    if (r.consumer_ == MAP_FAILED) {
      r.consumer_ = nullptr;
      return fail("ringbuf_open", "mapping the ring buffer's consumer page: " + errno_text(errno));
    }
    r.producer_ =
        ::mmap(nullptr, page + size, PROT_READ, MAP_SHARED, map_fd, static_cast<off_t>(page));
    if (r.producer_ == MAP_FAILED) {
      r.producer_ = nullptr;
      return fail("ringbuf_open", "mapping the ring buffer's data: " + errno_text(errno));
    }
    r.epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (r.epoll_ < 0) return fail("ringbuf_open", "epoll_create1: " + errno_text(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    if (::epoll_ctl(r.epoll_, EPOLL_CTL_ADD, map_fd, &ev) != 0)
      return fail("ringbuf_open", "watching the ring buffer: " + errno_text(errno));
    return r;
  }

  RingReader() = default;
  RingReader(RingReader&& o) noexcept { *this = std::move(o); }
  RingReader& operator=(RingReader&& o) noexcept {
    if (this != &o) {
      close();
      page_ = o.page_;
      size_ = o.size_;
      consumer_ = std::exchange(o.consumer_, nullptr);
      producer_ = std::exchange(o.producer_, nullptr);
      epoll_ = std::exchange(o.epoll_, -1);
    }
    return *this;
  }
  ~RingReader() { close(); }

  int epoll_fd() const { return epoll_; }

  // Waits up to timeout_ms (-1: no limit) for the kernel's wakeup.
  void wait(int timeout_ms) const {
    epoll_event ev{};
    (void)::epoll_wait(epoll_, &ev, 1, timeout_ms);
  }

  // Hands every committed record to fn(const void* data, std::size_t len) and releases it.
  template <class Fn>
  void consume(Fn&& fn) {
    auto* cons_ptr = static_cast<std::uint64_t*>(consumer_);
    auto* prod_ptr = static_cast<const std::uint64_t*>(producer_);
    const auto* data = static_cast<const std::uint8_t*>(producer_) + page_;
    const std::size_t mask = size_ - 1;
    std::uint64_t cons = __atomic_load_n(cons_ptr, __ATOMIC_ACQUIRE);
    bool got = true;
    while (got) {
      got = false;
      const std::uint64_t prod = __atomic_load_n(prod_ptr, __ATOMIC_ACQUIRE);
      while (cons < prod) {
        const auto* hdr = reinterpret_cast<const std::uint32_t*>(data + (cons & mask));
        const std::uint32_t len = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);
        if (len & BPF_RINGBUF_BUSY_BIT) return;  // not committed yet
        got = true;
        const std::uint32_t n = len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
        const std::uint64_t start = cons + BPF_RINGBUF_HDR_SZ;
        cons += (std::uint64_t{n} + BPF_RINGBUF_HDR_SZ + 7) / 8 * 8;
        if ((len & BPF_RINGBUF_DISCARD_BIT) == 0) {
          const std::size_t off = start & mask;
          if (off + n <= size_) {
            fn(data + off, std::size_t{n});
          } else {  // wraps around the end: two pieces
            scratch_.resize(n);
            const std::size_t first = size_ - off;
            std::memcpy(scratch_.data(), data + off, first);
            std::memcpy(scratch_.data() + first, data, n - first);
            fn(scratch_.data(), std::size_t{n});
          }
        }
        __atomic_store_n(cons_ptr, cons, __ATOMIC_RELEASE);
      }
    }
  }

 private:
  void close() {
    if (producer_ != nullptr) ::munmap(producer_, page_ + size_);
    if (consumer_ != nullptr) ::munmap(consumer_, page_);
    if (epoll_ >= 0) ::close(epoll_);
    producer_ = consumer_ = nullptr;
    epoll_ = -1;
  }
  std::size_t page_ = 0;
  std::size_t size_ = 0;
  void* consumer_ = nullptr;
  void* producer_ = nullptr;
  int epoll_ = -1;
  std::vector<std::uint8_t> scratch_;
};

struct RingbufEventSource::Impl {
  Fd events;
  Fd counters;
  RingReader ring;
  // Raw records drained from the ring but not yet returned (poll drains all available
  // records at once; at most `max` + one ring's worth are held here).
  std::deque<meshd_connect_event> pending;
  std::uint64_t malformed = 0;
  // CLOCK_MONOTONIC ns at which the next drain is due without a wakeup; 0: none due.
  std::int64_t recheck_at = 0;

  // Moves every available record into `pending` and keeps recheck_at up to date.
  void drain() {
    const std::size_t before = pending.size();
    consume();
    settle(pending.size() > before);
  }
  void consume() {
    ring.consume([this](const void* data, std::size_t size) { on_record(data, size); });
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

  void on_record(const void* data, std::size_t size) {
    if (size != sizeof(meshd_connect_event)) {
      ++malformed;
      return;
    }
    meshd_connect_event e;
    std::memcpy(&e, data, sizeof e);
    pending.push_back(e);
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
  auto ring = RingReader::open(impl->events.get());
  if (!ring) {
    return fail("ringbuf_open", "opening the meshd_events ring buffer: " + ring.error().message);
  }
  impl->ring = std::move(*ring);
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
      impl_->ring.wait(wait);
      impl_->consume();
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
  return impl_->ring.epoll_fd();
}

}  // namespace meshd::sensor
