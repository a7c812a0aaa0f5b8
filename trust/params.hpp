// Every tunable of the acceptance policy, in one struct with documented defaults.
// The daemon maps YAML `policy.<name>` keys onto it and `meshd --print-default-config` prints
// it, both through param_table() so the list of names exists exactly once (here).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "meshd/common/result.hpp"
#include "meshd/common/time.hpp"

namespace meshd::trust {

// Which acceptance policy an Engine runs. All three share the Engine API so the simulator can
// compare them on identical inputs.
//  - trust:  the real policy (trust/README.md, invariants I1-I8).
//  - naive:  the Inner-Warden-like baseline: enforce every valid claim on receipt, TTL = the
//            requested TTL capped at ttl_max. It deliberately does NOT special-case protected
//            prefixes, has no budgets, no trust and no misbehaviour detection (apply_proof is a
//            no-op), so the simulator can measure the harm (incl. harm.protected) such a
//            policy does. Retractions, operator decisions and expiry still apply.
//  - quorum: enforce a target once `quorum_k` distinct origins have active claims on it; the
//            block lasts while K claims remain (each claim capped at ttl_max). Otherwise the
//            same as naive (no protected list, no trust, no misbehaviour detection).
enum class PolicyMode : std::uint8_t { trust, naive, quorum };

struct Params {
  // --- policy selection ---
  PolicyMode mode = PolicyMode::trust;  // "trust" | "naive" | "quorum:K"; default trust
  std::uint32_t quorum_k = 2;           // K of quorum:K; distinct origins needed (>= 1)

  // --- trust ledger ---
  double t_cap = 0.9;         // max trust of any remote origin, < 1: nobody is infallible
  double prior = 0.5;         // trust of a new certified origin, in [0, t_cap]
  double prior_weight = 4.0;  // pseudo-observations behind the prior: higher = slower change
  double gain = 1.0;          // evidence weight added by one corroboration
  double loss_ratio = 3.0;    // a contradiction weighs loss_ratio x gain: trust drops faster
  DurationMs half_life_ms = 24 * kHour;   // evidence decays towards the prior with this half-life
  DurationMs quarantine_ms = 24 * kHour;  // trust pinned to 0 this long after a misbehaviour proof
  double post_quarantine_neg = 20.0;      // negative evidence an origin leaves quarantine with
  double weight_local = 1.0;              // gain weight of a local sensor corroboration (strong)
  double weight_domain = 0.25;  // gain weight of corroboration by another failure domain, scaled
                                // by the corroborating domain's best trust / t_cap
  double weight_false_positive = 2.0;           // loss weight of an operator false-positive unblock
  double weight_contradiction = 1.0;            // loss weight of strong local benign evidence
  DurationMs feedback_flush_ms = 30 * kSecond;  // trust gains are batched and applied this
                                                // often (losses apply at once: I6)
  DurationMs retime_min_ms = 30 * kSecond;      // block extensions smaller than this wait for the
                                                // current expiry (fewer kernel updates)
  DurationMs trust_refresh_ms = 10 * kMinute;   // decay of idle origins is applied this often

  // --- evidence ---
  double s_cap = 0.6;  // max support one failure domain can give (I2); < decision thresholds
                       // of costly targets so they need two domains

  // --- cost and benefit ---
  double cost_base = 1.0;         // C of blocking an unused /32: the floor of every cost
  double cost_usage = 1.5;        // C += cost_usage * log2(1 + local flows to the target)
  double cost_breadth = 0.35;     // C += cost_breadth * effective host bits (v4 host bits,
                                  // v6 host bits beyond /64): broad prefixes cost more
  double benefit_low = 1.0;       // B of a true block, severity low
  double benefit_medium = 2.0;    // B, severity medium
  double benefit_high = 4.0;      // B, severity high
  double benefit_critical = 8.0;  // B, severity critical
  // Cap of B when the support rests on ONE failure domain. Severity is the claimant's own
  // word: one domain alone can justify at most a block of cost
  // benefit_single_max * s_cap / (1 - s_cap), whatever severity it asserts; corroboration by a
  // second domain unlocks the full B.
  double benefit_single_max = 4.0;

