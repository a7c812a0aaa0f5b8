// What signed events say besides a prefix and a direction: the misbehaviour a proof accuses
// an origin of, and the action an operator decision takes. Shared by the wire codec (proto/),
// the gossip core and the trust engine, so it lives below all three.
#pragma once

#include <cstdint>
#include <string_view>

namespace meshd {

enum class MisbehaviourKind : std::uint8_t { equivocation, protected_target, budget_overrun };
std::string_view to_string(MisbehaviourKind k);

enum class OperatorAction : std::uint8_t {
  block,    // enforce prefix regardless of evidence (never a protected prefix: I1)
  unblock,  // lift now and drop the current claims on exactly this prefix
  allow,    // never enforce anything overlapping prefix until expires_at
  clear,    // remove an operator block/allow on exactly this prefix (node-local, not on the wire)
};

}  // namespace meshd
