// Signing and opening Envelopes (signed events). Their contents in the project's own types:
// proto/convert.hpp.
//
// Receiving flow (the signer's key depends on the signer named inside the body):
//   1. `peek_signer(env)`      -> who signed it and which seq (body parsed, NOT verified)
//   2. look up that signer's verified NodeCert -> public key
//   3. `open_claim(env, key)`  (or open_retraction / ...) -> verified, decoded message
// or `verify_envelope(env, key)` + `decode_*` separately. Verification is over the exact
// bytes in `env.body()`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "meshd/common/result.hpp"
#include "meshd/common/time.hpp"
#include "proto/crypto.hpp"
#include "proto/wire.pb.h"

namespace meshd::proto {

// BodyKind <-> SignKind. `wrong_kind` for BODY_KIND_UNSPECIFIED or unknown values.
Result<SignKind> sign_kind_of(v1::BodyKind kind);
v1::BodyKind body_kind_of(SignKind kind);  // precondition: an envelope kind

// Serializes `message` once and signs those bytes under `kind`.
v1::Envelope sign_claim(const v1::Claim& claim, const SecretKey& key);
v1::Envelope sign_retraction(const v1::Retraction& retraction, const SecretKey& key);
v1::Envelope sign_operator_decision(const v1::OperatorDecision& decision, const SecretKey& key);
v1::Envelope sign_misbehaviour_proof(const v1::MisbehaviourProof& proof, const SecretKey& key);
// Generic form: `body` is already-serialized bytes.
v1::Envelope sign_envelope(SignKind kind, std::string body, const SecretKey& key);

// Checks env.kind() is a known envelope kind and the signature over env.body() verifies
// under that kind's domain. Errors: `wrong_kind`, `bad_signature`.
Result<void> verify_envelope(const v1::Envelope& env, const PublicKey& key);

// Verifies that `env` holds `expected` and is signed by `key`; returns a view of the exact
// body bytes (aliases env; valid while env lives). Errors: `wrong_kind` (names both kinds),
// `bad_signature`.
Result<std::string_view> open_envelope(SignKind expected, const v1::Envelope& env,
                                       const PublicKey& key);

// Decode without verifying (kind must match). `wrong_kind`, `undecodable_body`.
Result<v1::Claim> decode_claim(const v1::Envelope& env);
Result<v1::Retraction> decode_retraction(const v1::Envelope& env);
Result<v1::OperatorDecision> decode_operator_decision(const v1::Envelope& env);
Result<v1::MisbehaviourProof> decode_misbehaviour_proof(const v1::Envelope& env);

// Verify + decode. Errors of open_envelope plus `undecodable_body`.
Result<v1::Claim> open_claim(const v1::Envelope& env, const PublicKey& key);
Result<v1::Retraction> open_retraction(const v1::Envelope& env, const PublicKey& key);
Result<v1::OperatorDecision> open_operator_decision(const v1::Envelope& env, const PublicKey& key);
Result<v1::MisbehaviourProof> open_misbehaviour_proof(const v1::Envelope& env,
                                                      const PublicKey& key);

// Who signed an envelope, with which sequence number and when, read from the (unverified)
// body: Claim/Retraction origin, OperatorDecision operator_id, MisbehaviourProof reporter.
// `issued_at` lets a receiver pick the signer's cert valid at that time before verifying.
struct SignerRef {
  SignKind kind;
  std::string signer;
  std::uint64_t seq = 0;
  TimeMs issued_at = 0;
};
Result<SignerRef> peek_signer(const v1::Envelope& env);

// Event id of an envelope: BLAKE2b-256 of its serialization. For an envelope received from
// the wire, prefer event_id(received bytes) when they are at hand; protobuf serialization
// of a parsed Envelope with known fields only is stable, so the two agree for envelopes a
// meshd produced. Caveat: a relay can re-encode an envelope (e.g. append an unknown field)
// without breaking the signature, which yields a new id for the same signed body; dedup of
// the *event* must therefore also key on (signer, seq, body digest), as meshd/core does.
EventId event_id_of(const v1::Envelope& env);

}  // namespace meshd::proto
