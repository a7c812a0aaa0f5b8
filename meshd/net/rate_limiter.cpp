#include "meshd/net/rate_limiter.hpp"

#include <algorithm>

namespace meshd::net {

TokenBucket::TokenBucket(double rate_per_s, double burst)
    : rate_(rate_per_s), burst_(std::max(burst, 1.0)), tokens_(burst_) {}

void TokenBucket::refill(std::chrono::nanoseconds now) {
  if (!started_) {
    started_ = true;
    last_ = now;
    return;
  }
  if (now <= last_) return;
  const double elapsed_s = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + elapsed_s * rate_);
  last_ = now;
}

bool TokenBucket::can_take(double amount, std::chrono::nanoseconds now) {
  if (unlimited()) return true;
  refill(now);
  return tokens_ >= amount;
}

bool TokenBucket::try_take(double amount, std::chrono::nanoseconds now) {
  if (!can_take(amount, now)) return false;
  if (!unlimited()) tokens_ -= amount;
  return true;
}

FrameRateLimiter::FrameRateLimiter(const RateLimit& limit) {
  if (limit.frames_per_s > 0) frames_ = TokenBucket(limit.frames_per_s, limit.frames_burst);
  if (limit.bytes_per_s > 0) bytes_ = TokenBucket(limit.bytes_per_s, limit.bytes_burst);
}

bool FrameRateLimiter::allow(std::size_t frame_bytes, std::chrono::nanoseconds now) {
  // Check both before taking from either, so a refused frame costs nothing.
  const double size = static_cast<double>(frame_bytes);
  if (!frames_.can_take(1, now) || !bytes_.can_take(size, now)) return false;
  frames_.try_take(1, now);
  bytes_.try_take(size, now);
  return true;
}

}  // namespace meshd::net
