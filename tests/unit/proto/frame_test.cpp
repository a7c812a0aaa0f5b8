#include "proto/frame.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace meshd::proto {
namespace {

using Payload = std::vector<std::uint8_t>;

Payload bytes_of(std::string_view s) {
  return Payload(s.begin(), s.end());
}

// Drains every complete frame currently available.
std::vector<Payload> drain(FrameDecoder& d) {
  std::vector<Payload> out;
  for (;;) {
    auto r = d.next();
    EXPECT_TRUE(r.has_value()) << r.error().message;
    if (!r || !r->has_value()) return out;
    out.push_back(std::move(**r));
  }
}

TEST(Frame, HeaderIsBigEndianLength) {
  Payload p(0x0102, 7);
  auto f = encode_frame(p);
  ASSERT_EQ(f.size(), 4u + 0x0102);
  EXPECT_EQ(f[0], 0);
  EXPECT_EQ(f[1], 0);
  EXPECT_EQ(f[2], 1);
  EXPECT_EQ(f[3], 2);
}

TEST(Frame, RoundTripOfProtobufFrame) {
  v1::Frame frame;
  frame.mutable_ping()->set_nonce(42);
  auto wire = encode_frame(frame);
  FrameDecoder d;
  d.feed(wire);
  auto got = drain(d);
  ASSERT_EQ(got.size(), 1u);
  auto parsed = parse_frame(got[0]);
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_TRUE(parsed->has_ping());
  EXPECT_EQ(parsed->ping().nonce(), 42u);
  EXPECT_EQ(d.stats().frames, 1u);
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(Frame, EverySplitPointOfAMultiFrameStreamYieldsTheSameFrames) {
  const std::vector<Payload> frames = {bytes_of("first"), Payload{}, bytes_of("third frame"),
                                       Payload(300, 0xab), bytes_of("x")};
  Payload stream;
  for (const auto& f : frames) {
    auto e = encode_frame(f);
    stream.insert(stream.end(), e.begin(), e.end());
  }
  // One split point: every prefix/suffix pair.
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    FrameDecoder d;
    std::vector<Payload> got;
    d.feed(Bytes(stream.data(), cut));
    for (auto& p : drain(d)) got.push_back(std::move(p));
    d.feed(Bytes(stream.data() + cut, stream.size() - cut));
    for (auto& p : drain(d)) got.push_back(std::move(p));
    ASSERT_EQ(got, frames) << "cut at " << cut;
  }
  // Byte by byte.
  FrameDecoder d;
  std::vector<Payload> got;
  for (std::uint8_t b : stream) {
    d.feed(Bytes(&b, 1));
    for (auto& p : drain(d)) got.push_back(std::move(p));
  }
  EXPECT_EQ(got, frames);
  EXPECT_EQ(d.stats().frames, frames.size());
}

TEST(Frame, OversizeLengthPrefixIsTypedErrorAndPoisonsDecoder) {
  FrameDecoder d(1024);
  Payload ok(1024, 1);
  d.feed(encode_frame(ok));
  auto first = d.next();
  ASSERT_TRUE(first && first->has_value()) << "a frame of exactly the limit is accepted";

  Payload big(1025, 2);
  d.feed(encode_frame(big));
  auto r = d.next();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "frame_too_large");
  EXPECT_NE(r.error().message.find("1025"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("1024"), std::string::npos) << r.error().message;
  EXPECT_TRUE(d.poisoned());
  EXPECT_EQ(d.stats().oversize, 1u);
  // Poisoned: further input is ignored and the error repeats.
  d.feed(encode_frame(ok));
  auto again = d.next();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, "frame_too_large");
}

TEST(Frame, OversizeIsDetectedFromTheHeaderAlone) {
  FrameDecoder d;  // default 1 MiB
  std::uint8_t header[4] = {0xff, 0xff, 0xff, 0xff};
  d.feed(header);
  auto r = d.next();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "frame_too_large");
  EXPECT_NE(r.error().message.find("4294967295"), std::string::npos);
  EXPECT_NE(r.error().message.find("1048576"), std::string::npos);
}

TEST(Frame, TruncatedStreamReportsNothingComplete) {
  auto wire = encode_frame(bytes_of("a complete payload"));
  for (std::size_t len = 0; len < wire.size(); ++len) {
    FrameDecoder d;
    d.feed(Bytes(wire.data(), len));
    auto r = d.next();
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->has_value()) << "truncated at " << len;
    EXPECT_EQ(d.buffered(), len);
  }
}

TEST(Frame, ZeroLengthFrameIsDeliveredButIsNotAValidFrameMessage) {
  FrameDecoder d;
  d.feed(encode_frame(Payload{}));
  auto got = drain(d);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].empty());
  auto parsed = parse_frame(got[0]);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, "undecodable_frame");
}

TEST(Frame, GarbagePayloadIsUndecodable) {
  Payload garbage = {0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
  auto r = parse_frame(garbage);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "undecodable_frame");
  EXPECT_NE(r.error().message.find("7 bytes"), std::string::npos) << r.error().message;
  // A truncated embedded message (field 1, length 10, only 2 bytes follow).
  Payload truncated = {0x0a, 0x0a, 0x01, 0x02};
  EXPECT_FALSE(parse_frame(truncated));
}

}  // namespace
}  // namespace meshd::proto
