// The cost model's input: how much legitimate traffic this node exchanges with a target.
#pragma once

#include <cstdint>

#include "meshd/common/prefix.hpp"
#include "meshd/common/time.hpp"

namespace meshd::trust {

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
};

}  // namespace meshd::trust
