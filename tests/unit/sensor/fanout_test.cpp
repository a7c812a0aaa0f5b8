#include "sensor/detectors/fanout.hpp"

#include <gtest/gtest.h>

namespace meshd::sensor {
namespace {

ConnectEvent ev(std::uint64_t cgroup, std::uint32_t dst, std::uint16_t port, TimeMs at) {
  ConnectEvent e;
  e.at = at;
  e.cgroup_id = cgroup;
  e.tgid = 42;
  e.comm = "scanner";
  e.destination = Prefix::v4(dst, 32);
  e.port = port;
  e.protocol = Protocol::tcp;
  return e;
}

FanoutConfig small() {
  FanoutConfig c;
  c.window_ms = 10'000;
  c.max_destinations = 10;
  c.max_ports = 5;
  return c;
}

TEST(Fanout, FiresOnceWhenDistinctDestinationsExceedTheLimitInTheWindow) {
  FanoutDetector det(small());
  WorkloadIdentity who;
  who.cgroup_path = "/kubepods/pod1/abc";
  std::vector<Detection> all;
  for (std::uint32_t i = 0; i < 30; ++i)
    for (auto& d : det.on_event(ev(1, 0x0a000000 + i, 80, 100 * i), who)) all.push_back(d);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].detector, "fanout");
  EXPECT_EQ(all[0].prefix, Prefix::v4(0x0a000000 + 10, 32));  // the 11th destination
  EXPECT_EQ(all[0].direction, Direction::egress);
  EXPECT_EQ(all[0].identity.cgroup_path, "/kubepods/pod1/abc");
  EXPECT_NE(all[0].reason.find("11 distinct destinations"), std::string::npos) << all[0].reason;
  EXPECT_EQ(det.stats().fanout_alerts, 1u);
}

TEST(Fanout, RepeatedContactsToFewDestinationsDoNotFire) {
  FanoutDetector det(small());
  for (int i = 0; i < 1000; ++i)
    EXPECT_TRUE(det.on_event(ev(1, 0x0a000000 + i % 10, 443, i), {}).empty());
}

TEST(Fanout, DestinationsSpreadBeyondTheWindowDoNotFire) {
  FanoutDetector det(small());
  // 30 distinct destinations, one every 2 s: at most 5 inside any 10 s window.
  for (std::uint32_t i = 0; i < 30; ++i)
    EXPECT_TRUE(det.on_event(ev(1, 0x0a000000 + i, 80, 2000 * i), {}).empty()) << i;
}

TEST(Fanout, ReArmsAfterTheCountFallsAndFiresAgain) {
  FanoutDetector det(small());
  int fired = 0;
  for (std::uint32_t i = 0; i < 15; ++i)
    fired += det.on_event(ev(1, 0x0a000000 + i, 80, i), {}).size();
  EXPECT_EQ(fired, 1);
  // After a quiet window the state has drained; a second burst alerts again.
  for (std::uint32_t i = 0; i < 15; ++i)
    fired += det.on_event(ev(1, 0x0b000000 + i, 80, 60'000 + i), {}).size();
  EXPECT_EQ(fired, 2);
}

TEST(Fanout, CgroupsAreCountedSeparately) {
  FanoutDetector det(small());
  // 8 destinations each from 3 cgroups: 24 in total, but no single cgroup exceeds 10.
  for (std::uint64_t cg = 1; cg <= 3; ++cg)
    for (std::uint32_t i = 0; i < 8; ++i)
      EXPECT_TRUE(det.on_event(ev(cg, 0x0a000000 + i + 100 * cg, 80, i), {}).empty());
}

TEST(Fanout, PortScanOfOneHostFires) {
  FanoutDetector det(small());
  std::vector<Detection> all;
  for (std::uint16_t p = 1; p <= 20; ++p)
    for (auto& d : det.on_event(ev(1, 0xc0000207, p, p), {})) all.push_back(d);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].detector, "scan");
  EXPECT_EQ(all[0].prefix, Prefix::v4(0xc0000207, 32));
  EXPECT_NE(all[0].reason.find("6 distinct ports"), std::string::npos) << all[0].reason;
}

TEST(Fanout, KnownBadPortIsReportedOncePerWindow) {
  FanoutDetector det(small());
  auto first = det.on_event(ev(1, 0xcb007107, 4444, 0), {});
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].detector, "bad_port");
  EXPECT_EQ(first[0].prefix, Prefix::v4(0xcb007107, 32));
  EXPECT_NE(first[0].reason.find(":4444"), std::string::npos);
  EXPECT_TRUE(det.on_event(ev(1, 0xcb007107, 4444, 5000), {}).empty());
  EXPECT_EQ(det.on_event(ev(1, 0xcb007107, 4444, 10'000), {}).size(), 1u);
  EXPECT_EQ(det.on_event(ev(2, 0xcb007107, 31337, 10'000), {}).size(), 1u);
  EXPECT_TRUE(det.on_event(ev(1, 0xcb007107, 443, 10'000), {}).empty());
  EXPECT_EQ(det.stats().bad_port_alerts, 3u);
}

TEST(Fanout, BadPortsAreConfigurable) {
  FanoutConfig c = small();
  c.bad_ports = {9999};
  FanoutDetector det(c);
  EXPECT_TRUE(det.on_event(ev(1, 1, 4444, 0), {}).empty());
  EXPECT_EQ(det.on_event(ev(1, 1, 9999, 0), {}).size(), 1u);
}

TEST(Fanout, TrackedCgroupsAreBounded) {
  FanoutConfig c = small();
  c.max_cgroups = 2;
  FanoutDetector det(c);
  det.on_event(ev(1, 1, 80, 0), {});
  det.on_event(ev(2, 1, 80, 0), {});
  det.on_event(ev(3, 1, 80, 0), {});  // table full, nothing idle yet
  EXPECT_EQ(det.stats().untracked_events, 1u);
  det.on_event(ev(3, 1, 80, 20'000), {});  // 1 and 2 are idle now and get evicted
  EXPECT_EQ(det.stats().untracked_events, 1u);
  det.expire(20'000);
  EXPECT_EQ(det.stats().tracked_cgroups, 1u);
}

}  // namespace
}  // namespace meshd::sensor
