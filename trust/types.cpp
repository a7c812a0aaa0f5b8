#include "trust/types.hpp"

#include <cmath>

namespace meshd::trust {

Result<void> validate(const ClaimFacts& c) {
  // Built only for an error: validate() runs on every received claim.
  auto who = [&c] { return "claim " + c.origin.node + "/" + std::to_string(c.seq); };
  if (c.origin.node.empty()) return fail("bad_origin", "claim without an origin node id");
  if (std::isnan(c.confidence))
    return fail("bad_confidence", who() + ": confidence is NaN; it must be a number in [0, 1]");
  if (c.confidence < 0 || c.confidence > 1)
    return fail("bad_confidence",
                who() + ": confidence " + std::to_string(c.confidence) + " is outside [0, 1]");
  if (c.requested_ttl <= 0)
    return fail("bad_ttl", who() + ": requested TTL " + std::to_string(c.requested_ttl) +
                               " ms must be positive");
  auto sev = static_cast<unsigned>(c.severity);
  if (sev < 1 || sev > 4)
    return fail("bad_severity", who() + ": severity class " + std::to_string(sev) + " is unknown");
  auto dir = static_cast<unsigned>(c.direction);
  if (dir < 1 || dir > 3)
    return fail("bad_direction", who() + ": direction " + std::to_string(dir) + " is unknown");
  if (c.prefix.family != Family::v4 && c.prefix.family != Family::v6)
    return fail("bad_prefix", who() + ": address family is neither IPv4 nor IPv6");
  if (c.prefix.len > c.prefix.max_len())
    return fail("bad_prefix", who() + ": prefix length " + std::to_string(c.prefix.len) +
                                  " exceeds the address size");
  return {};
}

}  // namespace meshd::trust
