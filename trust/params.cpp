#include "trust/params.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace meshd::trust {
namespace {

Result<void> bad(std::string_view name, const std::string& why) {
  return fail("bad_param", "policy." + std::string(name) + ": " + why);
}

// Ten significant digits when they read back to the same value (every default does), else
// the 17 that always do: a printed config must parse back to the config it came from
// (t_cap 0.99999999999 printed as "1" would not even validate).
std::string format_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  double back = 0;
  auto [p, ec] = std::from_chars(buf, buf + std::strlen(buf), back);
  if (ec != std::errc{} || back != v) std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

Result<double> parse_double(std::string_view text) {
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || !std::isfinite(v))
    return fail("bad_param", "'" + std::string(text) + "' is not a finite number");
  return v;
}

template <class Int>
Result<Int> parse_int(std::string_view text) {
  Int v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size())
    return fail("bad_param", "'" + std::string(text) + "' is not an integer");
  return v;
}

template <auto Member>
std::string get_field(const Params& p) {
  if constexpr (std::is_same_v<std::remove_cvref_t<decltype(p.*Member)>, double>)
    return format_double(p.*Member);
  else
    return std::to_string(p.*Member);
}

template <auto Member>
Result<void> set_field(Params& p, std::string_view text) {
  using T = std::remove_cvref_t<decltype(p.*Member)>;
  if constexpr (std::is_same_v<T, double>) {
    auto v = parse_double(text);
    if (!v) return std::unexpected(v.error());
    p.*Member = *v;
  } else {
    auto v = parse_int<T>(text);
    if (!v) return std::unexpected(v.error());
    p.*Member = *v;
  }
  return {};
}

std::string get_policy(const Params& p) {
  return policy_to_string(p);
}
Result<void> set_policy_text(Params& p, std::string_view text) {
  return set_policy(p, text);
}

#define MESHD_PARAM(field, unit, desc)                                             \
  ParamInfo {                                                                      \
#field, unit, desc, &get_field < &Params::field>, &set_field < &Params::field> \
  }

