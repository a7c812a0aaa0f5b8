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

#include "meshd/common/result.hpp"
#include "meshd/core/messages.hpp"

namespace meshd::app {

// Error code "malformed" naming what is wrong (unknown or repeated fields, truncated varint,
// a handshake message after the handshake, ...).
Result<core::Message> decode_message(std::span<const std::uint8_t> frame_payload);
std::string encode_message(const core::Message& message);

}  // namespace meshd::app
