#include "meshd/app/frames.hpp"

#include "proto/wire.pb.h"

namespace meshd::app {
namespace {

constexpr std::uint32_t kLen = 2;     // protobuf wire type: length-delimited
constexpr std::uint32_t kVarint = 0;  // protobuf wire type: varint

// Minimal protobuf wire-format reader: enough to slice length-delimited fields.
class WireReader {
 public:
  explicit WireReader(std::span<const std::uint8_t> b) : b_(b) {}
  bool done() const { return pos_ >= b_.size(); }
  bool varint(std::uint64_t& out) {
    out = 0;
    for (int shift = 0; shift < 64 && pos_ < b_.size(); shift += 7) {
      std::uint8_t byte = b_[pos_++];
      out |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return true;
    }
    return false;
  }
  bool field(std::uint32_t& number, std::uint32_t& type) {
    std::uint64_t key;
    if (!varint(key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff) return false;
    number = static_cast<std::uint32_t>(key >> 3);
    type = static_cast<std::uint32_t>(key & 7);
    return true;
  }
  bool bytes(std::span<const std::uint8_t>& out) {
    std::uint64_t n;
    if (!varint(n) || n > b_.size() - pos_) return false;
    out = b_.subspan(pos_, n);
    pos_ += n;
    return true;
  }

 private:
  std::span<const std::uint8_t> b_;
  std::size_t pos_ = 0;
};

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void put_bytes_field(std::string& out, std::uint32_t number, std::string_view bytes) {
  put_varint(out, (number << 3) | kLen);
  put_varint(out, bytes.size());
  out += bytes;
}

std::unexpected<Error> malformed(std::string why) {
  return fail("malformed", std::move(why));
}

core::Envelope to_envelope(std::span<const std::uint8_t> b) {
  return core::make_envelope(std::string(reinterpret_cast<const char*>(b.data()), b.size()));
}

Result<core::Message> decode_range_response(std::span<const std::uint8_t> b) {
  core::RangeResponse r;
  WireReader in(b);
  while (!in.done()) {
    std::uint32_t number, type;
    if (!in.field(number, type)) return malformed("range response: bad field key");
    if (number == 1 && type == kLen) {
      std::span<const std::uint8_t> env;
      if (!in.bytes(env)) return malformed("range response: truncated envelope");
      r.envelopes.push_back(to_envelope(env));
    } else if (number == 2 && type == kVarint) {
      std::uint64_t v;
      if (!in.varint(v)) return malformed("range response: truncated flag");
      r.truncated = v != 0;
    } else {
      return malformed("range response: unexpected field " + std::to_string(number));
    }
  }
  return r;
}

}  // namespace

Result<core::Message> decode_message(std::span<const std::uint8_t> payload) {
  WireReader in(payload);
  std::uint32_t number, type;
  if (!in.field(number, type)) return malformed("frame: empty or bad field key");
  if (type != kLen)
    return malformed("frame: field " + std::to_string(number) + " is not a message");
  std::span<const std::uint8_t> body;
  if (!in.bytes(body)) return malformed("frame: truncated field " + std::to_string(number));
  if (!in.done()) return malformed("frame: more than one payload field");
  auto parse = [&](auto& msg, const char* what) -> bool {
    (void)what;
    return msg.ParseFromArray(body.data(), static_cast<int>(body.size()));
  };
  switch (number) {
    case 1:
      if (body.empty()) return malformed("frame: empty envelope");
      return core::Push{to_envelope(body)};
    case 2: {
      v1::VersionVector vv;
      if (!parse(vv, "version vector")) return malformed("frame: undecodable version vector");
      auto entries = std::make_shared<std::vector<core::VersionEntry>>();
      entries->reserve(static_cast<std::size_t>(vv.entries_size()));
      for (const auto& e : vv.entries()) entries->push_back({e.origin(), e.max_contiguous_seq()});
      return core::VersionVector{std::move(entries)};
    }
    case 3: {
      v1::RangeRequest rr;
      if (!parse(rr, "range request")) return malformed("frame: undecodable range request");
      return core::RangeRequest{rr.origin(), rr.from_seq(), rr.to_seq()};
    }
    case 4:
      return decode_range_response(body);
    default:
      return malformed("frame: field " + std::to_string(number) + " is not a gossip message");
  }
}

std::string_view signer_of(std::string_view envelope) {
  auto field1 = [](std::span<const std::uint8_t> msg, std::uint32_t want,
                   std::span<const std::uint8_t>& out) {
    WireReader in(msg);
    while (!in.done()) {
      std::uint32_t number, type;
      if (!in.field(number, type)) return false;
      if (type == kLen) {
        std::span<const std::uint8_t> b;
        if (!in.bytes(b)) return false;
        if (number == want) {
          out = b;
          return true;
        }
      } else if (type == kVarint) {
        std::uint64_t v;
        if (!in.varint(v)) return false;
      } else {
        return false;  // no fixed-width fields before the ones we want in these messages
      }
    }
    return false;
  };
  const std::span<const std::uint8_t> env(reinterpret_cast<const std::uint8_t*>(envelope.data()),
                                          envelope.size());
  std::span<const std::uint8_t> body, signer;
  if (!field1(env, 2, body) || !field1(body, 1, signer)) return {};
  return {reinterpret_cast<const char*>(signer.data()), signer.size()};
}

std::string encode_message(const core::Message& message) {
  std::string out;
  if (const auto* push = std::get_if<core::Push>(&message)) {
    out.reserve(push->envelope->size() + 6);
    put_bytes_field(out, 1, *push->envelope);
  } else if (const auto* vv = std::get_if<core::VersionVector>(&message)) {
    v1::Frame f;
    auto* m = f.mutable_version_vector();
    if (vv->entries) {
      for (const auto& e : *vv->entries) {
        auto* entry = m->add_entries();
        entry->set_origin(e.origin);
        entry->set_max_contiguous_seq(e.max_contiguous_seq);
      }
    }
    out = f.SerializeAsString();
  } else if (const auto* rr = std::get_if<core::RangeRequest>(&message)) {
    v1::Frame f;
    auto* m = f.mutable_range_request();
    m->set_origin(rr->origin);
    m->set_from_seq(rr->from_seq);
    m->set_to_seq(rr->to_seq);
    out = f.SerializeAsString();
  } else if (const auto* resp = std::get_if<core::RangeResponse>(&message)) {
    std::string inner;
    for (const auto& e : resp->envelopes) put_bytes_field(inner, 1, *e);
    if (resp->truncated) inner += std::string("\x10\x01", 2);
    put_bytes_field(out, 4, inner);
  }
  return out;
}

}  // namespace meshd::app
