// The sensor -> detector path without a kernel: events pushed into a SyntheticEventSource are
// drained the way the daemon drains the ring buffer and turned into detections.
#include "sensor/synthetic_events.hpp"

#include <poll.h>

#include <gtest/gtest.h>

#include "sensor/detectors/fanout.hpp"

namespace meshd::sensor {
namespace {

constexpr TimeMs kT0 = 1'700'000'000'000;

ConnectEvent connect_to(std::string_view ip, std::uint16_t port, TimeMs at) {
  ConnectEvent e;
  e.at = at;
  e.cgroup_id = 7;
  e.tgid = 1234;
  e.comm = "scanner";
  e.destination = *Prefix::parse(ip);
  e.port = port;
  e.protocol = Protocol::tcp;
  return e;
}

bool readable(int fd) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

TEST(SyntheticEventSource, FdIsReadableExactlyWhileEventsWait) {
  auto src = SyntheticEventSource::create();
  ASSERT_TRUE(src) << src.error().message;
  EventSource& events = *src;
  EXPECT_FALSE(readable(events.readable_fd()));
  src->push(connect_to("192.0.2.1", 443, kT0));
  src->push(connect_to("192.0.2.2", 443, kT0));
  EXPECT_TRUE(readable(events.readable_fd()));
  std::vector<ConnectEvent> out;
  EXPECT_EQ(events.poll(out, 1, 0), 1u);
  EXPECT_TRUE(readable(events.readable_fd()));  // one still waiting
  EXPECT_EQ(events.poll(out, 10, 0), 1u);
  EXPECT_FALSE(readable(events.readable_fd()));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].destination.to_string(), "192.0.2.2");
  EXPECT_EQ(events.poll(out, 10, 0), 0u);
  EXPECT_EQ(events.next_drain_in_ms(), -1);
}

TEST(SyntheticEventSource, CountsLostEvents) {
  auto src = SyntheticEventSource::create();
  ASSERT_TRUE(src);
  src->lose(3);
  EXPECT_EQ(src->lost_events(), 3u);
}

TEST(SyntheticEventSource, DrainedEventsReachTheFanoutDetector) {
  auto src = SyntheticEventSource::create();
  ASSERT_TRUE(src);
  FanoutConfig config;
  config.max_destinations = 3;
  FanoutDetector fanout(config);
  for (int i = 1; i <= 10; ++i)
    src->push(connect_to("198.51.100." + std::to_string(i), 443, kT0 + i));

  // The daemon's drain loop: poll without waiting until the source is empty.
  EventSource& events = *src;
  std::vector<Detection> detections;
  std::vector<ConnectEvent> batch;
  while (events.poll(batch, 4, 0) > 0) {
    for (const auto& ev : batch)
      for (auto& d : fanout.on_event(ev, WorkloadIdentity{})) detections.push_back(d);
    batch.clear();
  }
  ASSERT_FALSE(detections.empty()) << "10 destinations in a row must exceed a fan-out of 3";
  EXPECT_EQ(detections.front().detector, "fanout");
  EXPECT_FALSE(readable(events.readable_fd()));
}

}  // namespace
}  // namespace meshd::sensor
