// The immutable model of one scenario + seed, shared read-only by the policy runs (trust and
// naive run on two threads over the same model): node identities and failure domains, the
// overlay, who is compromised, the address plan, the traffic model (per-node flow rates) and
// the plan of every claim that will be issued (honest detections and adversary claims).
//
// Address plan (all simulated; nothing is ever contacted):
//   node i                 100.64.0.0 + i + 1   (fleet range 100.64.0.0/10, protected)
//   kubernetes api, DNS    10.96.0.1, 10.96.0.10 (fleet-wide protected)
//   gateway of domain d    172.16.0.0 + d*256 + 1 (node-local protected at nodes of d)
//   benign service s       198.18.0.0 + s        (Zipf popularity)
//   malicious target m     240.0.0.0 + m
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "meshd/common/prefix.hpp"
#include "simulations/event_queue.hpp"
#include "simulations/overlay.hpp"
#include "simulations/scenario.hpp"
#include "trust/types.hpp"

namespace meshd::sim {

enum class TargetKind : std::uint8_t { benign, malicious, protected_fleet, protected_local };

struct Target {
  Prefix prefix;
  TargetKind kind = TargetKind::benign;
  std::uint32_t index = 0;  // service / malicious / protected index within its kind
};

// How an emitted claim enters the network.
enum class Route : std::uint8_t {
  local_event,  // handed to the producer's own core (honest behaviour)
  push_all,     // pushed directly to every peer of the producer (bypassing its core)
  push_even,    // pushed directly to the peers at even positions (equivocation body A)
  push_odd,     // ... at odd positions (equivocation body B)
};

struct PlannedClaim {
  SimTimeUs at = 0;            // issue time (virtual)
  std::uint32_t producer = 0;  // node that emits it
  std::uint32_t origin = 0;    // identity: < nodes = certified node, else sybil identity
  std::uint32_t target = 0;    // index into Model::targets
  std::uint64_t seq = 0;       // per-origin sequence
  std::int64_t ttl_ms = 0;
  float confidence = 0;
  Severity severity = Severity::high;
  Route route = Route::local_event;
  std::uint8_t variant = 0;  // body variant: equivocation bodies differ here
  bool honest = true;        // from an honest (non-compromised) origin
  bool valid = true;         // certified origin and genuinely signed by it
  bool offending = false;    // provable misbehaviour (equivocation second body, protected)
};

struct Model {
  Scenario scenario;
  std::uint64_t seed = 0;
  int nodes = 0;
  Overlay overlay;
  int diameter = 0;
  std::vector<std::string> node_ids;     // "node-17"
  std::vector<std::string> domain_ids;   // "zone-3"
  std::vector<std::uint32_t> domain_of;  // node -> domain
  std::vector<char> compromised;         // node -> 1 if an adversary
  std::vector<std::string> sybil_ids;    // identity nodes + k -> sybil_ids[k]

  std::vector<Target> targets;
  std::unordered_map<Prefix, std::uint32_t, PrefixHash> target_of;
  std::uint32_t first_service = 0, services = 0;
  std::uint32_t first_malicious = 0, malicious = 0;
  std::uint32_t first_protected = 0;    // fleet-wide protected targets follow, then local ones
  std::vector<Prefix> fleet_protected;  // the fleet-wide protected list

  // Traffic: flows per second from node n to service s = rate[n * services + s].
  std::vector<float> rate;
  std::vector<float> protected_rate;  // node -> flows/s to each of its protected addresses

  // Every claim, sorted by (at, producer, seq).
  std::vector<PlannedClaim> claims;
  std::uint64_t honest_claims = 0;  // valid claims from honest origins
  std::uint64_t valid_claims = 0;   // all valid (certified, genuinely signed) claims

  // Malicious target m: time of the first honest detection (-1 if never detected).
  std::vector<SimTimeUs> first_detection;

  // Faults, resolved to node sets.
  struct Partition {
    SimTimeUs at = 0, heal = 0;
    std::vector<char> side;  // node -> 1 if in the cut-off part
  };
  struct Crash {
    SimTimeUs at = 0, restart = 0;
    std::vector<std::uint32_t> nodes;
  };
  std::vector<Partition> partitions;
  std::vector<Crash> crashes;

  const std::string& identity(std::uint32_t origin) const {
    return origin < std::uint32_t(nodes) ? node_ids[origin] : sybil_ids[origin - nodes];
  }
  Prefix node_address(std::uint32_t n) const;
  Prefix gateway_of_domain(std::uint32_t d) const;
  // Benign flows per second from node n to everything inside `p`; protected destinations of
  // n (fleet-wide + its gateway) included.
  double flow_rate(std::uint32_t n, const Prefix& p) const;
  // Flows/s of node n to services and protected addresses covered by target t (cheap path
  // for the metric: uses the target's kind and index).
  double target_rate(std::uint32_t n, std::uint32_t t) const;
};

// Builds the model; errors (e.g. a scenario too large for memory) name the cause.
Result<std::shared_ptr<const Model>> build_model(const Scenario& scenario, std::uint64_t seed);

}  // namespace meshd::sim
