#include "sensor/dryrun_enforcer.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

namespace meshd::sensor {
namespace {

Prefix P(std::string_view s) {
  return *Prefix::parse(s);
}

BlockRule rule(std::string_view p, std::uint64_t id, TimeMs expires,
               Direction d = Direction::both) {
  return BlockRule{P(p), d, id, expires};
}

struct DryrunEnforcerTest : ::testing::Test {
  std::ostringstream log_text;
  DryrunEnforcer e{std::make_shared<spdlog::logger>(
      "dryrun-test", std::make_shared<spdlog::sinks::ostream_sink_st>(log_text))};
};

TEST_F(DryrunEnforcerTest, RefusesProtectedPrefixesI1) {
  e.set_protected({P("10.0.0.0/16"), P("192.168.1.1"), P("fd00::/8")});
  std::vector<BlockRule> rules{
      rule("10.0.5.0/24", 1, 1000),     // inside a protected range
      rule("10.0.0.0/8", 2, 1000),      // contains a protected range
      rule("192.168.1.0/24", 3, 1000),  // contains a protected host
      rule("fd12::/16", 4, 1000),
      rule("10.1.0.0/16", 5, 1000),  // adjacent, not overlapping: fine
      rule("203.0.113.7", 6, 1000),
  };
  auto r = e.apply(rules, 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->applied, 2u);
  ASSERT_EQ(r->refused.size(), 4u);
  EXPECT_EQ(r->refused[0].first.rule_id, 1u);
  EXPECT_EQ(r->refused[0].second.code, "protected");
  EXPECT_EQ(r->refused[0].second.message,
            "10.0.5.0/24 overlaps protected prefix 10.0.0.0/16; refusing to block it");
  auto listed = e.list(0).value();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].prefix, P("10.1.0.0/16"));
  EXPECT_EQ(listed[1].prefix, P("203.0.113.7"));
  EXPECT_NE(log_text.str().find("refusing 10.0.5.0/24"), std::string::npos);
  EXPECT_NE(log_text.str().find("would block both 203.0.113.7 (rule 6)"), std::string::npos)
      << log_text.str();
}

TEST_F(DryrunEnforcerTest, RejectsInvalidDirection) {
  BlockRule bad = rule("203.0.113.7", 9, 1000);
  bad.direction = static_cast<Direction>(7);
  auto r = e.apply({&bad, 1}, 0);
  ASSERT_EQ(r->refused.size(), 1u);
  EXPECT_EQ(r->refused[0].second.code, "bad_direction");
}

TEST_F(DryrunEnforcerTest, RetimesRemovesAndExpires) {
  std::vector<BlockRule> rules{rule("203.0.113.7", 1, 1000), rule("198.51.100.0/24", 2, 5000),
                               rule("192.0.2.1", 3, 10)};
  EXPECT_EQ(e.apply(rules, 100)->applied, 2u);  // the third already expired
  BlockRule longer = rule("203.0.113.7", 1, 9000, Direction::egress);
  EXPECT_EQ(e.apply({&longer, 1}, 200)->applied, 1u);
  auto listed = e.list(2000).value();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[1].expires_at, 9000);
  EXPECT_EQ(listed[1].direction, Direction::egress);
  EXPECT_EQ(e.list(6000)->size(), 1u);
  std::vector<Prefix> gone{P("203.0.113.7"), P("1.1.1.1")};
  EXPECT_EQ(e.remove(gone).value(), 1u);
  EXPECT_TRUE(e.list(6000)->empty());
  EXPECT_EQ(e.stats().active_rules, 0u);
}

TEST_F(DryrunEnforcerTest, NewlyProtectedPrefixesAreDropped) {
  std::vector<BlockRule> rules{rule("203.0.113.0/24", 1, 1000), rule("198.51.100.0/24", 2, 1000)};
  ASSERT_TRUE(e.apply(rules, 0));
  e.set_protected({P("203.0.113.53")});
  auto listed = e.list(0).value();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].prefix, P("198.51.100.0/24"));
}

}  // namespace
}  // namespace meshd::sensor