const ParamInfo kTable[] = {
    {"mode", "policy",
     "acceptance policy: trust (real), naive (accept every valid claim), quorum:K", &get_policy,
     &set_policy_text},
    MESHD_PARAM(t_cap, "trust", "max trust of a remote origin (< 1): nobody is infallible"),
    MESHD_PARAM(prior, "trust", "trust of a new certified origin"),
    MESHD_PARAM(prior_weight, "observations", "pseudo-observations behind the prior: inertia"),
    MESHD_PARAM(gain, "observations", "evidence added by one corroboration"),
    MESHD_PARAM(loss_ratio, "ratio", "a contradiction weighs loss_ratio gains: trust drops faster"),
    MESHD_PARAM(half_life_ms, "ms", "evidence half-life: trust drifts back to the prior"),
    MESHD_PARAM(quarantine_ms, "ms", "trust is 0 this long after a misbehaviour proof"),
    MESHD_PARAM(post_quarantine_neg, "observations",
                "negative evidence an origin leaves quarantine with"),
    MESHD_PARAM(weight_local, "gains", "gain weight of a local sensor corroboration"),
    MESHD_PARAM(weight_domain, "gains",
                "gain weight of corroboration by another domain (x its trust / t_cap)"),
    MESHD_PARAM(weight_false_positive, "losses",
                "loss weight of an operator false-positive unblock"),
    MESHD_PARAM(weight_contradiction, "losses", "loss weight of strong local benign evidence"),
    MESHD_PARAM(feedback_flush_ms, "ms", "trust gains are batched and applied this often"),
    MESHD_PARAM(retime_min_ms, "ms", "block extensions smaller than this wait for the expiry"),
    MESHD_PARAM(trust_refresh_ms, "ms", "decay of idle origins is applied this often"),
    MESHD_PARAM(s_cap, "support", "max support of one failure domain (I2)"),
    MESHD_PARAM(cost_base, "cost", "cost of wrongly blocking an unused single address"),
    MESHD_PARAM(cost_usage, "cost", "cost per log2(1 + recent local flows to the target)"),
    MESHD_PARAM(cost_breadth, "cost/bit", "cost per host bit of the prefix (v6: beyond /64)"),
    MESHD_PARAM(benefit_low, "benefit", "benefit of a true block, severity low"),
    MESHD_PARAM(benefit_medium, "benefit", "benefit of a true block, severity medium"),
    MESHD_PARAM(benefit_high, "benefit", "benefit of a true block, severity high"),
    MESHD_PARAM(benefit_critical, "benefit", "benefit of a true block, severity critical"),
    MESHD_PARAM(benefit_single_max, "benefit",
                "max benefit a claim set resting on one failure domain can invoke"),
    MESHD_PARAM(cost_benign, "cost/flow",
                "cost per benign flow (from enough local sources, no local detection): linear"),
    MESHD_PARAM(benign_min_sources, "sources",
                "flows count as benign evidence only from this many distinct processes/pods"),
    MESHD_PARAM(
        benign_strong_flows, "flows",
        "strong benign evidence: claims demand the full quorum and lose their origin trust"),
    MESHD_PARAM(benign_strong_span_ms, "ms",
                "strong benign evidence must span this long (steady use, not a burst)"),
    MESHD_PARAM(quorum_fraction, "ratio",
                "used targets need more than this share of the fleet's domains (bounds colluders)"),
    MESHD_PARAM(quorum_flows_per_domain, "flows",
                "each this many benign flows demand one more corroborating domain"),
    MESHD_PARAM(fleet_domains, "domains",
                "failure domains in the fleet; 0 = count the domains of known origins"),
    MESHD_PARAM(ttl_min_ms, "ms", "TTL of a block just at the decision threshold"),
    MESHD_PARAM(ttl_max_ms, "ms", "hard cap of every block and claim lifetime (I4)"),
    MESHD_PARAM(ttl_single_ms, "ms", "cap for blocks resting on one failure domain (I4)"),
    MESHD_PARAM(operator_ttl_max_ms, "ms", "cap of operator blocks and allows"),
    MESHD_PARAM(max_future_ms, "ms", "claims issued further in the future are rejected"),
    MESHD_PARAM(budget_burst, "tokens", "per-origin token bucket size at t_cap (I3)"),
    MESHD_PARAM(budget_rate_per_min, "tokens/min", "per-origin refill at t_cap (I3)"),
    MESHD_PARAM(overrun_max_claims, "claims",
                "more claims than this from one origin in overrun_window_ms is misbehaviour"),
    MESHD_PARAM(overrun_window_ms, "ms", "window of the gross overrun check"),
    MESHD_PARAM(quorum_k, "origins", "K of quorum:K (also settable through mode)"),
};
#undef MESHD_PARAM

}  // namespace

std::string policy_to_string(const Params& p) {
  switch (p.mode) {
    case PolicyMode::trust:
      return "trust";
    case PolicyMode::naive:
      return "naive";
    case PolicyMode::quorum:
      return "quorum:" + std::to_string(p.quorum_k);
  }
  return "invalid";
}

Result<void> set_policy(Params& p, std::string_view text) {
  if (text == "trust") {
    p.mode = PolicyMode::trust;
    return {};
  }
  if (text == "naive") {
    p.mode = PolicyMode::naive;
    return {};
  }
  if (text.starts_with("quorum:")) {
    auto k = parse_int<std::uint32_t>(text.substr(7));
    if (!k || *k < 1) return bad("mode", "'" + std::string(text) + "': K must be an integer >= 1");
    p.mode = PolicyMode::quorum;
    p.quorum_k = *k;
    return {};
  }
  return bad("mode", "'" + std::string(text) + "' is not trust, naive or quorum:K");
}

