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

double benign_flows(const BenignEvidence& ev, const Params& p) {
  if (ev.flagged || static_cast<double>(ev.sources) < p.benign_min_sources) return 0.0;
  return static_cast<double>(ev.flows);
}

bool strong_benign(const BenignEvidence& ev, const Params& p) {
  return benign_flows(ev, p) >= p.benign_strong_flows && ev.span_ms >= p.benign_strong_span_ms;
}

double cost(const Prefix& target, std::uint64_t flows, double benign, const Params& p) {
  return cost(target, flows, p) + p.cost_benign * std::max(0.0, benign);
}

std::size_t quorum_max(std::size_t fleet_domains, const Params& p) {
  if (fleet_domains == 0) return 1;
  // The epsilon keeps D * (1/3) from landing just below an integer (6 * 0.333... = 1.999...).
  return static_cast<std::size_t>(
             std::floor(static_cast<double>(fleet_domains) * p.quorum_fraction + 1e-9)) +
         1;
}

std::size_t required_domains(double benign, bool strong, std::size_t q_max, const Params& p) {
  if (strong) return q_max;
  if (!(benign > 0)) return 1;
  double need = 1.0 + std::ceil(benign / p.quorum_flows_per_domain);
  return need >= static_cast<double>(q_max) ? q_max : static_cast<std::size_t>(need);
}

double benefit_cap(std::size_t domains, std::size_t q_max, const Params& p) {
  const double lo = p.benefit_single_max;
  const double hi = std::max(lo, p.benefit_critical);
  if (domains <= 1) return lo;
  if (q_max <= 1 || domains >= q_max) return hi;
  return lo + (hi - lo) * static_cast<double>(domains - 1) / static_cast<double>(q_max - 1);
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
