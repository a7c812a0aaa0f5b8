// libprotobuf's own log lines for hostile input (invalid UTF-8 in a string field) go through
// meshd's rate-limited handler: one log line per interval, every message counted, nothing on
// stderr from libprotobuf itself.
#include "meshd/app/protobuf_log.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>
#include <string>
#include <vector>

#include "meshd/app/frames.hpp"

namespace meshd::app {
namespace {

// A Frame carrying a RangeRequest (field 3) whose string `origin` is the single byte 0xff:
// not UTF-8, so libprotobuf refuses the parse and logs an ERROR line for it.
std::vector<std::uint8_t> frame_with_invalid_utf8() {
  return {0x1a, 0x03, 0x0a, 0x01, 0xff};
}

int count_lines(const std::string& text, const std::string& needle) {
  int n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + needle.size()))
    ++n;
  return n;
}

TEST(ProtobufLog, FloodOfInvalidUtf8FramesIsCountedAndLoggedOncePerInterval) {
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>(
      "protobuf_log_test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
  logger->set_pattern("%l %v");
  spdlog::set_default_logger(logger);
  const ProtobufLogStats before = protobuf_log_stats();
  const auto frame = frame_with_invalid_utf8();
  auto refused = [&] {
    auto m = decode_message(frame);
    ASSERT_FALSE(m.has_value()) << "a string field with invalid UTF-8 must not decode";
    EXPECT_EQ(m.error().code, "malformed");
  };

  testing::internal::CaptureStderr();
  // The intervals are switched instead of waited for, so the test does not depend on speed:
  // the first frame is logged, the next 1,000 fall in one (hour-long) interval, and the one
  // after the interval ends is logged naming the 1,000 held back.
  install_protobuf_log_handler(std::chrono::milliseconds(0));
  refused();
  install_protobuf_log_handler(std::chrono::hours(1));
  for (int i = 0; i < 1000; ++i) refused();
  install_protobuf_log_handler(std::chrono::milliseconds(0));
  refused();
  const std::string err = testing::internal::GetCapturedStderr();
  spdlog::set_default_logger(previous);

  const ProtobufLogStats after = protobuf_log_stats();
  EXPECT_EQ(after.logged - before.logged, 2u) << log.str();
  EXPECT_EQ(after.suppressed - before.suppressed, 1000u);
  EXPECT_EQ(err.find("libprotobuf"), std::string::npos) << "libprotobuf wrote to stderr: " << err;

  const std::string text = log.str();
  EXPECT_EQ(count_lines(text, "invalid UTF-8"), 2) << text;
  EXPECT_EQ(count_lines(text, "error libprotobuf"), 2) << text;
  EXPECT_NE(text.find("1000 more held back"), std::string::npos) << text;
}

}  // namespace
}  // namespace meshd::app
