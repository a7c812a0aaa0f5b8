#include "meshd/net/rate_limiter.hpp"

#include <algorithm>

namespace meshd::net {
namespace {

// Buckets tick in ns; a burst below one would refuse every frame, so it is at least one.
TokenRate per_ns(double per_s, double burst) {
  if (per_s <= 0) return {};
  return TokenRate{.per_tick = per_s / 1e9, .burst = std::max(burst, 1.0)};
}

}  // namespace

FrameRateLimiter::FrameRateLimiter(const RateLimit& limit)
    : frame_rate_(per_ns(limit.frames_per_s, limit.frames_burst)),
      byte_rate_(per_ns(limit.bytes_per_s, limit.bytes_burst)) {}

bool FrameRateLimiter::allow(std::size_t frame_bytes, std::chrono::nanoseconds now) {
  // Check both before taking from either, so a refused frame costs nothing.
  const double size = static_cast<double>(frame_bytes);
  const auto tick = now.count();
  if (!frames_.can_take(frame_rate_, 1, tick) || !bytes_.can_take(byte_rate_, size, tick))
    return false;
  (void)frames_.try_take(frame_rate_, 1, tick);  // cannot fail: checked just above
  (void)bytes_.try_take(byte_rate_, size, tick);
  return true;
}

}  // namespace meshd::net
