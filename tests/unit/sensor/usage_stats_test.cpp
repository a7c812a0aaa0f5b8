#include "sensor/usage_stats.hpp"

#include <gtest/gtest.h>

namespace meshd::sensor {
namespace {

Prefix P(std::string_view s) {
  return *Prefix::parse(s);
}
constexpr TimeMs kT0 = 1'699'999'980'000;  // a realistic wall clock, minute aligned
static_assert(kT0 % kMinute == 0);

UsageConfig config(DurationMs bucket_ms, int buckets, std::size_t max_addresses = 1'000'000) {
  UsageConfig c;
  c.bucket_ms = bucket_ms;
  c.buckets = buckets;
  c.max_addresses = max_addresses;
  return c;
}

TEST(UsageStats, CountsFlowsInsideAPrefix) {
  UsageStats u;
  u.record(P("10.1.2.3"), kT0, 5);
  u.record(P("10.1.2.200"), kT0, 2);
  u.record(P("10.1.3.1"), kT0, 7);
  u.record(P("10.2.0.1"), kT0, 11);
  u.record(P("255.255.255.255"), kT0, 1);
  EXPECT_EQ(u.flows_to(P("10.1.2.3"), kT0), 5u);
  EXPECT_EQ(u.flows_to(P("10.1.2.0/24"), kT0), 7u);
  EXPECT_EQ(u.flows_to(P("10.1.0.0/16"), kT0), 14u);
  EXPECT_EQ(u.flows_to(P("10.0.0.0/8"), kT0), 25u);
  EXPECT_EQ(u.flows_to(P("0.0.0.0/0"), kT0), 26u);
  EXPECT_EQ(u.flows_to(P("255.255.255.0/24"), kT0), 1u);
  EXPECT_EQ(u.flows_to(P("10.1.4.0/24"), kT0), 0u);
}

TEST(UsageStats, FamiliesAreSeparate) {
  UsageStats u;
  u.record(P("10.1.2.3"), kT0, 1);
  u.record(P("::a01:203"), kT0, 10);  // the same 32-bit value as 10.1.2.3, in IPv6
  u.record(P("2001:db8::1"), kT0, 100);
  EXPECT_EQ(u.flows_to(P("10.1.2.3"), kT0), 1u);
  EXPECT_EQ(u.flows_to(P("::/0"), kT0), 110u);
  EXPECT_EQ(u.flows_to(P("2001:db8::/32"), kT0), 100u);
  EXPECT_EQ(u.flows_to(P("0.0.0.0/0"), kT0), 1u);
}

TEST(UsageStats, SlidingWindowForgetsOldBuckets) {
  UsageStats u(config(kMinute, 10));
  u.record(P("192.0.2.1"), kT0, 3);                // bucket 0
  u.record(P("192.0.2.1"), kT0 + 5 * kMinute, 4);  // bucket 5
  EXPECT_EQ(u.flows_to(P("192.0.2.1"), kT0 + 5 * kMinute), 7u);
  EXPECT_EQ(u.flows_to(P("192.0.2.1"), kT0 + 9 * kMinute + 59'999), 7u);
  EXPECT_EQ(u.flows_to(P("192.0.2.1"), kT0 + 10 * kMinute), 4u);  // bucket 0 left the window
  EXPECT_EQ(u.flows_to(P("192.0.2.1"), kT0 + 15 * kMinute), 0u);
  // Expiry drops addresses with nothing left in the window.
  u.expire(kT0 + 15 * kMinute);
  EXPECT_EQ(u.counters().addresses, 0u);
  // A late event older than the window is ignored and counted.
  u.record(P("192.0.2.1"), kT0, 1);
  EXPECT_EQ(u.counters().ignored_old, 1u);
}

TEST(UsageStats, OutOfOrderEventsLandInTheirBucket) {
  UsageStats u(config(1000, 5));
  u.record(P("192.0.2.1"), kT0 + 3000, 1);
  u.record(P("192.0.2.1"), kT0 + 1000, 1);
  u.record(P("192.0.2.1"), kT0 + 2000, 1);
  u.record(P("192.0.2.1"), kT0 + 1500, 1);
  EXPECT_EQ(u.flows_to(P("192.0.2.1"), kT0 + 3000), 4u);
  EXPECT_EQ(u.flows_to(P("192.0.2.1"), kT0 + 6000), 2u);  // window (2000, 6000]: buckets 2, 3
}

TEST(UsageStats, DeniedConnectsAreNotUsage) {
  UsageStats u;
  ConnectEvent e;
  e.at = kT0;
  e.destination = P("203.0.113.7");
  u.record(e);
  e.verdict = Verdict::denied;
  u.record(e);
  EXPECT_EQ(u.flows_to(P("203.0.113.7"), kT0), 1u);
  EXPECT_EQ(u.counters().ignored_denied, 1u);
}

TEST(UsageStats, AddressTableIsBounded) {
  UsageStats u(config(kMinute, 10, 2));
  u.record(P("192.0.2.1"), kT0);
  u.record(P("192.0.2.2"), kT0);
  u.record(P("192.0.2.3"), kT0);
  u.record(P("192.0.2.1"), kT0);  // existing addresses still count
  EXPECT_EQ(u.counters().dropped_full, 1u);
  EXPECT_EQ(u.flows_to(P("192.0.2.0/24"), kT0), 3u);
}

}  // namespace
}  // namespace meshd::sensor
