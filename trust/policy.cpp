#include "trust/policy.hpp"

#include <algorithm>
#include <cmath>

namespace meshd::trust {

double domain_support(double max_t_times_c, const Params& p) {
  return std::clamp(max_t_times_c, 0.0, p.s_cap);
}

double noisy_or(std::span<const double> supports) {
  double miss = 1.0;
  for (double s : supports) miss *= 1.0 - std::clamp(s, 0.0, 1.0);
  return 1.0 - miss;
}

int effective_host_bits(const Prefix& p) {
  if (p.family == Family::v4) return p.host_bits();
  return std::max(0, p.host_bits() - 64);
}

double cost(const Prefix& target, std::uint64_t flows, const Params& p) {
  return p.cost_base + p.cost_usage * std::log2(1.0 + static_cast<double>(flows)) +
         p.cost_breadth * effective_host_bits(target);
}

double benefit(Severity s, const Params& p) {
  switch (s) {
    case Severity::low:
      return p.benefit_low;
    case Severity::medium:
      return p.benefit_medium;
    case Severity::high:
      return p.benefit_high;
    case Severity::critical:
      return p.benefit_critical;
    case Severity::info:  // a detector's grade only; validate() refuses it in a claim
      break;
  }
  return 0;
}

double threshold(double c, double b) {
  if (!(b > 0)) return 1.0;
  if (std::isinf(c)) return 1.0;
  return c / (b + c);
}

DurationMs ttl_for(double score, double thr, bool single_domain, const Params& p) {
  double frac = thr >= 1.0 ? 0.0 : std::clamp((score - thr) / (1.0 - thr), 0.0, 1.0);
  auto ttl =
      p.ttl_min_ms +
      static_cast<DurationMs>(std::floor(static_cast<double>(p.ttl_max_ms - p.ttl_min_ms) * frac));
  ttl = std::min(ttl, p.ttl_max_ms);
  if (single_domain) ttl = std::min(ttl, p.ttl_single_ms);
  return ttl;
}

}  // namespace meshd::trust
