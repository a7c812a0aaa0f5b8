#include "proto/frame.hpp"

#include <cstring>
#include <limits>
#include <string>

namespace meshd::proto {

namespace {

void put_u32_be(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

std::uint32_t get_u32_be(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

}  // namespace

std::vector<std::uint8_t> encode_frame(Bytes payload) {
  std::vector<std::uint8_t> out(frame_header_size + payload.size());
  put_u32_be(out.data(), static_cast<std::uint32_t>(payload.size()));
  if (!payload.empty()) std::memcpy(out.data() + frame_header_size, payload.data(), payload.size());
  return out;
}

std::vector<std::uint8_t> encode_frame(const google::protobuf::MessageLite& message) {
  std::size_t size = message.ByteSizeLong();
  std::vector<std::uint8_t> out(frame_header_size + size);
  put_u32_be(out.data(), static_cast<std::uint32_t>(size));
  message.SerializeWithCachedSizesToArray(out.data() + frame_header_size);
  return out;
}

FrameDecoder::FrameDecoder(std::size_t max_frame_size) : max_(max_frame_size) {}

void FrameDecoder::feed(Bytes data) {
  if (poison_ || data.empty()) return;
  // Drop consumed bytes before growing, so the buffer stays about one frame large.
  if (pos_ > 0 && (pos_ == buf_.size() || pos_ >= buf_.size() / 2)) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
  }
  buf_.insert(buf_.end(), data.begin(), data.end());
}

Result<std::optional<std::vector<std::uint8_t>>> FrameDecoder::next() {
  if (poison_) return std::unexpected(*poison_);
  std::size_t avail = buf_.size() - pos_;
  if (avail < frame_header_size) return std::nullopt;
  std::uint32_t len = get_u32_be(buf_.data() + pos_);
  if (len > max_) {
    ++stats_.oversize;
    poison_ = Error{"frame_too_large", "frame length prefix says " + std::to_string(len) +
                                           " bytes, the limit is " + std::to_string(max_) +
                                           " bytes; closing the connection"};
    buf_.clear();
    buf_.shrink_to_fit();
    pos_ = 0;
    return std::unexpected(*poison_);
  }
  if (avail - frame_header_size < len) return std::nullopt;
  auto begin = buf_.begin() + static_cast<std::ptrdiff_t>(pos_ + frame_header_size);
  std::vector<std::uint8_t> payload(begin, begin + len);
  pos_ += frame_header_size + len;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  ++stats_.frames;
  stats_.payload_bytes += len;
  return payload;
}

Result<v1::Frame> parse_frame(Bytes payload) {
  v1::Frame frame;
  if (payload.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      !frame.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return fail("undecodable_frame", "frame payload of " + std::to_string(payload.size()) +
                                         " bytes is not a valid meshd.v1.Frame");
  }
  if (frame.payload_case() == v1::Frame::PAYLOAD_NOT_SET) {
    return fail("undecodable_frame", "frame payload of " + std::to_string(payload.size()) +
                                         " bytes carries no known message");
  }
  return frame;
}

}  // namespace meshd::proto
