// EventLog (the daemon's recent event log) against a deque of strings: lines of mixed sizes,
// including ones larger than a chunk, across many chunk turnovers.
#include "meshd/app/event_log.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>

namespace meshd::app {
namespace {

TEST(EventLog, KeepsTheNewestLinesInOrder) {
  EventLog log(300);
  std::deque<std::string> ref;
  std::mt19937 rng(3);
  EXPECT_TRUE(log.empty());
  for (int i = 0; i < 20000; ++i) {
    const std::size_t len = i % 997 == 0 ? 70000 + rng() % 1000 : rng() % 400;
    std::string line = "{\"n\":" + std::to_string(i) + "}" + std::string(len, 'x');
    log.push(line);
    ref.push_back(std::move(line));
    if (ref.size() > 300) ref.pop_front();
    ASSERT_EQ(log.size(), ref.size());
    if (i % 250 == 0 || i > 19900) {
      for (std::size_t k = 0; k < ref.size(); ++k) ASSERT_EQ(log[k], ref[k]) << i << " " << k;
    }
  }
}

TEST(EventLog, AnEmptyLineIsALine) {
  EventLog log(2);
  log.push("");
  log.push("a");
  log.push("");
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0], "a");
  EXPECT_EQ(log[1], "");
}

}  // namespace
}  // namespace meshd::app