Result<void> Params::validate() const {
  auto in = [](double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; };
  if (mode != PolicyMode::trust && mode != PolicyMode::naive && mode != PolicyMode::quorum)
    return bad("mode", "unknown policy mode");
  if (quorum_k < 1) return bad("quorum_k", "must be >= 1");
  if (!in(t_cap, 0, 1) || t_cap <= 0 || t_cap >= 1) return bad("t_cap", "must be in (0, 1)");
  if (!in(prior, 0, t_cap)) return bad("prior", "must be in [0, t_cap]");
  if (!in(prior_weight, 0, 1e9) || prior_weight <= 0) return bad("prior_weight", "must be > 0");
  if (!in(gain, 0, 1e9)) return bad("gain", "must be >= 0");
  if (!in(loss_ratio, 1, 1e9)) return bad("loss_ratio", "must be >= 1 (losses never weigh less)");
  if (half_life_ms <= 0) return bad("half_life_ms", "must be > 0");
  if (quarantine_ms <= 0) return bad("quarantine_ms", "must be > 0");
  if (!in(post_quarantine_neg, 0, 1e9)) return bad("post_quarantine_neg", "must be >= 0");
  for (auto [v, n] : {std::pair{weight_local, "weight_local"},
                      {weight_domain, "weight_domain"},
                      {weight_false_positive, "weight_false_positive"},
                      {weight_contradiction, "weight_contradiction"}})
    if (!in(v, 0, 1e9)) return bad(n, "must be >= 0");
  if (feedback_flush_ms < 0) return bad("feedback_flush_ms", "must be >= 0");
  if (retime_min_ms < 0) return bad("retime_min_ms", "must be >= 0");
  if (trust_refresh_ms <= 0) return bad("trust_refresh_ms", "must be > 0");
  if (!in(s_cap, 0, 1) || s_cap <= 0 || s_cap >= 1) return bad("s_cap", "must be in (0, 1)");
  if (!in(cost_base, 0, 1e9) || cost_base <= 0) return bad("cost_base", "must be > 0");
  if (!in(cost_usage, 0, 1e9)) return bad("cost_usage", "must be >= 0");
  if (!in(cost_breadth, 0, 1e9)) return bad("cost_breadth", "must be >= 0");
  for (auto [v, n] : {std::pair{benefit_low, "benefit_low"},
                      {benefit_medium, "benefit_medium"},
                      {benefit_high, "benefit_high"},
                      {benefit_critical, "benefit_critical"},
                      {benefit_single_max, "benefit_single_max"}})
    if (!in(v, 0, 1e9)) return bad(n, "must be >= 0");
  if (!in(cost_benign, 0, 1e9)) return bad("cost_benign", "must be >= 0");
  if (!in(benign_min_sources, 0, 1e9)) return bad("benign_min_sources", "must be >= 0");
  if (!in(benign_strong_flows, 1, 1e15)) return bad("benign_strong_flows", "must be >= 1");
  if (benign_strong_span_ms < 0) return bad("benign_strong_span_ms", "must be >= 0");
  if (!in(quorum_fraction, 0, 1) || quorum_fraction >= 1)
    return bad("quorum_fraction", "must be in [0, 1)");
  if (!in(quorum_flows_per_domain, 0, 1e15) || quorum_flows_per_domain <= 0)
    return bad("quorum_flows_per_domain", "must be > 0");
  if (ttl_min_ms <= 0) return bad("ttl_min_ms", "must be > 0");
  if (ttl_max_ms < ttl_min_ms) return bad("ttl_max_ms", "must be >= ttl_min_ms");
  if (ttl_single_ms <= 0 || ttl_single_ms > ttl_max_ms)
    return bad("ttl_single_ms", "must be in (0, ttl_max_ms]");
  if (operator_ttl_max_ms <= 0) return bad("operator_ttl_max_ms", "must be > 0");
  if (max_future_ms < 0) return bad("max_future_ms", "must be >= 0");
  if (!in(budget_burst, 1, 1e9)) return bad("budget_burst", "must be >= 1");
  if (!in(budget_rate_per_min, 0, 1e9) || budget_rate_per_min <= 0)
    return bad("budget_rate_per_min", "must be > 0");
  if (!in(overrun_max_claims, 1, 1e12)) return bad("overrun_max_claims", "must be >= 1");
  if (overrun_window_ms <= 0) return bad("overrun_window_ms", "must be > 0");
  return {};
}

std::span<const ParamInfo> param_table() {
  return kTable;
}

const ParamInfo* find_param(std::string_view name) {
  for (const auto& row : kTable)
    if (row.name == name) return &row;
  return nullptr;
}

Result<void> set_param(Params& p, std::string_view name, std::string_view value) {
  const ParamInfo* row = find_param(name);
  if (!row) return fail("bad_param", "policy." + std::string(name) + " is not a known parameter");
  auto r = row->set(p, value);
  if (!r && r.error().message.starts_with("policy.")) return r;
  if (!r) return bad(name, r.error().message);
  return {};
}

}  // namespace meshd::trust
