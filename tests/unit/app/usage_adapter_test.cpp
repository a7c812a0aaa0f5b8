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

}  // namespace
}  // namespace meshd::app
