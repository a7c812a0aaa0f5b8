// Every conversion between the wire schema (proto/wire.proto) and the project's own types, in
// one place. Decoding is strict: an unknown or unspecified enum value is an error naming the
// field, never a silent default, because a signed claim must mean exactly what its signer said.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "meshd/common/direction.hpp"
#include "meshd/common/event_kinds.hpp"
#include "meshd/common/prefix.hpp"
#include "meshd/common/result.hpp"
#include "meshd/common/severity.hpp"
#include "meshd/common/time.hpp"
#include "proto/crypto.hpp"
#include "proto/wire.pb.h"

namespace meshd::proto {

// Wire CIDR <-> Prefix. to_prefix errors: `bad_prefix` (addr not 4/16 bytes,
// prefix_len too long, host bits set).
Result<Prefix> to_prefix(const v1::Cidr& cidr);
v1::Cidr to_cidr(const Prefix& prefix);

// `bad_direction` for UNSPECIFIED/unknown.
Result<Direction> to_direction(v1::Direction d);
v1::Direction to_wire(Direction d);

// `bad_severity` for UNSPECIFIED/unknown. `info` goes out as LOW: it is a detector's grade,
// and a claim's lowest class is low.
Result<Severity> to_severity(v1::Severity s);
v1::Severity to_wire(Severity s);

// `bad_action` for UNSPECIFIED/unknown. `clear` has no wire form (node-local): UNSPECIFIED.
Result<OperatorAction> to_action(v1::OperatorAction a);
v1::OperatorAction to_wire(OperatorAction a);

// `bad_kind` for UNSPECIFIED/unknown.
Result<MisbehaviourKind> to_kind(v1::MisbehaviourKind k);
v1::MisbehaviourKind to_wire(MisbehaviourKind k);

// The body of one signed event in the project's types (what the signer asserted; whether to
// believe it is for the receiver to decide).
struct ClaimContent {
  Prefix prefix;
  Direction direction = Direction::both;
  std::string detector;
  Severity severity = Severity::medium;
  double confidence = 0;
  DurationMs ttl = 0;  // as requested; range checks belong to the receiver's policy
};
struct RetractionContent {
  std::uint64_t claim_seq = 0;   // 0 = not by seq
  std::optional<Prefix> prefix;  // set = every claim of the origin on this prefix
  std::string reason;
};
struct DecisionContent {
  OperatorAction action = OperatorAction::block;
  Prefix prefix;
  Direction direction = Direction::both;  // unspecified on the wire = both
  bool false_positive = false;
  DurationMs ttl = 0;  // 0 = until revoked (the receiver caps it)
  std::string reason;
};
struct ProofContent {
  std::string accused;
  MisbehaviourKind kind = MisbehaviourKind::equivocation;
  std::vector<std::string> evidence;  // the accused's envelopes, serialized
  std::string detail;
};

struct DecodedEvent {
  SignKind kind = SignKind::claim;
  std::string signer;
  std::uint64_t seq = 0;
  TimeMs issued_at = 0;
  std::variant<ClaimContent, RetractionContent, DecisionContent, ProofContent> content;
};

// Decodes a gossiped envelope's body (claim, retraction, operator decision, misbehaviour
// proof) WITHOUT verifying its signature: verify first (verify_envelope). Errors name what is
// wrong: the codes of decode_*, to_prefix and the enum conversions above, `bad_retraction`
// (neither seq nor prefix), `bad_evidence` (no or more than 4096 evidence envelopes).
Result<DecodedEvent> decode_event(const v1::Envelope& env);

}  // namespace meshd::proto
