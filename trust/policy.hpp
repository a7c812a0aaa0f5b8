// The pure formulas of the acceptance model (trust/README.md): evidence, cost, benefit, threshold
// and TTL. Stateless; the Engine composes them. Exposed so tests, the simulator and
// `meshctl explain` use the very same arithmetic.
#pragma once

#include <cstddef>
#include <span>

#include "meshd/common/prefix.hpp"
#include "meshd/common/time.hpp"
#include "trust/params.hpp"
#include "trust/types.hpp"
#include "trust/usage.hpp"

namespace meshd::trust {

// One failure domain's support: min(s_cap, max over its origins of t*c).
double domain_support(double max_t_times_c, const Params& p);
// Noisy-OR over per-domain supports: S = 1 - prod(1 - s_d). Each s_d is clamped to [0, 1].
double noisy_or(std::span<const double> domain_supports);

// Prefix breadth used by the cost model: v4 host bits (0 for /32, 32 for /0); v6 host bits
// beyond a /64 (a /64 is one host's subnet), so 0..64.
int effective_host_bits(const Prefix& p);
// C(X) = cost_base + cost_usage * log2(1 + flows) + cost_breadth * effective_host_bits.
// (Protected prefixes are infinite cost; the Engine handles them before calling this.)
double cost(const Prefix& target, std::uint64_t flows, const Params& p);
// Benign evidence E: ev.flows when they came from >= benign_min_sources distinct local sources
// and no local detector flagged the target; else 0.
double benign_flows(const BenignEvidence& ev, const Params& p);
// Strong benign evidence: E >= benign_strong_flows over span_ms >= benign_strong_span_ms.
bool strong_benign(const BenignEvidence& ev, const Params& p);
// C(X) with benign evidence: cost(target, flows) + cost_benign * E (linear, not log).
double cost(const Prefix& target, std::uint64_t flows, double benign, const Params& p);
// The full domain quorum: floor(D * quorum_fraction) + 1 for D >= 1 known failure domains
// (more than quorum_fraction of them); 1 when D = 0.
std::size_t quorum_max(std::size_t fleet_domains, const Params& p);
// Distinct failure domains a target needs: 1 without benign evidence (E = 0: the I7 fast path
// is untouched), q_max with strong evidence, else min(q_max, 1 + ceil(E /
// quorum_flows_per_domain)).
std::size_t required_domains(double benign, bool strong, std::size_t q_max, const Params& p);
// Most benefit claims backed by `domains` failure domains may invoke:
// benefit_single_max + (benefit_critical - benefit_single_max) * min(1, (d - 1) / (q_max - 1)),
// benefit_single_max for d <= 1 (never below it), benefit_critical from q_max domains on.
double benefit_cap(std::size_t domains, std::size_t q_max, const Params& p);
double benefit(Severity s, const Params& p);
// Decision threshold C / (B + C); 1 when B <= 0 (nothing to gain: never enforce).
double threshold(double cost, double benefit);
// TTL for score S above threshold `thr`: ttl_min + (ttl_max - ttl_min) * (S - thr)/(1 - thr),
// capped at ttl_max, and at ttl_single when `single_domain`.
DurationMs ttl_for(double score, double thr, bool single_domain, const Params& p);

}  // namespace meshd::trust
