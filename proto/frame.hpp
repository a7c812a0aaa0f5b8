// Length-prefixed framing: every message on a peer or control connection is
//   u32 big-endian payload length  ||  payload
// The payload is a serialized meshd.v1.Frame (peer, after the handshake: its secretstream
// ciphertext) or a ControlRequest/ControlResponse (control socket).
//
// Zero-length frames are legal at this layer and delivered as an empty payload (framing does
// not judge content); parse_frame() rejects them as `undecodable_frame` because an empty
// Frame carries no message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "meshd/common/result.hpp"
#include "proto/crypto.hpp"
#include "proto/wire.pb.h"

namespace meshd::proto {

constexpr std::size_t frame_header_size = 4;
constexpr std::size_t default_max_frame_size = 1024 * 1024;  // payload bytes

// Header + payload. Precondition: payload.size() < 2^32.
std::vector<std::uint8_t> encode_frame(Bytes payload);
// Serializes `message` and frames it.
std::vector<std::uint8_t> encode_frame(const google::protobuf::MessageLite& message);

// Incremental decoder: feed bytes as they arrive (split anywhere), then call next() until it
// yields nullopt (need more bytes). A length prefix above max_frame_size is error
// `frame_too_large` (names the size and the limit) and poisons the decoder: every later
// next() returns the same error and feed() ignores input; the connection must be closed.
class FrameDecoder {
 public:
  struct Stats {
    std::uint64_t frames = 0;         // complete frames returned
    std::uint64_t payload_bytes = 0;  // their payload bytes
    std::uint64_t oversize = 0;       // frame_too_large errors (0 or 1 per decoder)
  };

  explicit FrameDecoder(std::size_t max_frame_size = default_max_frame_size);

  void feed(Bytes data);
  // A complete payload, nullopt if more bytes are needed, or the poisoning error.
  Result<std::optional<std::vector<std::uint8_t>>> next();

  bool poisoned() const { return poison_.has_value(); }
  // Bytes received but not yet returned as frames (a truncated tail at close time).
  std::size_t buffered() const { return buf_.size() - pos_; }
  std::size_t max_frame_size() const { return max_; }
  const Stats& stats() const { return stats_; }

 private:
  std::size_t max_;
  std::vector<std::uint8_t> buf_;
  std::size_t pos_ = 0;  // start of unread data in buf_
  std::optional<Error> poison_;
  Stats stats_;
};

// Parses one payload as a Frame. `undecodable_frame` if the bytes are not a Frame or no
// payload field is set (the message says which and the payload size).
Result<v1::Frame> parse_frame(Bytes payload);

}  // namespace meshd::proto