  // --- collusion resistance: local benign evidence, domain quorum (trust/README.md) ---
  // Benign evidence E = the flows to the target in the usage window when they came from at
  // least benign_min_sources distinct local processes/pods and no local detector flagged the
  // target (else E = 0). It raises the cost linearly (the usage log term above stays):
  double cost_benign = 0.25;      // C += cost_benign * E: what the node sees working costs a lot
  double benign_min_sources = 2;  // flows count as benign evidence only from this many distinct
                                  // local processes/pods (one beaconing process is no evidence)
  // Strong benign evidence: E >= benign_strong_flows over a span of >= benign_strong_span_ms.
  // A claim on such a target demands the full domain quorum and costs its origin trust
  // (weight_contradiction, the ledger's contradiction path) once per claim.
  double benign_strong_flows = 8;
  DurationMs benign_strong_span_ms = kMinute;
  // Domain quorum: a target with benign evidence needs corroboration by
  //   q(E) = 1 (E = 0), min(q_max, 1 + ceil(E / quorum_flows_per_domain)) (E > 0), q_max (strong)
  // distinct failure domains, q_max = floor(D * quorum_fraction) + 1, D = max(fleet_domains,
  // domains of the origins this node knows). Claims from fewer than q_max domains can then never
  // block a destination with strong benign evidence, whatever their trust, confidence and
  // severity. The benefit claims may invoke grows with the domains d backing them:
  //   B <= benefit_single_max + (benefit_critical - benefit_single_max) * (d - 1) / (q_max - 1).
  double quorum_fraction = 1.0 / 3.0;  // q_max is more than this share of the fleet's domains
  double quorum_flows_per_domain = 1;  // each this many benign flows demand one more domain
  std::uint32_t fleet_domains = 0;     // failure domains in the fleet if known; 0 = count the
                                       // domains of known origins (peers and claimants)

  // --- decision and lifetime ---
  DurationMs ttl_min_ms = 5 * kMinute;      // TTL of a block just at the threshold
  DurationMs ttl_max_ms = 24 * kHour;       // TTL at S = 1; hard cap of every claim and block (I4)
  DurationMs ttl_single_ms = 15 * kMinute;  // cap for blocks resting on one domain (I2/I4)
  DurationMs operator_ttl_max_ms = 30 * 24 * kHour;  // cap of operator blocks and allows
  DurationMs max_future_ms = 5 * kMinute;  // claims issued further ahead of `now` are rejected

  // --- budgets (I3) ---
  // A new block is paid (one token) by each PIVOTAL supporting domain: a domain without which
  // the block would not be enforced (too few domains, or S below the threshold). One domain
  // alone is always pivotal; a block with slack (e.g. a C2 detected by many domains) is free.
  double budget_burst = 20;         // token bucket size of an origin at t_cap
  double budget_rate_per_min = 10;  // refill per minute at t_cap (scaled by t / t_cap)
  // Gross overrun (provable from signed claims alone, so any node can verify the proof): more
  // than overrun_max_claims claims issued by one origin within overrun_window_ms.
  double overrun_max_claims = 400;
  DurationMs overrun_window_ms = kMinute;

  // Defaults, identical to a value-initialised Params.
  static Params defaults() { return Params{}; }
  // Checks ranges and relations (t_cap < 1, prior <= t_cap, 0 < s_cap < 1, ttl_single <=
  // ttl_max, ...). Error code "bad_param", message names the parameter and the reason.
  Result<void> validate() const;
};

// "trust", "naive", "quorum:3".
std::string policy_to_string(const Params& p);
// Sets mode (and quorum_k) from that text; error code "bad_param" naming the text.
Result<void> set_policy(Params& p, std::string_view text);

// One row of the parameter table: enough to map a config key, print a default config and
// set a value without repeating the list of names anywhere else.
struct ParamInfo {
  std::string_view name;              // config key below `policy.`, e.g. "ttl_single_ms"
  std::string_view unit;              // "ms", "ratio", "tokens", "claims", "policy", ...
  std::string_view description;       // one line: what and why
  std::string (*get)(const Params&);  // value as config text
  Result<void> (*set)(Params&, std::string_view text);  // parse + range-check one value
};

// Every parameter, in declaration order. get() of Params::defaults() is the default.
std::span<const ParamInfo> param_table();
const ParamInfo* find_param(std::string_view name);
// Convenience: find_param + set; error code "bad_param" for unknown names or bad values.
Result<void> set_param(Params& p, std::string_view name, std::string_view value);

}  // namespace meshd::trust
