// meshsim scenario: the parsed, validated form of a scenario YAML file
// (simulations/README.md). Every key is optional; the defaults are the ones below.
// Parsing is strict: an unknown key or a value of the wrong type or range is an error that
// names the key path (e.g. "adversaries[0].strategy"), never a silent default.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "meshd/common/result.hpp"

namespace meshd::sim {

struct LinkSpec {
  double latency_ms = 20;  // one-way base latency of every overlay link
  double jitter_ms = 5;    // extra delay, uniform in [0, jitter_ms], per message
  double loss = 0.0;       // probability that a message is dropped, in [0, 1)
};

struct TrafficSpec {
  int services = 200;                // benign destinations (one /32 each)
  double zipf = 1.1;                 // Zipf exponent of their popularity
  double flows_per_node_per_s = 5;   // mean benign flows a node opens per second
  double node_variation = 0.5;       // sigma of the per-node log-normal rate multiplier
  double protected_flows_per_s = 1;  // flows per node per second to its protected addresses
  double window_s = 300;             // usage window the cost model sees (flows = rate x it)
  int workloads = 8;                 // processes/pods per node; each flow comes from one of
                                     // them at random (benign evidence counts the distinct)
};

struct AttackSpec {
  int targets = 50;           // malicious destinations
  double detect_prob = 0.05;  // chance that one honest sensor detects one target
  double start_s = 60;        // detections happen in [start_s, start_s + spread_s]
  double spread_s = 300;
  double confidence = 0.95;       // confidence of honest claims
  double ttl_s = 3600;            // TTL the claims request
  std::string severity = "high";  // severity class of the detections
};

enum class Strategy { random, targeted, protected_, equivocate, flood, milking, sybil };
std::string_view to_string(Strategy s);

struct AdversarySpec {
  int count = 1;  // compromised certified nodes (colluders when > 1)
  Strategy strategy = Strategy::targeted;
  double rate_per_min = 100;          // false claims per minute per adversary (flood: as given,
                                      // default 6000)
  double start_s = 600;               // first false claim
  double honest_until_s = -1;         // behaves as an honest sensor until then (default start_s)
  int domains = 1;                    // colluders are spread over this many failure domains
  double confidence = 1.0;            // confidence the false claims declare
  std::string severity = "critical";  // severity the false claims declare (max benefit B)
  double ttl_s = 3600;                // TTL the false claims request
  int sybils = 50;                    // sybil: uncertified identities minted per adversary
};

enum class FaultKind { partition, crash };

struct FaultSpec {
  double at_s = 0;
  FaultKind kind = FaultKind::partition;
  double fraction = 0.5;        // partition: share of nodes cut off from the rest
  double duration_s = 60;       // partition: how long
  int count = 1;                // crash: nodes that crash
  double restart_after_s = 30;  // crash: downtime before restart from the persisted store
};

// Acceptance policy the nodes run. `quorum` enforces a claim once `quorum_k` distinct
// certified origins support it.
enum class PolicyKind { trust, naive, quorum };

struct PolicySpec {
  PolicyKind kind = PolicyKind::trust;
  int quorum_k = 2;
  std::string to_string() const;
};
Result<PolicySpec> parse_policy(std::string_view text);

struct Scenario {
  std::string name = "unnamed";
  std::uint64_t seed = 1;
  int nodes = 1000;
  int degree = 8;
  int domains = 20;
  LinkSpec link;
  double duration_s = 1800;
  PolicySpec policy;
  // Overrides of trust parameters (trust::param_table() names) or core parameters
  // ("core.<name>"), as text; checked when the simulation is set up.
  std::map<std::string, std::string> policy_params;
  TrafficSpec traffic;
  std::vector<AttackSpec> attacks;
  std::vector<AdversarySpec> adversaries;
  std::vector<FaultSpec> faults;
  double sample_s = 0;  // time-series sampling period; 0 = duration_s / 200
};

// Parses YAML text. `default_name` is used when the file has no `name:`.
Result<Scenario> parse_scenario(std::string_view yaml_text, std::string_view default_name);
// Reads and parses a file; errors name the file and the key.
Result<Scenario> load_scenario(const std::string& path);

}  // namespace meshd::sim
