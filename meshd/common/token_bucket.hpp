// A token bucket: `per_tick` tokens per tick of the caller's clock, at most `burst` tokens,
// full at its first use. Pure: the caller passes `now`, in whatever unit it ticks (the core
// uses ms, the transport ns); nothing here reads a clock. Time going backwards counts as no
// time passing.
#pragma once

#include <cstdint>
#include <limits>

namespace meshd {

// The bucket's shape. Kept apart from TokenBucket because many buckets share one shape (every
// peer, every origin), so each bucket stays two words.
struct TokenRate {
  double per_tick = 0;  // <= 0: unlimited
  double burst = 0;
};

class TokenBucket {
 public:
  // Takes `amount` tokens if there are that many at `now`.
  bool try_take(const TokenRate& rate, double amount, std::int64_t now);
  // Refills to `now` and says whether `amount` tokens are there, taking nothing.
  bool can_take(const TokenRate& rate, double amount, std::int64_t now);
  // Full again at `now` (a fresh start, e.g. a peer that reconnected).
  void fill(const TokenRate& rate, std::int64_t now);
  // The first tick after which `amount` tokens are there, if nothing is taken meanwhile.
  std::int64_t ready_at(const TokenRate& rate, double amount) const;
  double tokens() const { return tokens_; }

 private:
  static constexpr std::int64_t kUnused = std::numeric_limits<std::int64_t>::min();
  void refill(const TokenRate& rate, std::int64_t now);
  double tokens_ = 0;
  std::int64_t at_ = kUnused;  // tick of the last refill
};

}  // namespace meshd
