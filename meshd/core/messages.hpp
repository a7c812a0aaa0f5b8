// Core messages: what meshd/core nodes exchange, and the signed events they carry.
//
// Envelopes travel through the core as opaque, immutable, shared bytes: the exact serialized
// `meshd.v1.Envelope` in production, whatever the simulator's opener understands in meshsim.
// The core never parses them; the injected EventOpener (meshd/core/opener.hpp) does.
// Forwarding one envelope to 8 peers and keeping it in the store copies a shared_ptr, never
// the bytes.
//
// Messages map 1:1 onto protobuf `Frame`s (proto/wire.proto): Push <-> Frame.envelope,
// VersionVector <-> Frame.version_vector, RangeRequest <-> Frame.range_request,
// RangeResponse <-> Frame.range_response. The simulator passes them by value.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "meshd/common/prefix.hpp"
#include "meshd/common/time.hpp"
#include "trust/engine.hpp"
#include "trust/types.hpp"

namespace meshd::core {

// Driver-chosen id of a peer connection. Keep it stable per remote node across reconnects:
// the core keeps a peer's back-off state under this id, so a reconnecting bad peer stays
// banned and its back-off grows.
using PeerId = std::uint64_t;

// BLAKE2b-256 of the envelope bytes in production (opener-defined in the simulator).
using EventId = std::array<std::uint8_t, 32>;

// Event ids are uniformly distributed hashes: their first 8 bytes are a good hash.
struct EventIdHash {
  std::size_t operator()(const EventId& id) const noexcept {
    std::uint64_t h;
    std::memcpy(&h, id.data(), sizeof h);
    return static_cast<std::size_t>(h);
  }
};

// Immutable shared envelope bytes. Never null inside the core (a null Push is malformed).
using Envelope = std::shared_ptr<const std::string>;
inline Envelope make_envelope(std::string bytes) {
  return std::make_shared<const std::string>(std::move(bytes));
}

// Which signed body an envelope holds. Values equal proto `BodyKind`.
enum class EventKind : std::uint8_t {
  claim = 1,
  retraction = 2,
  operator_decision = 3,
  misbehaviour_proof = 4,
};
std::string_view to_string(EventKind k);

// The origin withdraws one of its claims: by the claim's seq, or all its claims on `prefix`
// (exactly one of the two is set by the opener).
struct RetractionBody {
  std::uint64_t claim_seq = 0;   // 0 = not by seq
  std::optional<Prefix> prefix;  // set = every claim of the origin on this prefix
  std::string reason;
};

// A self-verifying accusation. `evidence` holds the accused's own signed envelopes:
//  - equivocation: exactly two envelopes, same signer and seq, different bodies (any kinds);
//  - protected_target: one claim targeting a fleet-wide protected prefix;
//  - budget_overrun: more than Params::overrun_max_claims claims issued by the accused within
//    Params::overrun_window_ms.
// The opener only checks the proof's own signature; the core re-opens every evidence
// envelope (EventOpener::open_evidence) and checks the accusation itself (equivocation) or
// through trust::Engine::check_misbehaviour (protected target, overrun). So every receiver
// verifies a proof from the evidence alone; the reporter is not trusted.
struct ProofBody {
  trust::NodeId accused;
  MisbehaviourKind kind = MisbehaviourKind::equivocation;
  std::vector<Envelope> evidence;
  std::string detail;  // reporter's one-sentence description (logs only)
};

// A decoded event whose signature, signer certificate (and, for `open`, freshness) the
// opener has checked. `origin` is the signer (a node, or an operator for operator
// decisions) with the failure domain from its certificate; `seq` is the signer's sequence
// number (>= 1; one contiguous space per signer across all kinds); `body_digest` is a
// collision-resistant digest of the signed body (two envelopes with the same origin and seq
// but different digests are equivocation; same digest = the same event re-signed).
struct SignedEvent {
  EventKind kind = EventKind::claim;
  trust::Origin origin;
  std::uint64_t seq = 0;
  trust::Digest body_digest{};
  TimeMs issued_at = 0;
  // claim: trust::ClaimFacts (its origin and seq equal the fields above);
  // retraction: RetractionBody; operator_decision: trust::OperatorDecision (expires_at is
  // absolute; the opener converts the wire TTL); misbehaviour_proof: ProofBody.
  std::variant<trust::ClaimFacts, RetractionBody, trust::OperatorDecision, ProofBody> body;
};

// ---- Messages between nodes ----

// Eager push of one signed event.
struct Push {
  Envelope envelope;
};

struct VersionEntry {
  std::string origin;                    // signer id
  std::uint64_t max_contiguous_seq = 0;  // every seq in [1, this] is held (or deliberately
                                         // dropped, see node.hpp) by the sender
};

// "What I hold": max contiguous seq per origin. Shared and immutable so one snapshot goes to
// several peers without copying. May list a subset of origins (the core sends deltas); an
// absent origin says nothing. `entries` is never null (a decoder builds an empty vector for
// an empty message; null is treated as malformed).
struct VersionVector {
  std::shared_ptr<const std::vector<VersionEntry>> entries;
};

// "Send me origin's events with seq in [from_seq, to_seq]" (inclusive; to - from + 1 is at
// most Config::max_range_span, larger requests are malformed).
struct RangeRequest {
  std::string origin;
  std::uint64_t from_seq = 0;
  std::uint64_t to_seq = 0;
};

// The stored envelopes of one request, ascending seq. `truncated`: the responder stopped at
// its size limit; ask again from the last seq + 1.
struct RangeResponse {
  std::vector<Envelope> envelopes;
  bool truncated = false;
};

using Message = std::variant<Push, VersionVector, RangeRequest, RangeResponse>;

}  // namespace meshd::core
