// Frame decoder, split at any byte. Input: two bytes that choose the chunk sizes, then the
// byte stream a peer sends.
// Properties: feeding the stream in chunks (including byte by byte) yields exactly the frames
// and the error of feeding it at once; the frames re-encode to a prefix of the stream; a
// payload that parses as a Frame re-serializes to bytes that parse to the same Frame
// (decode -> encode -> decode is stable).
#include <cstdint>
#include <string>
#include <vector>

#include "proto/frame.hpp"
#include "tests/fuzz/targets/fuzz_check.hpp"

namespace {

using namespace meshd::proto;
constexpr std::size_t kMax = 4096;

struct Outcome {
  std::vector<std::vector<std::uint8_t>> frames;
  std::string error;  // code of the poisoning error, if any
  std::size_t buffered = 0;
};

void drain(FrameDecoder& d, Outcome& out) {
  for (;;) {
    auto r = d.next();
    if (!r) {
      FUZZ_CHECK(d.poisoned());
      FUZZ_CHECK(r.error().code == "frame_too_large");
      out.error = r.error().code;
      return;
    }
    if (!r->has_value()) return;
    FUZZ_CHECK((*r)->size() <= kMax);
    out.frames.push_back(std::move(**r));
  }
}

Outcome decode(const std::uint8_t* data, std::size_t size, std::size_t a, std::size_t b) {
  FrameDecoder d(kMax);
  Outcome out;
  std::size_t pos = 0;
  bool odd = false;
  while (pos < size) {
    std::size_t n = std::min(size - pos, odd ? b : a);
    d.feed(Bytes(data + pos, n));
    pos += n;
    odd = !odd;
    drain(d, out);
  }
  drain(d, out);
  out.buffered = out.error.empty() ? d.buffered() : 0;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t a = data[0] % 9 + 1, b = data[1] % 23 + 1;
  data += 2;
  size -= 2;

  const Outcome whole = decode(data, size, size + 1, size + 1);
  const Outcome split = decode(data, size, a, b);
  const Outcome bytewise = decode(data, size, 1, 1);
  FUZZ_CHECK(split.frames == whole.frames && split.error == whole.error);
  FUZZ_CHECK(bytewise.frames == whole.frames && bytewise.error == whole.error);
  FUZZ_CHECK(split.buffered == whole.buffered && bytewise.buffered == whole.buffered);

  std::vector<std::uint8_t> reencoded;
  for (const auto& f : whole.frames) {
    auto e = encode_frame(Bytes(f.data(), f.size()));
    reencoded.insert(reencoded.end(), e.begin(), e.end());
  }
  FUZZ_CHECK(reencoded.size() <= size);
  FUZZ_CHECK(std::equal(reencoded.begin(), reencoded.end(), data));
  if (whole.error.empty()) FUZZ_CHECK(reencoded.size() + whole.buffered == size);

  for (const auto& f : whole.frames) {
    auto parsed = parse_frame(Bytes(f.data(), f.size()));
    if (!parsed) {
      FUZZ_CHECK(parsed.error().code == "undecodable_frame");
      continue;
    }
    FUZZ_CHECK(parsed->payload_case() != meshd::v1::Frame::PAYLOAD_NOT_SET);
    const std::string once = parsed->SerializeAsString();
    auto again = parse_frame(as_bytes(once));
    FUZZ_CHECK(again.has_value());
    FUZZ_CHECK(again->SerializeAsString() == once);
  }
  return 0;
}
