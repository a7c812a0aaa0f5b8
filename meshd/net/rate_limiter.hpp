// The per-peer receive rate limit (frames/s and bytes/s, with burst), on meshd::TokenBucket.
//
// Pure: the caller passes a monotonic `now`; nothing here reads a clock.
#pragma once

#include <chrono>
#include <cstddef>

#include "meshd/common/token_bucket.hpp"

namespace meshd::net {

// A rate of 0 means "unlimited".
struct RateLimit {
  double frames_per_s = 0;  // sustained frames per second
  double frames_burst = 0;  // bucket size in frames (>= 1 when frames_per_s > 0)
  double bytes_per_s = 0;   // sustained bytes per second (ciphertext bytes on the wire)
  double bytes_burst = 0;   // bucket size in bytes (the transport raises it to >= max frame)
};

// Frames and bytes together: a frame passes only if both buckets have room; a frame
// refused by one bucket takes nothing from the other. Time going backwards is treated as
// no time passing.
class FrameRateLimiter {
 public:
  FrameRateLimiter() = default;  // unlimited
  explicit FrameRateLimiter(const RateLimit& limit);
  bool allow(std::size_t frame_bytes, std::chrono::nanoseconds now);

 private:
  TokenRate frame_rate_;  // per ns
  TokenRate byte_rate_;
  TokenBucket frames_;
  TokenBucket bytes_;
};

}  // namespace meshd::net
