// Reconnect back-off: jittered exponential, base 200 ms, cap 30 s by default.
#pragma once

#include <chrono>

namespace meshd::net {

struct BackoffPolicy {
  std::chrono::milliseconds base{200};
  std::chrono::milliseconds cap{30000};
  // Cap for transient failures (TCP connect refused or timed out, the peer closing or timing
  // out mid-handshake: not listening yet, or full) while the node has fewer than
  // target_peers connections. When a whole fleet starts at once, most addresses refuse
  // until their daemon listens; with the full cap, a node that started first would wait tens
  // of seconds before trying any of them again and stay isolated. Handshake refusals
  // (certs, bans) always use `cap`.
  std::chrono::milliseconds below_target_cap{2000};
};

// Delay before the next attempt after `failures` consecutive failures (failures >= 1; 0 is
// treated as 1). Ceiling d = min(cap, base * 2^(failures-1)); the result is "equal jitter":
// d/2 + unit_random * d/2, so it is never below half the ceiling (no reconnect storms at
// zero delay) and spreads nodes that lost the same peer at the same moment.
// `unit_random` is in [0, 1] and injected so the function is testable.
std::chrono::milliseconds backoff_delay(const BackoffPolicy& policy, unsigned failures,
                                        double unit_random);

}  // namespace meshd::net
