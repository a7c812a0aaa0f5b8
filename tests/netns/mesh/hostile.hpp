// Hostile peers and clients against a MeshCluster, shared by hostile_netns_test (short, CI)
// and mesh_hostile_bench (honest delivery p99 under each attack against a baseline).
//
// Every attack targets node1 from an attacker namespace on the mesh's bridge (10.213.0.66)
// or, for the local endpoints (metrics, Falco, control socket), from inside node1's namespace.
// Each runs as a BackgroundProcess (its own process group, killed by the destructor) that
// keeps attacking until stopped. Certified attackers get one identity per attack (signed by
// the fleet CA, domain zone-x), so a ban earned in one attack does not blunt the next.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/netns/mesh/mesh_cluster.hpp"

namespace meshd::test {

struct Attack {
  std::string name;         // e.g. "forged-signatures"
  std::string description;  // one line
  // Metric samples on node1 whose sum counts the attack: exact samples
  // (`name{label="v"}`) or whole families (a bare name sums every label value).
  std::vector<std::string> metrics;
  // What a line of node1's log must contain: it names the attacking peer, the identity the
  // last start() used (mallory-raw, then mallory-raw-2, ...), so call it after start().
  std::function<std::string()> log_needle;
  std::function<std::unique_ptr<BackgroundProcess>()> start;
};

// Which of meshd's protections a hostile run keeps at the daemon's defaults.
//  - daemon_defaults (what users run): mesh.origin_rate_per_min / origin_burst (600 / 200) and
//    policy.overrun_max_claims (400 a minute) as shipped. A flood is then also deferred and
//    dropped per origin, and its signer quarantined for a gross overrun.
//  - relaxed: those three raised (100,000 / 2,000 / 10^6) so that only the transport's
//    per-peer frame limit stands between a flood and the mesh: the run measures that limit
//    alone (session 7's configuration).
// Both relax the policy budget (budget_burst 5,000, budget_rate_per_min 100,000), and only for
// the honest stream: each honest `block add` is its origin's sole support for a new /32, paid
// from a trust-scaled bucket of 20 tokens and 10 a minute, and the stream issues 60-240 claims a
// minute per origin, so with the default budget most honest claims would wait for tokens and
// the delay would measure the budget, not delivery. The budget is per origin, not per honest
// node, so the flood's accepted claims (single-origin too) are enforced as well instead of
// waiting for tokens: each costs every node a block and its events, a heavier attack than
// against the default budget.
// Both set the per-peer frame limit to `peer_rate` frames/s (default 2,000, burst 4x): the
// flood runs at 10x that, and one peer tool pushes 2,000 frames/s on this machine, not 20,000.
enum class Limits { daemon_defaults, relaxed };
const char* to_string(Limits l);

// The mesh options hostile runs use: node1 serves a Falco endpoint (127.0.0.1:2801, secret
// in its dir), the per-peer frame limit is `peer_rate` frames/s, handshakes time out after
// 1 s, the limits as above.
MeshOptions hostile_mesh_options(double peer_rate = 200, Limits limits = Limits::daemon_defaults);

// Empty when the honest stream (one claim every `interval_ms`, the nodes in turn) keeps every
// origin below the per-origin rate and the gross-overrun threshold `options` give the daemons
// (their defaults where `options` do not set them); else why not. An honest stream above them
// would be deferred or quarantined as a flood: it would no longer be honest.
std::string honest_stream_problem(const MeshOptions& options, int interval_ms);
// Writes node1's Falco secret; call after building the cluster, before start_all().
void prepare_hostile_mesh(MeshCluster& mesh);

// The attacks, in the order. `peer_tool` is mesh_peer_tool's path; `rate` the
// flood rate of the rate-limit attack (10x the mesh's peer_rate). Each certified attacker gets
// `rounds` identities, one per start() in turn, so a repeated attack is not met by its last ban.
std::vector<Attack> hostile_attacks(MeshCluster& mesh, const std::string& peer_tool, double rate,
                                    int rounds = 1);

// Sum of the attack's metrics on node1 (-1 when node1 does not answer).
double attack_count(const MeshCluster& mesh, const Attack& attack);
// Sum of a family's samples (all label values), or the one exact sample.
double metric_sum(const std::string& metrics_text, const std::string& sample_or_family);

// Honest claims flowing through the mesh: a thread runs `meshctl block add` on nodes 1..N in
// turn every `interval_ms` (targets 198.19.x.y), and each node's event stream
// (`meshctl events --follow --json`, one background process per node) is kept in a file.
// take() ends a measurement window: for each claim signed in it, the delay from its
// claim_signed at the origin to block_enforce at every other node, in ms with µs resolution (the
// events' at_us; one machine's CLOCK_REALTIME, shared by every namespace). Claims not enforced
// somewhere within `grace_ms` after the window count as `missing`.
class HonestTraffic {
 public:
  HonestTraffic(MeshCluster& mesh, int interval_ms);
  ~HonestTraffic();
  HonestTraffic(const HonestTraffic&) = delete;
  HonestTraffic& operator=(const HonestTraffic&) = delete;

  struct Window {
    std::vector<double> delays_ms;  // one per (claim, receiving node)
    std::vector<int> claim_of;      // index (in this window) of the claim of each delay
    int claims = 0;                 // claims signed in the window
    int failed = 0;                 // `block add` calls that failed
    int missing = 0;                // (claim, node) pairs never enforced
  };
  Window take(int grace_ms = 3000);

 private:
  void loop();
  MeshCluster& mesh_;
  int interval_ms_;
  std::vector<std::unique_ptr<BackgroundProcess>> followers_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::pair<std::string, int>> issued_;  // (prefix, origin node) of this window
  int failed_ = 0;
  int next_ = 0;
  std::thread thread_;
};

// p-th percentile (0..100) of `v` (nearest rank); -1 when empty.
double percentile(std::vector<double> v, double p);
// CPU time (user + system) a pid has used, in seconds (0 when unreadable).
double cpu_s(pid_t pid);
// VmRSS of a pid in MB (-1 when unreadable).
double rss_mb(pid_t pid);

}  // namespace meshd::test
