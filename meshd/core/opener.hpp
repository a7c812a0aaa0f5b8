// The injected codec + crypto boundary of the core. meshd/core links no protobuf and no
// libsodium: the driver supplies an EventOpener. Production (meshd/app) decodes the protobuf
// Envelope, verifies the Ed25519 signature over the exact received bytes, checks the signer's
// CA-signed certificate (role operator for operator decisions) and the freshness window.
// The simulator's opener may be cheap but must model who can sign what: an adversary cannot
// produce another node's signature, and a sybil's key is uncertified.
//
// The core calls event_id() on every received envelope (so it must be cheap: a hash) and
// open() at most once per distinct event id (dedup happens before opening).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "meshd/common/result.hpp"
#include "meshd/core/messages.hpp"

namespace meshd::core {

// Error codes an opener returns in Error::code. The core scores the sending peer by them:
//  - malformed:      undecodable bytes, kind/body mismatch, missing fields, bad CIDR, or a
//                    body invalid by itself (e.g. confidence NaN)    -> Config::penalty_malformed
//  - bad_signature:  the signature does not verify                   -> Config::penalty_invalid
//  - unknown_signer: no valid CA-signed certificate for the signer, or the cert lacks the
//                    role (operator decisions)                        -> Config::penalty_invalid
//  - stale:          outside the freshness window (too old / too far in the future) or
//                    signer cert expired. Not the forwarder's fault (clocks and timing differ
//                    between nodes): counted, no penalty.
// Any other code is treated like bad_signature.
namespace open_error {
inline constexpr std::string_view malformed = "malformed";
inline constexpr std::string_view bad_signature = "bad_signature";
inline constexpr std::string_view unknown_signer = "unknown_signer";
inline constexpr std::string_view stale = "stale";
}  // namespace open_error

// What an envelope says about itself, read WITHOUT verifying anything (a forger can name any
// origin). Only for shedding load, never for a decision about the event itself.
struct UnverifiedOrigin {
  std::string origin;
  std::uint64_t seq = 0;
  bool exempt = false;  // an operator decision: not subject to the per-origin limit
};

class EventOpener {
 public:
  virtual ~EventOpener() = default;

  // The origin and seq an envelope names, without opening it (cheap: a decode, no
  // signature). The core asks only while some origin has events waiting for its rate limit:
  // an event of an origin whose queue is full would be opened (the Ed25519 verify) only to be
  // dropped, so it is dropped unopened and fetched again by anti-entropy once there is room.
  // nullopt (the default): not known, the envelope is opened as usual.
  virtual std::optional<UnverifiedOrigin> peek(const std::string& envelope) const {
    (void)envelope;
    return std::nullopt;
  }

  // Identity of the envelope bytes (production: BLAKE2b-256 of `envelope`). Pure, total
  // (also for garbage bytes), deterministic.
  virtual EventId event_id(const std::string& envelope) const = 0;

  // Decode + signature + certificate + freshness check of a gossiped event.
  // For a misbehaviour proof only the proof's own signature is checked here; the core checks
  // the evidence with open_evidence().
  virtual Result<SignedEvent> open(const std::string& envelope, TimeMs now) = 0;

  // Like open() but WITHOUT the freshness window: the signature and the signer's certificate
  // must be valid (the certificate at the event's issued_at). Used for the evidence inside
  // misbehaviour proofs, which is old by nature.
  virtual Result<SignedEvent> open_evidence(const std::string& envelope, TimeMs now) = 0;
};

// Injected randomness (jitter of anti-entropy and proof timers, choice of sync peers).
class Rng {
 public:
  virtual ~Rng() = default;
  virtual std::uint64_t next_u64() = 0;
};

// A small deterministic generator (SplitMix64) for drivers and tests: same seed, same
// sequence on every platform.
class SplitMix64 final : public Rng {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next_u64() override {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

}  // namespace meshd::core
