#include "meshd/core/config.hpp"

#include <charconv>
#include <cmath>
#include <string>
#include <type_traits>

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
  if (anti_entropy_full_period_ms <= 0) return bad("anti_entropy_full_period_ms", "must be > 0");
  if (!(anti_entropy_jitter >= 0 && anti_entropy_jitter < 1))
    return bad("anti_entropy_jitter", "must be in [0, 1)");
  if (vv_reply_min_interval_ms < 0) return bad("vv_reply_min_interval_ms", "must be >= 0");
  if (max_range_span == 0) return bad("max_range_span", "must be > 0");
  if (max_range_envelopes == 0) return bad("max_range_envelopes", "must be > 0");
  if (max_requests_per_vector == 0) return bad("max_requests_per_vector", "must be > 0");
  if (max_outstanding_requests == 0) return bad("max_outstanding_requests", "must be > 0");
  if (request_timeout_ms <= 0) return bad("request_timeout_ms", "must be > 0");
  if (out_of_order_window < 16) return bad("out_of_order_window", "must be >= 16");
  if (gap_give_up_ms < 0) return bad("gap_give_up_ms", "must be >= 0");
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

// ---------------------------------------------------------------- the table

namespace meshd::core {
namespace {

template <class T>
Result<void> parse_into(std::string_view name, std::string_view text, T& out) {
  double v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || ptr != end || !std::isfinite(v) || v < 0) {
    return fail("bad_config", "mesh." + std::string(name) + " = '" + std::string(text) +
                                  "' is not a finite number >= 0");
  }
  if constexpr (std::is_integral_v<T>) {
    if (v != std::floor(v) || v > 9.0e18) {
      return fail("bad_config",
                  "mesh." + std::string(name) + " = '" + std::string(text) + "' is not an integer");
    }
  }
  out = static_cast<T>(v);
  return {};
}

template <class T>
std::string print(T v) {
  if constexpr (std::is_integral_v<T>) {
    return std::to_string(v);
  } else {
    char buf[64];
    auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, ptr);
  }
}

#define MESHD_CORE_ROW(field, unit, desc)                                                          \
  ConfigInfo {                                                                                     \
#field, unit, desc,                                                                            \
        [](const Config&                                                                           \
               c) { return print(c.field); }, [](Config & c,                                       \
                                                 std::string_view                                  \
                                                     t) { return parse_into(#field, t, c.field); } \
  }

const ConfigInfo kTable[] = {
    MESHD_CORE_ROW(target_degree, "peers", "connections a node aims for, inbound + outbound"),
    MESHD_CORE_ROW(max_peers, "peers", "connections accepted at most; more are refused"),
    MESHD_CORE_ROW(seen_capacity, "ids", "event ids remembered for dedup before opening"),
    MESHD_CORE_ROW(seen_ttl_ms, "ms", "how long an event id is remembered (between ttl/2 and ttl)"),
    MESHD_CORE_ROW(store_capacity, "envelopes", "envelopes kept to serve anti-entropy"),
    MESHD_CORE_ROW(store_retention_ms, "ms", "how long non-claim events are kept after issue"),
    MESHD_CORE_ROW(claim_ttl_cap_ms, "ms",
                   "claims are kept until issue + min(requested TTL, this)"),
    MESHD_CORE_ROW(anti_entropy_period_ms, "ms", "mean period of version vector exchange"),
    MESHD_CORE_ROW(anti_entropy_jitter, "ratio", "period jitter: uniform in [1-j, 1+j] x period"),
    MESHD_CORE_ROW(anti_entropy_fanout, "peers", "random peers that get our vector each period"),
    MESHD_CORE_ROW(vv_reply_min_interval_ms, "ms", "min gap between vector replies to one peer"),
    MESHD_CORE_ROW(max_range_span, "seqs", "seqs one range request may ask for"),
    MESHD_CORE_ROW(max_range_envelopes, "envelopes", "envelopes one range response may carry"),
    MESHD_CORE_ROW(max_requests_per_vector, "requests", "range requests sent for one vector"),
    MESHD_CORE_ROW(max_outstanding_requests, "requests", "unanswered range requests per peer"),
    MESHD_CORE_ROW(request_timeout_ms, "ms", "an unanswered range request is forgotten after"),
    MESHD_CORE_ROW(out_of_order_window, "seqs", "held seqs tracked above the contiguous mark"),
    MESHD_CORE_ROW(gap_give_up_ms, "ms",
                   "gaps below the window are given up after no progress for"),
    MESHD_CORE_ROW(peer_rate_per_s, "messages/s", "per-peer token bucket refill"),
    MESHD_CORE_ROW(peer_burst, "messages", "per-peer token bucket size"),
    MESHD_CORE_ROW(origin_rate_per_min, "events/min", "per-origin token bucket refill"),
    MESHD_CORE_ROW(origin_burst, "events", "per-origin token bucket size"),
    MESHD_CORE_ROW(origin_queue_max, "events", "events of one origin waiting for a token"),
    MESHD_CORE_ROW(deferred_total_max, "events", "events of all origins waiting for tokens"),
    MESHD_CORE_ROW(penalty_invalid, "points", "penalty for an envelope that fails to verify"),
    MESHD_CORE_ROW(penalty_malformed, "points", "penalty for an undecodable envelope or message"),
    MESHD_CORE_ROW(penalty_rate_limit, "points", "penalty per message over the per-peer limit"),
    MESHD_CORE_ROW(penalty_duplicate, "points", "penalty per duplicate beyond the tolerance"),
    MESHD_CORE_ROW(dup_tolerance, "messages", "duplicates free per window beyond new events"),
    MESHD_CORE_ROW(dup_window_ms, "ms", "window of the duplicate tolerance"),
    MESHD_CORE_ROW(score_threshold, "points", "penalty at which a peer is disconnected"),
    MESHD_CORE_ROW(score_half_life_ms, "ms", "half-life of peer penalties"),
    MESHD_CORE_ROW(ban_base_ms, "ms", "first ban; doubles per further ban of the same peer"),
    MESHD_CORE_ROW(ban_max_ms, "ms", "longest ban"),
    MESHD_CORE_ROW(proof_jitter_ms, "ms", "max random delay before publishing our own proof"),
    MESHD_CORE_ROW(anti_entropy_full_period_ms, "ms",
                   "period of the full vector to random peers (backstop for lost messages)"),
};

#undef MESHD_CORE_ROW

}  // namespace

std::span<const ConfigInfo> config_table() {
  return kTable;
}

const ConfigInfo* find_config(std::string_view name) {
  for (const ConfigInfo& row : kTable)
    if (row.name == name) return &row;
  return nullptr;
}

Result<void> set_config(Config& c, std::string_view name, std::string_view value) {
  const ConfigInfo* row = find_config(name);
  if (row == nullptr)
    return fail("bad_config", "mesh." + std::string(name) + " is not a known key");
  return row->set(c, value);
}

}  // namespace meshd::core
