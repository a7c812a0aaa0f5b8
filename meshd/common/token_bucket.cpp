#include "meshd/common/token_bucket.hpp"

#include <algorithm>

namespace meshd {

void TokenBucket::refill(const TokenRate& rate, std::int64_t now) {
  if (at_ == kUnused) {
    fill(rate, now);
  } else if (now > at_) {
    tokens_ = std::min(rate.burst, tokens_ + static_cast<double>(now - at_) * rate.per_tick);
    at_ = now;
  }
}

void TokenBucket::fill(const TokenRate& rate, std::int64_t now) {
  tokens_ = rate.burst;
  at_ = now;
}

bool TokenBucket::can_take(const TokenRate& rate, double amount, std::int64_t now) {
  if (rate.per_tick <= 0) return true;
  refill(rate, now);
  return tokens_ >= amount;
}

bool TokenBucket::try_take(const TokenRate& rate, double amount, std::int64_t now) {
  if (!can_take(rate, amount, now)) return false;
  if (rate.per_tick > 0) tokens_ -= amount;
  return true;
}

std::int64_t TokenBucket::ready_at(const TokenRate& rate, double amount) const {
  const double missing = std::max(0.0, amount - tokens_);
  return at_ + static_cast<std::int64_t>(missing / rate.per_tick) + 1;
}

}  // namespace meshd
