// Value types the acceptance engine reasons about: who claims (origin + failure domain), what a
// claim asserts (ClaimFacts), and the opaque body digest used to detect equivocation.
// Pure data: the daemon fills these from verified, signed envelopes; the simulator fills them
// directly. Nothing here is signed or verified: trust/ sees facts that already passed
// signature, certificate and freshness checks in meshd/core.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "meshd/common/direction.hpp"
#include "meshd/common/prefix.hpp"
#include "meshd/common/result.hpp"
#include "meshd/common/severity.hpp"
#include "meshd/common/time.hpp"

namespace meshd::trust {

// Node id as written in the node's certificate (e.g. "node-17" or a hex key id). Opaque to
// trust/: compared byte for byte. Must be non-empty.
using NodeId = std::string;
// Failure domain (zone, rack, ...) from the node's certificate. Claims from origins in the
// same domain are treated as correlated: together they never exceed `s_cap` (I2).
using DomainId = std::string;

struct Origin {
  NodeId node;
  DomainId domain;
  bool operator==(const Origin&) const = default;
};

// BLAKE2b-256 of the signed claim body (or any collision-resistant 32-byte digest the caller
// picks). Two claims with the same (origin, seq) but different digests are equivocation (I5).
using Digest = std::array<std::uint8_t, 32>;

// The facts of one signed block claim.
struct ClaimFacts {
  Origin origin;
  // Per-origin sequence number, monotonic at the origin. (origin.node, seq) names the claim.
  std::uint64_t seq = 0;
  Prefix prefix;  // the target; decisions are per exact prefix
  Direction direction = Direction::both;
  std::string detector;  // detector id, e.g. "feed:spamhaus", "fanout", "manual"
  Severity severity = Severity::medium;
  double confidence = 0;         // origin's confidence in [0, 1]
  TimeMs issued_at = 0;          // origin's clock, Unix ms
  DurationMs requested_ttl = 0;  // how long the origin asks the block to last, ms, > 0
};

// Checks what can be checked without engine state: non-empty node id, confidence a number in
// [0, 1], requested TTL > 0, a valid severity and direction. The error names the claim
// ("origin/seq") and the reason; codes: bad_origin, bad_confidence, bad_ttl, bad_severity,
// bad_direction.
Result<void> validate(const ClaimFacts& claim);

}  // namespace meshd::trust
