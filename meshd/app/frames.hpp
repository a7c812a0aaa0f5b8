// core::Message <-> serialized meshd.v1.Frame payloads.
//
// Envelopes are carried as the exact bytes the signer produced: on receipt they are sliced
// out of the Frame (and RangeResponse) wire encoding instead of being parsed and
// re-serialized, so the event id (BLAKE2b of the bytes) is the same on every node whatever
// encoding quirks a sender has; on sending they are spliced in without a parse.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "meshd/common/result.hpp"
#include "meshd/core/messages.hpp"

namespace meshd::app {

// Error code "malformed" naming what is wrong (unknown or repeated fields, truncated varint,
// a handshake message after the handshake, ...).
Result<core::Message> decode_message(std::span<const std::uint8_t> frame_payload);
std::string encode_message(const core::Message& message);

// The signer named in a serialized Envelope's body (field 1 of every body kind: Claim.origin,
// Retraction.origin, OperatorDecision.operator_id, MisbehaviourProof.reporter), read from the
// wire without decoding or verifying anything. Empty when the bytes do not name one. Only for
// scheduling (PushIntake): the signature check comes later.
std::string_view signer_of(std::string_view envelope);

}  // namespace meshd::app
