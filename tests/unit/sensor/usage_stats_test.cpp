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

TEST(UsageStats, EvidenceCountsDistinctSourcesInTheWindow) {
  UsageStats u(config(kMinute, 5));
  ConnectEvent ev;
  ev.destination = P("198.51.100.4");
  ev.at = kT0;
  ev.cgroup_id = 7;
  u.record(ev);
  ev.at = kT0 + 10'000;
  u.record(ev);  // the same cgroup again
  ev.cgroup_id = 0;
  ev.tgid = 7;  // a process with the same number as the cgroup is another source
  ev.at = kT0 + 20'000;
  u.record(ev);
  ev.verdict = Verdict::denied;  // our own block's denials are no evidence at all
  ev.tgid = 99;
  u.record(ev);
  UsageEvidence e = u.evidence(P("198.51.100.0/24"), kT0 + 30'000);
  EXPECT_EQ(e.flows, 3u);
  EXPECT_EQ(e.sources, 2u);
  EXPECT_EQ(e.span_ms, 20'000);
  EXPECT_FALSE(e.flagged);
  // Five minutes later everything has left the window.
  e = u.evidence(P("198.51.100.0/24"), kT0 + 6 * kMinute);
  EXPECT_EQ(e.flows, 0u);
  EXPECT_EQ(e.sources, 0u);
  EXPECT_EQ(e.span_ms, 0);
}

TEST(UsageStats, SourcesSaturatePerAddressWithoutGrowing) {
  UsageStats u;
  for (std::uint64_t s = 1; s <= 50; ++s)
    u.record(P("192.0.2.9"), kT0 + static_cast<TimeMs>(s), 1, s);
  const UsageEvidence e = u.evidence(P("192.0.2.9"), kT0 + 100);
  EXPECT_EQ(e.flows, 50u);
  EXPECT_EQ(e.sources, UsageStats::kMaxSourcesPerAddress);
}

TEST(UsageStats, FlagsLastTheWindowAndCoverOverlappingTargets) {
  UsageStats u(config(kMinute, 5));
  u.record(P("203.0.113.5"), kT0, 4, 1);
  u.flag(P("203.0.113.0/28"), kT0);
  EXPECT_TRUE(u.evidence(P("203.0.113.5"), kT0 + kMinute).flagged);
  EXPECT_TRUE(u.evidence(P("203.0.0.0/16"), kT0 + kMinute).flagged);
  EXPECT_FALSE(u.evidence(P("203.0.113.64/26"), kT0 + kMinute).flagged);
  u.expire(kT0 + 6 * kMinute);
  EXPECT_FALSE(u.evidence(P("203.0.113.5"), kT0 + 6 * kMinute).flagged);
}

TEST(UsageStats, TakeChangedNamesEachMovedDestinationOnceNotEachFlow) {
  UsageStats u(config(kMinute, 10));
  EXPECT_TRUE(u.take_changed().destinations.empty());
  for (int i = 0; i < 50; ++i) u.record(P("192.0.2.1"), kT0 + i, 1, 7);
  u.record(P("192.0.2.9"), kT0, 2, 8);
  u.record(P("2001:db8::5"), kT0, 1, 8);
  auto c = u.take_changed();
  EXPECT_FALSE(c.overflow);
  EXPECT_EQ(c.destinations,
            (std::vector<Prefix>{P("192.0.2.1"), P("192.0.2.9"), P("2001:db8::5")}));
  EXPECT_TRUE(u.take_changed().destinations.empty());  // taken: nothing moved since

  // A bucket leaving the window moves the evidence too (it falls), also for an address
  // that is then forgotten.
  u.record(P("192.0.2.1"), kT0 + 5 * kMinute, 1, 7);
  (void)u.take_changed();
  u.expire(kT0 + 10 * kMinute);  // bucket 0 leaves: 192.0.2.1 keeps bucket 5, the rest go
  c = u.take_changed();
  EXPECT_EQ(c.destinations,
            (std::vector<Prefix>{P("192.0.2.1"), P("192.0.2.9"), P("2001:db8::5")}));
  u.expire(kT0 + 10 * kMinute + 1);  // nothing left to drop
  EXPECT_TRUE(u.take_changed().destinations.empty());
}

TEST(UsageStats, TakeChangedOverflowsToCheckEverythingPastItsBound) {
  UsageStats u(config(kMinute, 10));
  for (std::size_t i = 0; i <= UsageStats::kMaxChanged; ++i)
    u.record(from_addr(Family::v4, 0x0a000000u + i, 32), kT0, 1);
  auto c = u.take_changed();
  EXPECT_TRUE(c.overflow);
  EXPECT_TRUE(c.destinations.empty());  // "everything" replaces the list
  u.record(P("192.0.2.1"), kT0, 1);
  c = u.take_changed();  // the flag was taken with the list
  EXPECT_FALSE(c.overflow);
  EXPECT_EQ(c.destinations, std::vector<Prefix>{P("192.0.2.1")});
}

}  // namespace
}  // namespace meshd::sensor
