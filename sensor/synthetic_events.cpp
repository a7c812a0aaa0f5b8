#include "sensor/synthetic_events.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "meshd/common/errno_text.hpp"

namespace meshd::sensor {

Result<SyntheticEventSource> SyntheticEventSource::create() {
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return fail("eventfd_failed", "synthetic event source: " + errno_text(errno));
  return SyntheticEventSource(Fd(fd));
}

void SyntheticEventSource::push(ConnectEvent event) {
  pending_.push_back(std::move(event));
  const std::uint64_t one = 1;
  // Cannot fail short of a counter overflow (2^64 - 1 pushes without a poll).
  (void)!::write(ready_.get(), &one, sizeof one);
}

std::size_t SyntheticEventSource::poll(std::vector<ConnectEvent>& out, std::size_t max,
                                       int /*timeout_ms*/) {
  std::size_t n = 0;
  for (; n < max && !pending_.empty(); ++n) {
    out.push_back(std::move(pending_.front()));
    pending_.pop_front();
  }
  if (pending_.empty()) {
    std::uint64_t count = 0;
    (void)!::read(ready_.get(), &count, sizeof count);  // EAGAIN when already clear: fine
  }
  return n;
}

}  // namespace meshd::sensor
