// Shared bits of the BPF benchmarks: clocks, the rule mix (the same one the nftables
// install benchmark uses, so the two backends are compared on equal input), quiet logs.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

#include <spdlog/spdlog.h>

#include "meshd/common/clock.hpp"
#include "sensor/enforcer.hpp"

namespace meshd::bench {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

struct RuleMix {
  std::size_t v4_host = 0, v4_24 = 0, v6 = 0;
};

// 60% IPv4 /32, 30% IPv4 /24, 10% IPv6 (/64 and /128 in 2001:db8::/32), random addresses.
// `v4_only`: every rule IPv4 (for the XDP benchmark, which sends IPv4 packets).
inline std::vector<sensor::BlockRule> make_rules(std::size_t n, TimeMs now, RuleMix& mix,
                                                 bool v4_only = false, std::uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::vector<sensor::BlockRule> rules;
  rules.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    sensor::BlockRule r;
    r.rule_id = i + 1;
    r.direction = Direction::both;
    r.expires_at = now + kHour + static_cast<TimeMs>(rng() % kHour);
    const auto kind = i % 10;
    if (kind < 6 || (v4_only && kind == 9)) {
      r.prefix = Prefix::v4(static_cast<std::uint32_t>(rng()), 32);
      ++mix.v4_host;
    } else if (kind < 9) {
      r.prefix = Prefix::v4(static_cast<std::uint32_t>(rng()) & 0xffffff00u, 24);
      ++mix.v4_24;
    } else {
      Prefix p;
      p.family = Family::v6;
      p.len = (i / 10) % 2 ? 64 : 128;
      p.addr = {0x20, 0x01, 0x0d, 0xb8};
      for (int b = 4; b < 16; ++b) p.addr[b] = static_cast<std::uint8_t>(rng());
      if (p.len == 64)
        for (int b = 8; b < 16; ++b) p.addr[b] = 0;
      r.prefix = p;
      ++mix.v6;
    }
    rules.push_back(r);
  }
  return rules;
}

inline void quiet_logs() {
  spdlog::set_level(spdlog::level::warn);
}

}  // namespace meshd::bench
