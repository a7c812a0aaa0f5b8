#include "sensor/detectors/prefix_matcher.hpp"

#include <gtest/gtest.h>

#include <random>

namespace meshd::sensor {
namespace {

Prefix P(std::string_view s) {
  return *Prefix::parse(s);
}

TEST(PrefixMatcher, LongestPrefixWinsForV4AndV6) {
  std::vector<PrefixMatcher::Entry> entries{
      {P("10.0.0.0/8"), 1},         {P("10.1.0.0/16"), 2},   {P("10.1.2.0/24"), 3},
      {P("10.1.2.3"), 4},           {P("2001:db8::/32"), 5}, {P("2001:db8:1::/48"), 6},
      {P("255.255.255.255/32"), 7}, {P("ffff::/16"), 8},     {P("10.0.0.0/8"), 99}};
  PrefixMatcher m(entries);
  EXPECT_EQ(m.size(), 8u);  // the duplicate /8 is dropped, first value kept

  auto expect = [&](std::string_view q, std::optional<std::uint32_t> value,
                    std::string_view prefix = "") {
    auto r = m.longest_match(P(q));
    ASSERT_EQ(r.has_value(), value.has_value()) << q;
    if (value) {
      EXPECT_EQ(r->value, *value) << q;
      EXPECT_EQ(r->prefix, P(prefix)) << q;
    }
  };
  expect("10.1.2.3", 4, "10.1.2.3/32");
  expect("10.1.2.4", 3, "10.1.2.0/24");
  expect("10.1.3.4", 2, "10.1.0.0/16");
  expect("10.200.0.1", 1, "10.0.0.0/8");
  expect("11.0.0.1", std::nullopt);
  expect("255.255.255.255", 7, "255.255.255.255/32");
  expect("255.255.255.254", std::nullopt);
  expect("2001:db8:1::1", 6, "2001:db8:1::/48");
  expect("2001:db8:2::1", 5, "2001:db8::/32");
  expect("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 8, "ffff::/16");
  // Same numeric value in the other family must not match (10.1.2.3 vs ::a01:203).
  expect("::a01:203", std::nullopt);
  // A prefix query only matches entries that contain all of it.
  expect("10.1.2.0/23", 2, "10.1.0.0/16");
}

TEST(PrefixMatcher, SlashZeroMatchesEverythingOfItsFamily) {
  std::vector<PrefixMatcher::Entry> entries{{P("0.0.0.0/0"), 1}};
  PrefixMatcher m(entries);
  EXPECT_TRUE(m.longest_match(P("1.2.3.4")));
  EXPECT_TRUE(m.longest_match(P("255.255.255.255")));
  EXPECT_FALSE(m.longest_match(P("::1")));
}

TEST(PrefixMatcher, AgreesWithBruteForceOnRandomFeed) {
  std::mt19937_64 rng(42);
  std::vector<PrefixMatcher::Entry> entries;
  for (std::uint32_t i = 0; i < 20000; ++i) {
    const std::uint8_t lens[] = {8, 16, 20, 24, 28, 32};
    entries.push_back(
        {Prefix::v4(static_cast<std::uint32_t>(rng()) & 0x0f0fffff, lens[rng() % 6]), i});
  }
  PrefixMatcher m(entries);
  for (int q = 0; q < 400; ++q) {
    // Half the queries are inside some entry, half random.
    std::uint32_t a =
        q % 2 ? static_cast<std::uint32_t>(rng()) & 0x0f0fffff
              : static_cast<std::uint32_t>(to_addr(entries[rng() % entries.size()].prefix)) +
                    static_cast<std::uint32_t>(rng() % 3);
    auto query = Prefix::v4(a, 32);
    const PrefixMatcher::Entry* best = nullptr;
    for (const auto& e : entries)
      if (e.prefix.contains(query) && (!best || e.prefix.len > best->prefix.len)) best = &e;
    auto got = m.longest_match(query);
    ASSERT_EQ(got.has_value(), best != nullptr) << query.to_string();
    if (best) {
      EXPECT_EQ(got->prefix, best->prefix) << query.to_string();
    }
  }
}

}  // namespace
}  // namespace meshd::sensor
