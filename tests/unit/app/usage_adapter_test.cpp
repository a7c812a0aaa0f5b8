// The daemon's one adapter from the sensor's flow counters to the trust engine's cost model.
#include "meshd/app/usage_adapter.hpp"

#include <gtest/gtest.h>

namespace meshd::app {
namespace {

Prefix P(std::string_view s) {
  return Prefix::parse(s).value();
}

constexpr TimeMs kT0 = 1'699'999'980'000;

TEST(UsageAdapter, FeedsTheTrustEngineThroughUsageSource) {
  sensor::UsageStats u;
  u.record(P("203.0.113.7"), kT0, 4);
  UsageAdapter adapter(u);
  const trust::UsageSource& engine_view = adapter;
  EXPECT_EQ(engine_view.flows(P("203.0.113.0/24"), kT0), 4u);
  EXPECT_EQ(engine_view.flows(P("198.51.100.0/24"), kT0), 0u);
  u.record(P("203.0.113.8"), kT0, 1);  // the adapter sees later records
  EXPECT_EQ(engine_view.flows(P("203.0.113.0/24"), kT0), 5u);
}

TEST(UsageAdapter, BenignEvidenceCountsSourcesSpanAndLocalFlags) {
  sensor::UsageStats u;
  u.record(P("203.0.113.7"), kT0, 3, /*source=*/101);
  u.record(P("203.0.113.7"), kT0 + 90'000, 2, /*source=*/202);
  u.record(P("203.0.113.9"), kT0 + 120'000, 1, /*source=*/101);
  UsageAdapter adapter(u);
  const trust::UsageSource& engine_view = adapter;
  const TimeMs now = kT0 + 150'000;
  const trust::BenignEvidence e = engine_view.evidence(P("203.0.113.0/24"), now);
  EXPECT_EQ(e.flows, engine_view.flows(P("203.0.113.0/24"), now));
  EXPECT_EQ(e.flows, 6u);
  EXPECT_EQ(e.sources, 2u);
  EXPECT_EQ(e.span_ms, 120'000);
  EXPECT_FALSE(e.flagged);
  // One source at one instant is no span, whatever its count.
  const trust::BenignEvidence one = engine_view.evidence(P("203.0.113.9"), now);
  EXPECT_EQ(one.sources, 1u);
  EXPECT_EQ(one.span_ms, 0);
  // A local detection on an address inside the target makes it flagged.
  u.flag(P("203.0.113.7"), now);
  EXPECT_TRUE(engine_view.evidence(P("203.0.113.0/24"), now).flagged);
  EXPECT_FALSE(engine_view.evidence(P("203.0.113.9"), now).flagged);
}

}  // namespace
}  // namespace meshd::app
