// Behavioural detector: fan-out / scanning and known-bad ports, per cgroup.
//
// A workload that contacts more than `max_destinations` distinct addresses, or more than
// `max_ports` distinct destination ports, within `window_ms` is behaving like a scanner or
// a worm. The detection names the destination that crossed the threshold (the claim is
// about where the traffic goes) and carries the workload identity, with a low default
// confidence: fan-out is a strong hint about the *source*, a weak one about any single
// destination. An alert fires once when a threshold is crossed and re-arms when the count
// falls back to half the threshold, so a scan produces one detection, not thousands.
//
// Known-bad ports (defaults, overridable): 4444 (Metasploit's default reverse-shell
// handler), 6667 (IRC, the classic botnet command channel), 1337 and 31337 ("elite"
// backdoor ports, e.g. Back Orifice). Legitimate software rarely talks to them, so a
// connect there reports the destination, once per (cgroup, destination, port) per window.
//
// Pure: time comes from the events. All memory is bounded (see FanoutConfig).
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "sensor/detectors/detection.hpp"
#include "sensor/events.hpp"

namespace meshd::sensor {

struct FanoutConfig {
  DurationMs window_ms = kMinute;
  std::size_t max_destinations = 100;  // distinct addresses per cgroup per window
  std::size_t max_ports = 50;          // distinct destination ports per cgroup per window
  std::vector<std::uint16_t> bad_ports = {4444, 6667, 1337, 31337};
  Severity fanout_severity = Severity::medium;
  double fanout_confidence = 0.3;
  Severity bad_port_severity = Severity::medium;
  double bad_port_confidence = 0.5;
  // Memory bounds: cgroups tracked at once (idle ones are evicted first; beyond that new
  // cgroups are not tracked and counted), and observations kept per cgroup (oldest dropped).
  std::size_t max_cgroups = 4096;
  std::size_t max_events_per_cgroup = 65536;
};

struct FanoutStats {
  std::uint64_t events = 0;
  std::uint64_t fanout_alerts = 0;
  std::uint64_t scan_alerts = 0;
  std::uint64_t bad_port_alerts = 0;
  std::uint64_t untracked_events = 0;  // cgroup table full
  std::uint64_t tracked_cgroups = 0;
};

class FanoutDetector {
 public:
  explicit FanoutDetector(FanoutConfig config = {});

  // Feeds one event (events of one cgroup must arrive in time order); returns the
  // detections it triggers (usually none).
  std::vector<Detection> on_event(const ConnectEvent& event, const WorkloadIdentity& identity);
  // Drops state older than the window. Call periodically (on_event also trims lazily).
  void expire(TimeMs now);

  const FanoutStats& stats() const { return stats_; }
  const FanoutConfig& config() const { return config_; }

 private:
  struct Observation {
    TimeMs at;
    Prefix destination;
    std::uint16_t port;
  };
  struct CgroupState {
    std::deque<Observation> window;
    std::unordered_map<Prefix, std::uint32_t, PrefixHash> destinations;
    std::unordered_map<std::uint16_t, std::uint32_t> ports;
    bool fanout_alerted = false;
    bool scan_alerted = false;
    TimeMs last_seen = 0;
  };
  struct BadPortKey {
    std::uint64_t cgroup;
    Prefix destination;
    std::uint16_t port;
    bool operator==(const BadPortKey&) const = default;
  };
  struct BadPortKeyHash {
    std::size_t operator()(const BadPortKey& k) const noexcept;
  };

  void trim(CgroupState& s, TimeMs now);
  void drop_front(CgroupState& s);
  CgroupState* state_for(std::uint64_t cgroup, TimeMs now);

  FanoutConfig config_;
  std::unordered_set<std::uint16_t> bad_ports_;
  std::unordered_map<std::uint64_t, CgroupState> cgroups_;
  std::unordered_map<BadPortKey, TimeMs, BadPortKeyHash> bad_port_reported_;
  FanoutStats stats_;
};

}  // namespace meshd::sensor
