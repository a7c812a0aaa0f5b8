// The cost model's input: how much legitimate traffic this node exchanges with a target, and
// how convincing that traffic is as evidence that the target is benign.
#pragma once

#include <cstdint>

#include "meshd/common/prefix.hpp"
#include "meshd/common/time.hpp"

namespace meshd::trust {

// This node's own observation of traffic to a target over the usage window: the strongest
// evidence a node has against a claim (trust/README.md "Collusion resistance").
struct BenignEvidence {
  std::uint64_t flows = 0;    // completed flows to addresses inside the target in the window
  std::uint64_t sources = 0;  // distinct local processes / pods (cgroups) among those flows
  DurationMs span_ms = 0;     // time from the first to the last of those flows
  bool flagged = false;       // a local detector flagged traffic to the target in the window
                              // (then none of it is benign evidence)
  bool operator==(const BenignEvidence&) const = default;
};

// Implemented by the caller (the daemon from sensor flow counters, the simulator from its
// traffic model). The engine calls it synchronously while deciding, so it must be cheap and
// must not call back into the engine. The window length is the implementer's choice (the
// daemon uses a sliding window of a few minutes); the engine only needs "recent flows".
class UsageSource {
 public:
  virtual ~UsageSource() = default;
  // Number of flows (connections, both directions) between this node and any address inside
  // `target` over the recent sliding window ending at `now`. Must be a pure function of the
  // implementer's state and its arguments for decisions to be reproducible (I8).
  virtual std::uint64_t flows(const Prefix& target, TimeMs now) const = 0;
  // The same window with what makes it evidence. Same purity rule as flows(); `flows` must
  // equal flows(target, now). The default, for sources that only count flows, errs on the side
  // of not blocking what this node uses and of not punishing anybody: every flow is taken to
  // come from its own source (so used targets need corroborating domains) and the span is 0
  // (never "strong": no contradiction of the claimants).
  virtual BenignEvidence evidence(const Prefix& target, TimeMs now) const {
    const std::uint64_t f = flows(target, now);
    return BenignEvidence{f, f, 0, false};
  }
};

}  // namespace meshd::trust
