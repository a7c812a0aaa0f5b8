#include "sensor/detectors/fanout.hpp"

#include <string>

namespace meshd::sensor {

std::size_t FanoutDetector::BadPortKeyHash::operator()(const BadPortKey& k) const noexcept {
  std::size_t h = PrefixHash{}(k.destination);
  h ^= std::hash<std::uint64_t>{}(k.cgroup) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h ^= std::hash<std::uint16_t>{}(k.port) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

FanoutDetector::FanoutDetector(FanoutConfig config)
    : config_(std::move(config)), bad_ports_(config_.bad_ports.begin(), config_.bad_ports.end()) {}

void FanoutDetector::drop_front(CgroupState& s) {
  const Observation& o = s.window.front();
  if (auto it = s.destinations.find(o.destination); it != s.destinations.end() && --it->second == 0)
    s.destinations.erase(it);
  if (auto it = s.ports.find(o.port); it != s.ports.end() && --it->second == 0) s.ports.erase(it);
  s.window.pop_front();
}

void FanoutDetector::trim(CgroupState& s, TimeMs now) {
  while (!s.window.empty() && now - s.window.front().at >= config_.window_ms) drop_front(s);
  // Re-arm only well below the threshold, so counts hovering around it do not re-alert.
  if (s.destinations.size() <= config_.max_destinations / 2) s.fanout_alerted = false;
  if (s.ports.size() <= config_.max_ports / 2) s.scan_alerted = false;
}

FanoutDetector::CgroupState* FanoutDetector::state_for(std::uint64_t cgroup, TimeMs now) {
  if (auto it = cgroups_.find(cgroup); it != cgroups_.end()) return &it->second;
  if (cgroups_.size() >= config_.max_cgroups) expire(now);
  if (cgroups_.size() >= config_.max_cgroups) return nullptr;
  auto* s = &cgroups_[cgroup];
  stats_.tracked_cgroups = cgroups_.size();
  return s;
}

std::vector<Detection> FanoutDetector::on_event(const ConnectEvent& e,
                                                const WorkloadIdentity& identity) {
  std::vector<Detection> out;
  ++stats_.events;
  auto describe = [&] {
    std::string who = identity.cgroup_path.empty() ? "cgroup " + std::to_string(e.cgroup_id)
                                                   : "cgroup " + identity.cgroup_path;
    return who + " (" + (e.comm.empty() ? std::string("?") : e.comm) + " pid " +
           std::to_string(e.tgid) + ")";
  };
  auto make = [&](std::string detector, Severity sev, double conf, std::string reason) {
    Detection d;
    d.prefix = e.destination;
    d.direction = Direction::egress;
    d.detector = std::move(detector);
    d.severity = sev;
    d.confidence = conf;
    d.reason = std::move(reason);
    d.identity = identity;
    d.at = e.at;
    return d;
  };

  if (e.port != 0 && bad_ports_.contains(e.port)) {
    BadPortKey key{e.cgroup_id, e.destination, e.port};
    auto [it, fresh] = bad_port_reported_.try_emplace(key, e.at);
    if (fresh || e.at - it->second >= config_.window_ms) {
      it->second = e.at;
      ++stats_.bad_port_alerts;
      out.push_back(make("bad_port", config_.bad_port_severity, config_.bad_port_confidence,
                         describe() + " connected to " + e.destination.to_string() + ":" +
                             std::to_string(e.port) +
                             ", a port commonly used by backdoors and C2"));
    }
    if (bad_port_reported_.size() > 65536)
      std::erase_if(bad_port_reported_,
                    [&](const auto& kv) { return e.at - kv.second >= config_.window_ms; });
  }

  CgroupState* s = state_for(e.cgroup_id, e.at);
  if (!s) {
    ++stats_.untracked_events;
    return out;
  }
  trim(*s, e.at);
  if (s->window.size() >= config_.max_events_per_cgroup) drop_front(*s);
  s->window.push_back({e.at, e.destination, e.port});
  ++s->destinations[e.destination];
  ++s->ports[e.port];
  s->last_seen = e.at;

  if (!s->fanout_alerted && s->destinations.size() > config_.max_destinations) {
    s->fanout_alerted = true;
    ++stats_.fanout_alerts;
    out.push_back(make("fanout", config_.fanout_severity, config_.fanout_confidence,
                       describe() + " contacted " + std::to_string(s->destinations.size()) +
                           " distinct destinations within " + std::to_string(config_.window_ms) +
                           " ms (limit " + std::to_string(config_.max_destinations) + ")"));
  }
  if (!s->scan_alerted && s->ports.size() > config_.max_ports) {
    s->scan_alerted = true;
    ++stats_.scan_alerts;
    out.push_back(make("scan", config_.fanout_severity, config_.fanout_confidence,
                       describe() + " contacted " + std::to_string(s->ports.size()) +
                           " distinct ports within " + std::to_string(config_.window_ms) +
                           " ms (limit " + std::to_string(config_.max_ports) + "), last " +
                           e.destination.to_string() + ":" + std::to_string(e.port)));
  }
  return out;
}

void FanoutDetector::expire(TimeMs now) {
  for (auto it = cgroups_.begin(); it != cgroups_.end();) {
    trim(it->second, now);
    if (it->second.window.empty())
      it = cgroups_.erase(it);
    else
      ++it;
  }
  std::erase_if(bad_port_reported_,
                [&](const auto& kv) { return now - kv.second >= config_.window_ms; });
  stats_.tracked_cgroups = cgroups_.size();
}

}  // namespace meshd::sensor
