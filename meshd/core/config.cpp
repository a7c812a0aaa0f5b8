#include "meshd/core/config.hpp"

#include <cmath>
#include <string>

namespace meshd::core {
namespace {

Result<void> bad(const char* field, const std::string& why) {
  return fail("bad_config", std::string("mesh.") + field + ": " + why);
}

bool positive(double v) {
  return std::isfinite(v) && v > 0;
}

}  // namespace

Result<void> Config::validate() const {
  if (target_degree == 0) return bad("target_degree", "must be > 0");
  if (max_peers < target_degree) return bad("max_peers", "must be >= target_degree");
  if (seen_capacity < 16) return bad("seen_capacity", "must be >= 16");
  if (seen_ttl_ms <= 0) return bad("seen_ttl_ms", "must be > 0");
  if (store_capacity == 0) return bad("store_capacity", "must be > 0");
  if (store_retention_ms <= 0) return bad("store_retention_ms", "must be > 0");
  if (claim_ttl_cap_ms <= 0) return bad("claim_ttl_cap_ms", "must be > 0");
  if (anti_entropy_period_ms <= 0) return bad("anti_entropy_period_ms", "must be > 0");
  if (!(anti_entropy_jitter >= 0 && anti_entropy_jitter < 1))
    return bad("anti_entropy_jitter", "must be in [0, 1)");
  if (vv_reply_min_interval_ms < 0) return bad("vv_reply_min_interval_ms", "must be >= 0");
  if (max_range_span == 0) return bad("max_range_span", "must be > 0");
  if (max_range_envelopes == 0) return bad("max_range_envelopes", "must be > 0");
  if (max_requests_per_vector == 0) return bad("max_requests_per_vector", "must be > 0");
  if (max_outstanding_requests == 0) return bad("max_outstanding_requests", "must be > 0");
  if (request_timeout_ms <= 0) return bad("request_timeout_ms", "must be > 0");
  if (out_of_order_window < 16) return bad("out_of_order_window", "must be >= 16");
  if (!positive(peer_rate_per_s)) return bad("peer_rate_per_s", "must be a number > 0");
  if (!(positive(peer_burst) && peer_burst >= 1)) return bad("peer_burst", "must be >= 1");
  if (!positive(origin_rate_per_min)) return bad("origin_rate_per_min", "must be a number > 0");
  if (!(positive(origin_burst) && origin_burst >= 1)) return bad("origin_burst", "must be >= 1");
  if (deferred_total_max < origin_queue_max)
    return bad("deferred_total_max", "must be >= origin_queue_max");
  for (auto [name, v] : {std::pair{"penalty_invalid", penalty_invalid},
                         std::pair{"penalty_malformed", penalty_malformed},
                         std::pair{"penalty_rate_limit", penalty_rate_limit},
                         std::pair{"penalty_duplicate", penalty_duplicate},
                         std::pair{"dup_tolerance", dup_tolerance}}) {
    if (!(std::isfinite(v) && v >= 0)) return bad(name, "must be a number >= 0");
  }
  if (dup_window_ms <= 0) return bad("dup_window_ms", "must be > 0");
  if (!positive(score_threshold)) return bad("score_threshold", "must be a number > 0");
  if (score_half_life_ms <= 0) return bad("score_half_life_ms", "must be > 0");
  if (ban_base_ms <= 0) return bad("ban_base_ms", "must be > 0");
  if (ban_max_ms < ban_base_ms) return bad("ban_max_ms", "must be >= ban_base_ms");
  if (proof_jitter_ms < 0) return bad("proof_jitter_ms", "must be >= 0");
  return {};
}

}  // namespace meshd::core
