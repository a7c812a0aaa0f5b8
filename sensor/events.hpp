// User-space view of what the sensor observes. The kernel's record layout lives in
// bpf/meshd_shared.h; sensor code converts it into these types so that detectors and the
// daemon never depend on libbpf (replay and synthetic sources produce the same types).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "meshd/common/prefix.hpp"
#include "meshd/common/time.hpp"

namespace meshd::sensor {

enum class Verdict : std::uint8_t { allowed = 0, denied = 1 };
enum class Protocol : std::uint8_t { tcp = 6, udp = 17, other = 0 };

// One outbound connect()/sendmsg() seen by the cgroup hooks.
struct ConnectEvent {
  TimeMs at = 0;
  std::uint64_t cgroup_id = 0;
  std::uint32_t pid = 0;   // thread id (kernel "pid")
  std::uint32_t tgid = 0;  // process id as users know it
  std::uint32_t uid = 0;
  std::string comm;        // task name, at most 15 bytes
  Prefix destination;      // always a host prefix (/32 or /128)
  std::uint16_t port = 0;  // host byte order
  Protocol protocol = Protocol::other;
  Verdict verdict = Verdict::allowed;
};

// Who made a connection, as operators want to read it in a claim's context.
struct WorkloadIdentity {
  std::string cgroup_path;   // relative to the cgroup v2 mount
  std::string container_id;  // empty when not a container
  std::string pod_uid;       // empty when not a Kubernetes pod
  std::string pod_name;      // filled only when kubelet metadata is reachable
  std::string pod_namespace;
};

// Source of connect events: the BPF ring buffer in production (sensor/bpf_ringbuf.hpp),
// SyntheticEventSource in tests (sensor/synthetic_events.hpp).
//
// Event-loop use, with no periodic polling:
//   1. wait until readable_fd() is readable, or until next_drain_in_ms() has passed when it
//      is >= 0 (a timer);
//   2. drain: poll(out, max, 0) until it returns 0;
//   3. go back to 1.
class EventSource {
 public:
  virtual ~EventSource() = default;
  // Appends at most `max` events to `out`, waiting at most `timeout_ms` (0: no wait; -1: no
  // limit) when none are pending. Returns how many were appended.
  virtual std::size_t poll(std::vector<ConnectEvent>& out, std::size_t max, int timeout_ms) = 0;
  // Events the source could not deliver (buffer full, malformed records), since its start.
  virtual std::uint64_t lost_events() const = 0;
  // An fd that becomes readable when events may be pending. Owned by the source.
  virtual int readable_fd() const = 0;
  // Milliseconds until a drain is due even without the fd becoming readable; -1: none due.
  virtual int next_drain_in_ms() const = 0;
};

}  // namespace meshd::sensor
