#include "meshd/net/backoff.hpp"

#include <algorithm>

namespace meshd::net {

std::chrono::milliseconds backoff_delay(const BackoffPolicy& policy, unsigned failures,
                                        double unit_random) {
  const unsigned exponent = std::min(failures == 0 ? 0u : failures - 1, 30u);
  const double base = static_cast<double>(policy.base.count());
  const double cap = static_cast<double>(policy.cap.count());
  const double ceiling = std::min(cap, base * static_cast<double>(1ull << exponent));
  const double r = std::clamp(unit_random, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<long long>(ceiling / 2 + r * ceiling / 2));
}

}  // namespace meshd::net
