// Gossip parameters of meshd/core, with documented defaults. The daemon maps YAML
// `mesh.<name>` keys onto it; the simulator sets fields directly. Units are in the names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "meshd/common/result.hpp"
#include "meshd/common/time.hpp"

namespace meshd::core {

struct Config {
  // --- overlay ---
  // Connections a node aims for, inbound + outbound. The core does not
  // dial; drivers read it. The core accepts up to max_peers and disconnects beyond.
  std::size_t target_degree = 8;
  std::size_t max_peers = 64;

  // --- dedup (seen-set of event ids, checked BEFORE opening) ---
  // Two generations of flat hash sets: an id is remembered for between seen_ttl_ms/2 and
  // seen_ttl_ms, and at most seen_capacity ids are kept (a full generation rotates early).
  // After eviction a late copy is opened once more and recognised by (origin, seq).
  std::size_t seen_capacity = 1 << 18;
  DurationMs seen_ttl_ms = 10 * kMinute;

  // --- store of known envelopes (serves anti-entropy) ---
  // Bounded: beyond store_capacity the envelopes expiring first are forgotten. An event is
  // kept until its own expiry (claims: issued_at + requested TTL capped at ttl_max of the
  // engine) or store_retention_ms after issue for other kinds.
  std::size_t store_capacity = 200'000;
  DurationMs store_retention_ms = 24 * kHour;
  DurationMs claim_ttl_cap_ms = 24 * kHour;

  // --- anti-entropy ---
  // A peer that comes up gets our full version vector. Then every anti_entropy_period_ms
  // (uniformly jittered in [1 - jitter, 1 + jitter] x period) each peer gets a DELTA vector:
  // the entries that advanced since we last sent it one (nothing if nothing changed), so the
  // cost follows the event rate, not the fleet size. Every anti_entropy_full_period_ms the
  // full vector goes to `anti_entropy_fanout` random peers as a backstop (lost messages).
  // A receiver requests what it lacks and answers with the listed entries it is ahead on
  // (at most once per vv_reply_min_interval_ms per peer: no ping-pong). An unanswered range
  // request is re-sent to the same peer after request_timeout_ms.
  DurationMs anti_entropy_period_ms = 2000;
  double anti_entropy_jitter = 0.25;
  std::size_t anti_entropy_fanout = 1;
  DurationMs vv_reply_min_interval_ms = 1000;
  std::uint64_t max_range_span = 256;          // seqs per RangeRequest
  std::size_t max_range_envelopes = 256;       // envelopes per RangeResponse
  std::size_t max_requests_per_vector = 64;    // RangeRequests sent for one received vector
  std::size_t max_outstanding_requests = 128;  // per peer; more are not sent until answered
  DurationMs request_timeout_ms = 5000;        // an unanswered request is forgotten
  // Held seqs are tracked up to this far above the contiguous mark.
  std::uint64_t out_of_order_window = 4096;
  // An event further ahead is refused (and fetched again later, in order) while the gaps
  // below it are being filled; only when the contiguous mark made no progress for this long
  // are the gaps given up (nobody can serve them: expired and forgotten everywhere).
  DurationMs gap_give_up_ms = 30'000;

  // --- per-peer rate limit (token bucket over messages of any kind) ---
  double peer_rate_per_s = 500;
  double peer_burst = 2000;

  // --- per-origin rate limit (token bucket over new events of one signer; operator
  // decisions exempt). Excess waits in a bounded per-origin queue and is processed when
  // tokens refill; beyond the queue it is dropped (counted) without marking the seq held,
  // so anti-entropy fetches it again later: honest bursts converge, floods stay bounded.
  double origin_rate_per_min = 600;
  double origin_burst = 200;
  std::size_t origin_queue_max = 256;
  std::size_t deferred_total_max = 8192;

  // --- peer scoring (transport level). A peer's penalty decays exponentially with
  // score_half_life_ms; at penalty >= score_threshold it is disconnected and banned for
  // ban_base_ms, doubling for each further ban of the same peer id up to ban_max_ms.
  double penalty_invalid = 20;     // failed open: bad signature / unknown signer
  double penalty_malformed = 10;   // undecodable envelope or message, bad range request,
                                   // unsolicited range response
  double penalty_rate_limit = 1;   // per message over the per-peer rate limit
  double penalty_duplicate = 0.5;  // per useless duplicate beyond the tolerance
  // Duplicates a peer may send per dup_window_ms: dup_tolerance + (new events this node
  // learned in the window): with eager push an honest peer duplicates each event at most once.
  double dup_tolerance = 64;
  DurationMs dup_window_ms = 10 * kSecond;
  double score_threshold = 100;
  DurationMs score_half_life_ms = kMinute;
  DurationMs ban_base_ms = kMinute;
  DurationMs ban_max_ms = kHour;

  // --- misbehaviour proofs ---
  // A node that detects misbehaviour quarantines at once, but publishes its proof only after
  // a uniform delay in [0, proof_jitter_ms], and not at all if a valid proof for the same
  // origin arrives first: a handful of proofs per incident instead of one per detector.
  DurationMs proof_jitter_ms = 300;

  // (anti-entropy, continued; declared last to keep earlier field order stable)
  // (never more often than anti_entropy_period_ms: the larger of the two is used)
  DurationMs anti_entropy_full_period_ms = 30 * kSecond;

  static Config defaults() { return Config{}; }
  // Ranges and relations (periods > 0, jitter in [0, 1), capacities > 0, ...). Error code
  // "bad_config", message names the field and the reason.
  Result<void> validate() const;
};

// One row per Config field, so the daemon (YAML `mesh.<name>`, --print-default-config) and
// the simulator map names to fields without repeating the list.
struct ConfigInfo {
  std::string_view name;              // field name, e.g. "anti_entropy_period_ms"
  std::string_view unit;              // "ms", "peers", "ids", "tokens/s", "ratio", ...
  std::string_view description;       // one line: what and why
  std::string (*get)(const Config&);  // value as config text
  Result<void> (*set)(Config&, std::string_view text);  // parse one value (>= 0, finite)
};

// Every field, in declaration order. get() on Config::defaults() gives the default.
std::span<const ConfigInfo> config_table();
const ConfigInfo* find_config(std::string_view name);
// find_config + set; error "bad_config" naming `mesh.<name>` for unknown names or bad values.
// Call validate() after setting everything (relations between fields).
Result<void> set_config(Config& c, std::string_view name, std::string_view value);

}  // namespace meshd::core
