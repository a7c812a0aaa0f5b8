// Token buckets for the per-peer receive rate limit (frames/s and bytes/s, with burst).
//
// Pure: the caller passes a monotonic `now`; nothing here reads a clock.
#pragma once

#include <chrono>
#include <cstdint>

namespace meshd::net {

// A rate of 0 means "unlimited".
struct RateLimit {
  double frames_per_s = 0;  // sustained frames per second
  double frames_burst = 0;  // bucket size in frames (>= 1 when frames_per_s > 0)
  double bytes_per_s = 0;   // sustained bytes per second (ciphertext bytes on the wire)
  double bytes_burst = 0;   // bucket size in bytes (the transport raises it to >= max frame)
};

// One bucket: `rate` tokens per second, at most `burst` tokens, starts full.
class TokenBucket {
 public:
  TokenBucket() = default;  // unlimited
  TokenBucket(double rate_per_s, double burst);

  // Takes `amount` tokens if available at `now` (monotonic time since any fixed epoch).
  // Unlimited buckets always succeed. Time going backwards is treated as no time passing.
  bool try_take(double amount, std::chrono::nanoseconds now);
  // Refills to `now` and says whether `amount` tokens are available, taking nothing.
  bool can_take(double amount, std::chrono::nanoseconds now);
  bool unlimited() const { return rate_ <= 0; }
  double tokens() const { return tokens_; }

 private:
  void refill(std::chrono::nanoseconds now);
  double rate_ = 0;
  double burst_ = 0;
  double tokens_ = 0;
  std::chrono::nanoseconds last_{0};
  bool started_ = false;
};

// Frames and bytes together: a frame passes only if both buckets have room; a frame
// refused by one bucket takes nothing from the other.
class FrameRateLimiter {
 public:
  FrameRateLimiter() = default;
  explicit FrameRateLimiter(const RateLimit& limit);
  bool allow(std::size_t frame_bytes, std::chrono::nanoseconds now);

 private:
  TokenBucket frames_;
  TokenBucket bytes_;
};

}  // namespace meshd::net
