// The trust engine's cost model reads recent flows through trust::UsageSource; the daemon
// counts them in sensor::UsageStats. This adapter is the only place the two meet, so sensor/
// stays independent of trust/.
#pragma once

#include <cstdint>

#include "sensor/usage_stats.hpp"
#include "trust/usage.hpp"

namespace meshd::app {

// Borrows `stats`, which must outlive the adapter. flows_to() only reads, so the engine's
// calls never change state.
class UsageAdapter final : public trust::UsageSource {
 public:
  explicit UsageAdapter(const sensor::UsageStats& stats) : stats_(stats) {}
  std::uint64_t flows(const Prefix& target, TimeMs now) const override {
    return stats_.flows_to(target, now);
  }
  // Flows from several local cgroups over a span of minutes, none flagged by a local detector:
  // what the engine weighs against remote claims (and holds against their origins).
  trust::BenignEvidence evidence(const Prefix& target, TimeMs now) const override {
    const sensor::UsageEvidence e = stats_.evidence(target, now);
    return trust::BenignEvidence{e.flows, e.sources, e.span_ms, e.flagged};
  }

 private:
  const sensor::UsageStats& stats_;
};

}  // namespace meshd::app
