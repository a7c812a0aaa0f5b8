// Detection on one node -> enforced on every node of a real netns mesh (5 nodes by default).
//
// Builds a MeshCluster (bpf backend: each block ends in the node's kernel maps), follows
// `meshctl events --follow --json` on every node, then signs `claims` local detections on
// node1 (`meshctl block add`, one after the other). For every claim and node, latency =
// block_enforce "at" on that node - claim_signed "at" on node1 (the daemons' own Unix-ms
// timestamps; all nodes share the host clock). Prints one JSON object:
//   fleet_*: per claim, the time until the LAST node enforced it (the goal: p99 <= 100 ms);
//   pairs_*: over every (remote node, claim) pair; per_node: p50/p99 per node;
//   origin_local_*: node1 itself (its own detection enforced in its own kernel);
//   *_from_cmd_*: the same, but from the moment `meshctl block add` was started (what a
//   user's command waits for; comparable with a peer tool's CLI), instead of claim_signed.
// Policy budgets and origin rate limits are raised in this bench's config so that 200
// claims from one origin are all enforced (the bench measures propagation, not the budget).
//
// Formation (cold start): every node is seeded with every other node's address (as from a
// Kubernetes headless Service) and all daemons are started at once. The bench does not
// touch the daemons for the first --formation-probe-ms (default 10 s), then polls `status`
// until every node has >= min(target_peers, nodes - 1) peers (or --formation-timeout-ms).
// The overlay at any moment is rebuilt afterwards from every node's peer_up / peer_down
// events (daemon timestamps): "formation" reports the peers-per-node histogram and the
// connected components at the probe time, and the first moments (ms after start) at which
// every node had >= 1 / >= 4 / >= target peers and the overlay was one component.
//
// Usage (root): mesh_propagation_bench [--claims N] [--nodes N] [--backend bpf|dryrun]
//   [--formation-probe-ms MS] [--formation-timeout-ms MS] [--claim-gap-ms MS]
//   [--static-l2 on|off|auto]  (MeshOptions::static_l2; auto: on from 24 nodes)
//   [--mesh KEY=VALUE]...  (extra keys of every node's mesh section, e.g. max_peers=10)
// Also reported: latency by hop distance from node1 in the overlay the claims travel, and
// the CPU the daemons and the followers used over the claims (is the host saturated?); at
// the probe, the CPU the daemons used since start and the load average; once formed, why
// dials ended as they did (meshd_dials_total by outcome, summed over the fleet).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "meshd/common/clock.hpp"
#include "tests/netns/mesh/mesh_cluster.hpp"

namespace {

using meshd::test::MeshCluster;
using meshd::test::MeshOptions;
using meshd::test::OverlayReplay;
using nlohmann::json;

// `meshctl events --follow --json` on one node, collected by a reader thread.
class Follower {
 public:
  Follower(const MeshCluster& mesh, int node) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      ::close(fds[0]);
      ::close(fds[1]);
      const std::string ctl = MeshCluster::bin("meshctl");
      const std::string sock = mesh.socket(node);
      ::execl(ctl.c_str(), "meshctl", "--socket", sock.c_str(), "events", "--follow", "--json",
              "--limit", "1", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    fd_ = fds[0];
    reader_ = std::thread([this] { read_loop(); });
  }
  ~Follower() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    reader_.join();
    ::close(fd_);
  }
  pid_t pid() const { return pid_; }
  // "at" of the first `kind` event per prefix.
  std::map<std::string, std::int64_t> first(const std::string& kind) {
    std::lock_guard lock(mu_);
    auto it = first_.find(kind);
    return it == first_.end() ? std::map<std::string, std::int64_t>{} : it->second;
  }

 private:
  void read_loop() {
    std::string buf;
    char chunk[65536];
    ssize_t n;
    while ((n = ::read(fd_, chunk, sizeof chunk)) > 0) {
      buf.append(chunk, static_cast<std::size_t>(n));
      std::size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        json e = json::parse(buf.substr(0, nl), nullptr, false);
        buf.erase(0, nl + 1);
        if (e.is_discarded() || !e.is_object() || !e.contains("prefix")) continue;
        std::lock_guard lock(mu_);
        first_[e.value("event", "")].try_emplace(e.value("prefix", ""),
                                                 e.value("at", std::int64_t{0}));
      }
    }
  }
  pid_t pid_ = -1;
  int fd_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::map<std::string, std::map<std::string, std::int64_t>> first_;
};

// utime and stime of a process, in seconds.
std::pair<double, double> cpu_user_sys(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = all.rfind(')');
  if (close == std::string::npos) return {0, 0};
  std::istringstream rest(all.substr(close + 2));  // fields from 3 on
  std::string field;
  long user = 0, sys = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) user = std::stol(field);
    if (i == 15) sys = std::stol(field);
  }
  const auto hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return {static_cast<double>(user) / hz, static_cast<double>(sys) / hz};
}

// utime + stime of a process, in seconds.
double cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = all.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(all.substr(close + 2));  // fields from 3 on
  std::string field;
  long ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i == 14 || i == 15) ticks += std::stol(field);
  return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

// Sum over every node of the samples of a metric family, by the value of `label`.
json metric_sums(const MeshCluster& mesh, const std::string& family, const std::string& label) {
  std::map<std::string, double> sums;
  const std::string prefix = family + "{" + label + "=\"";
  for (int i = 1; i <= mesh.size(); ++i) {
    std::istringstream text(mesh.metrics(i));
    std::string line;
    while (std::getline(text, line)) {
      if (line.rfind(prefix, 0) != 0) continue;
      const auto end = line.find('"', prefix.size());
      const auto space = line.rfind(' ');
      if (end == std::string::npos || space == std::string::npos) continue;
      sums[line.substr(prefix.size(), end - prefix.size())] += std::stod(line.substr(space + 1));
    }
  }
  json out = json::object();
  for (const auto& [k, v] : sums)
    if (v != 0) out[k] = v;
  return out;
}

json histogram(const std::vector<int>& degrees) {
  std::map<int, int> h;
  for (int d : degrees) h[d]++;
  json out = json::object();
  for (const auto& [d, count] : h) out[std::to_string(d)] = count;
  return out;
}

// Packets the kernel dropped because a CPU's input backlog was full (column 2 of
// /proc/net/softnet_stat, hex, summed over the CPUs). Host-wide: other jobs count too.
long long softnet_dropped() {
  std::ifstream f("/proc/net/softnet_stat");
  std::string line;
  long long sum = 0;
  while (std::getline(f, line)) {
    std::istringstream cols(line);
    std::string processed, dropped;
    if (cols >> processed >> dropped) sum += std::stoll(dropped, nullptr, 16);
  }
  return sum;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const auto idx = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  int claims = 200;
  int nodes = 5;
  int probe_ms = 10000;
  int formation_timeout_ms = 120000;
  int claim_gap_ms = 0;  // pause between two `block add` (0: one after the other)
  std::string backend = "bpf";
  std::optional<bool> static_l2;  // MeshOptions::static_l2 (unset: on from 24 nodes)
  std::map<std::string, std::string> extra_mesh;  // --mesh KEY=VALUE
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--claims")
      claims = std::stoi(argv[i + 1]);
    else if (a == "--nodes")
      nodes = std::stoi(argv[i + 1]);
    else if (a == "--backend")
      backend = argv[i + 1];
    else if (a == "--formation-probe-ms")
      probe_ms = std::stoi(argv[i + 1]);
    else if (a == "--formation-timeout-ms")
      formation_timeout_ms = std::stoi(argv[i + 1]);
    else if (a == "--claim-gap-ms")
      claim_gap_ms = std::stoi(argv[i + 1]);
    else if (a == "--mesh") {  // KEY=VALUE: one more line of every node's mesh section
      if (!MeshOptions::set_line(extra_mesh, argv[i + 1])) {
        std::fprintf(stderr, "mesh_propagation_bench: --mesh takes KEY=VALUE, got '%s'\n",
                     argv[i + 1]);
        return 2;
      }
    } else if (a == "--static-l2") {
      const std::string v = argv[i + 1];
      if (v != "on" && v != "off" && v != "auto") {
        std::fprintf(stderr, "mesh_propagation_bench: --static-l2 takes on, off or auto\n");
        return 2;
      }
      if (v != "auto") static_l2 = v == "on";
    } else {
      std::fprintf(stderr, "mesh_propagation_bench: unknown option '%s'\n", a.c_str());
      return 2;
    }
  }
  if (!meshd::test::is_root()) {
    std::fprintf(stderr, "mesh_propagation_bench: needs root (netns, bpf, cgroups)\n");
    return 1;
  }
  if (nodes < 2 || claims < 1) {
    std::fprintf(stderr, "mesh_propagation_bench: --nodes must be >= 2 and --claims >= 1\n");
    return 2;
  }
  meshd::test::MeshOptions o;
  o.nodes = nodes;
  o.backend = backend;
  o.log_level = "warn";
  o.mesh = {{"origin_rate_per_min", "100000"}, {"origin_burst", "10000"}};
  o.policy = {{"budget_burst", "10000"},
              {"budget_rate_per_min", "100000"},
              {"overrun_max_claims", "100000"}};
  for (const auto& [k, v] : extra_mesh) o.mesh[k] = v;
  o.static_l2 = static_l2;
  MeshCluster mesh(o);
  // mesh.target_peers (8 unless --mesh target_peers=N)
  const int target = std::min(
      nodes - 1, extra_mesh.contains("target_peers") ? std::stoi(extra_mesh["target_peers"]) : 8);
  const long long drops_at_start = softnet_dropped();
  const auto started = meshd::wall_now_ms();
  mesh.start_all();
  // Hands off during the probe window: polling 100 daemons costs CPU they need.
  std::this_thread::sleep_for(std::chrono::milliseconds(probe_ms));
  // At the probe: CPU the daemons used so far (from /proc, no daemon is asked), and the load.
  double cpu_at_probe_s = 0;
  for (int i = 1; i <= mesh.size(); ++i) cpu_at_probe_s += cpu_seconds(mesh.pid(i));
  const std::string loadavg_at_probe = read_line("/proc/loadavg");
  const long long drops_at_probe = softnet_dropped();
  // Then one poll a second, so the polling itself weighs little on formation.
  bool formed = false;
  while (!formed && meshd::wall_now_ms() - started < formation_timeout_ms) {
    formed = true;
    for (int i = 1; i <= mesh.size() && formed; ++i) {
      json s = mesh.ctl_json(i, "status");
      formed = !s.is_null() && s.value("peers", 0) >= target;
    }
    if (!formed) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  json formation;
  {
    std::vector<std::vector<json>> events;
    for (int i = 1; i <= mesh.size(); ++i) events.push_back(mesh.events(i));
    OverlayReplay replay(mesh, events);
    auto rel = [&](std::int64_t at) { return at < 0 ? -1 : at - started; };
    auto all_at_least = [](int k) {
      return [k](const std::vector<std::set<int>>& p) {
        for (int d : OverlayReplay::degrees(p))
          if (d < k) return false;
        return true;
      };
    };
    // When each daemon was up (its "started" event): on a loaded machine the last ones
    // start seconds after the first.
    std::vector<double> up_ms;
    for (const auto& node_events : events)
      for (const auto& e : node_events)
        if (e.value("event", "") == "started")
          up_ms.push_back(static_cast<double>(e.value("at", std::int64_t{0}) - started));
    const auto probe = replay.at(started + probe_ms);
    const auto degrees = OverlayReplay::degrees(probe);
    int largest = 0;
    const int components = OverlayReplay::components(probe, &largest);
    int below4 = 0, isolated = 0;
    for (int d : degrees) {
      below4 += d < 4;
      isolated += d == 0;
    }
    int final_largest = 0;
    const auto now_peers = replay.at(meshd::wall_now_ms());
    formation = {{"probe_ms", probe_ms},
                 {"peers_histogram_at_probe", histogram(degrees)},
                 {"nodes_below_4_at_probe", below4},
                 {"isolated_at_probe", isolated},
                 {"components_at_probe", components},
                 {"largest_component_at_probe", largest},
                 {"ms_to_all_ge_1", rel(replay.first_when(started, all_at_least(1)))},
                 {"ms_to_all_ge_4", rel(replay.first_when(started, all_at_least(4)))},
                 {"ms_to_all_ge_target", rel(replay.first_when(started, all_at_least(target)))},
                 {"ms_to_one_component",
                  rel(replay.first_when(
                      started, [](const auto& p) { return OverlayReplay::components(p) == 1; }))},
                 {"target_peers", target},
                 {"daemons_started", up_ms.size()},
                 {"daemon_started_p50_ms", percentile(up_ms, 0.5)},
                 {"daemon_started_max_ms", percentile(up_ms, 1.0)},
                 {"all_ge_target_within_timeout", formed},
                 {"peers_histogram_at_end", histogram(OverlayReplay::degrees(now_peers))},
                 {"components_at_end", OverlayReplay::components(now_peers, &final_largest)},
                 {"peer_events", replay.size()},
                 {"daemon_cpu_s_at_probe", cpu_at_probe_s},
                 {"loadavg_at_probe", loadavg_at_probe},
                 {"static_l2", mesh.static_l2()},
                 // Input-backlog drops host-wide, start -> probe and start -> formed.
                 {"softnet_dropped_to_probe", drops_at_probe - drops_at_start},
                 {"softnet_dropped_to_formed", softnet_dropped() - drops_at_start},
                 // Summed over the fleet once formed (or at the timeout): why dials failed.
                 {"dials_by_outcome", metric_sums(mesh, "meshd_dials_total", "outcome")},
                 {"handshakes_failed_by_reason",
                  metric_sums(mesh, "meshd_handshakes_failed_total", "reason")},
                 {"inbound_refused_by_reason",
                  metric_sums(mesh, "meshd_connections_refused_total", "reason")}};
  }
  if (!formed && !mesh.wait_ready(std::min(nodes - 1, 4), 30000 + 2000 * nodes)) {
    std::fprintf(stderr, "mesh did not come up\n%s\n%s", formation.dump().c_str(),
                 mesh.logs().c_str());
    return 1;
  }
  std::vector<std::unique_ptr<Follower>> followers;
  for (int i = 1; i <= mesh.size(); ++i) followers.push_back(std::make_unique<Follower>(mesh, i));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));

  // The overlay the claims travel: hop distance of every node from node1 (BFS).
  std::vector<int> hops(static_cast<std::size_t>(mesh.size()), -1);
  {
    const auto overlay = OverlayReplay::of(mesh).at(meshd::wall_now_ms());
    std::vector<std::set<int>> sym(overlay.size());
    for (std::size_t i = 0; i < overlay.size(); ++i)
      for (int j : overlay[i]) {
        sym[i].insert(j);
        sym[static_cast<std::size_t>(j)].insert(static_cast<int>(i));
      }
    std::vector<int> queue{0};
    hops[0] = 0;
    for (std::size_t q = 0; q < queue.size(); ++q)
      for (int j : sym[static_cast<std::size_t>(queue[q])])
        if (hops[static_cast<std::size_t>(j)] < 0) {
          hops[static_cast<std::size_t>(j)] = hops[static_cast<std::size_t>(queue[q])] + 1;
          queue.push_back(j);
        }
  }
  // CPU of the daemons and of the followers (the measuring apparatus) over the claims.
  auto fleet_cpu = [&] {
    double d = 0, f = 0;
    for (int i = 1; i <= mesh.size(); ++i) d += cpu_seconds(mesh.pid(i));
    for (auto& fo : followers) f += cpu_seconds(fo->pid());
    return std::pair{d, f};
  };
  // Frames the fleet moved over the claims: with eager push every node relays a new claim
  // to all its peers but the sender, so frames per claim ~ sum of degrees.
  auto fleet_sum = [&](const char* sample) {
    double sum = 0;
    for (int i = 1; i <= mesh.size(); ++i) sum += mesh.metric(i, sample).value_or(0);
    return sum;
  };
  const double frames_in0 = fleet_sum("meshd_frames_in_total");
  const double dups0 = fleet_sum("meshd_gossip_duplicates_total");
  auto daemons_user_sys = [&] {
    std::pair<double, double> sum{0, 0};
    for (int i = 1; i <= mesh.size(); ++i) {
      const auto [u, s] = cpu_user_sys(mesh.pid(i));
      sum.first += u;
      sum.second += s;
    }
    return sum;
  };
  const auto us0 = daemons_user_sys();
  const auto cpu0 = fleet_cpu();
  const long long drops_before_claims = softnet_dropped();

  std::vector<std::string> prefixes;
  std::map<std::string, std::int64_t> cmd_at;  // when `meshctl block add` was started
  const auto t0 = meshd::wall_now_ms();
  for (int k = 0; k < claims; ++k) {
    const std::string ip = "198.18." + std::to_string(k / 250) + "." + std::to_string(k % 250 + 1);
    cmd_at[ip] = meshd::wall_now_ms();
    auto r = mesh.ctl(1, "block add " + ip + " --confidence 0.9 --reason bench");
    if (!r.ok()) {
      std::fprintf(stderr, "block add %s: %s", ip.c_str(), r.output.c_str());
      return 1;
    }
    prefixes.push_back(ip);  // hosts print without /32
    if (claim_gap_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(claim_gap_ms));
  }
  const auto issue_ms = meshd::wall_now_ms() - t0;
  auto complete = [&] {
    for (auto& f : followers) {
      auto got = f->first("block_enforce");
      for (const auto& p : prefixes)
        if (!got.contains(p)) return false;
    }
    return true;
  };
  if (!meshd::test::wait_until(complete, 60000)) {
    std::fprintf(stderr, "not every node enforced every claim within 60 s\n%s",
                 mesh.logs().c_str());
    return 1;
  }

  const auto cpu1 = fleet_cpu();
  const auto us1 = daemons_user_sys();
  const double frames_in1 = fleet_sum("meshd_frames_in_total");
  const double dups1 = fleet_sum("meshd_gossip_duplicates_total");
  int degree_sum = 0, min_degree_after = 1 << 30, components_after = 0;
  {
    const auto overlay = OverlayReplay::of(mesh).at(meshd::wall_now_ms());
    for (int d : OverlayReplay::degrees(overlay)) {
      degree_sum += d;
      min_degree_after = std::min(min_degree_after, d);
    }
    components_after = OverlayReplay::components(overlay);
  }
  const double claims_wall_s = static_cast<double>(meshd::wall_now_ms() - t0) / 1000.0;
  auto signed_at = followers[0]->first("claim_signed");
  std::vector<double> fleet, pairs;
  json per_node = json::object();
  std::vector<std::map<std::string, std::int64_t>> enforce;
  for (auto& f : followers) enforce.push_back(f->first("block_enforce"));
  for (int i = 2; i <= mesh.size(); ++i) {
    std::vector<double> v;
    for (const auto& p : prefixes)
      v.push_back(static_cast<double>(enforce[static_cast<std::size_t>(i - 1)][p] - signed_at[p]));
    per_node[mesh.name(i)] = {{"p50_ms", percentile(v, 0.5)},
                              {"p99_ms", percentile(v, 0.99)},
                              {"max_ms", percentile(v, 1.0)}};
    pairs.insert(pairs.end(), v.begin(), v.end());
  }
  // Latency by hop distance from node1: per-hop cost vs queueing for the CPU.
  std::map<int, std::vector<double>> by_hop;
  for (int i = 2; i <= mesh.size(); ++i)
    for (const auto& p : prefixes)
      by_hop[hops[static_cast<std::size_t>(i - 1)]].push_back(
          static_cast<double>(enforce[static_cast<std::size_t>(i - 1)][p] - signed_at[p]));
  json by_hops = json::object();
  for (const auto& [h, v] : by_hop)
    by_hops[std::to_string(h)] = {{"nodes", v.size() / prefixes.size()},
                                  {"p50_ms", percentile(v, 0.5)},
                                  {"p99_ms", percentile(v, 0.99)}};
  std::vector<double> local, fleet_cmd, local_cmd;
  for (const auto& p : prefixes) {
    std::int64_t last = 0;
    for (const auto& e : enforce) last = std::max(last, e.at(p));
    fleet.push_back(static_cast<double>(last - signed_at.at(p)));
    local.push_back(static_cast<double>(enforce[0].at(p) - signed_at.at(p)));
    fleet_cmd.push_back(static_cast<double>(last - cmd_at.at(p)));
    local_cmd.push_back(static_cast<double>(enforce[0].at(p) - cmd_at.at(p)));
  }
  json out = {{"bench", "mesh_propagation"},
              {"nodes", mesh.size()},
              {"claims", claims},
              {"backend", backend},
              {"issue_seconds", static_cast<double>(issue_ms) / 1000.0},
              {"fleet_p50_ms", percentile(fleet, 0.5)},
              {"fleet_p99_ms", percentile(fleet, 0.99)},
              {"fleet_max_ms", percentile(fleet, 1.0)},
              {"pairs_p50_ms", percentile(pairs, 0.5)},
              {"pairs_p99_ms", percentile(pairs, 0.99)},
              {"origin_local_p50_ms", percentile(local, 0.5)},
              {"origin_local_p99_ms", percentile(local, 0.99)},
              {"fleet_from_cmd_p50_ms", percentile(fleet_cmd, 0.5)},
              {"fleet_from_cmd_p99_ms", percentile(fleet_cmd, 0.99)},
              {"origin_local_from_cmd_p50_ms", percentile(local_cmd, 0.5)},
              {"origin_local_from_cmd_p99_ms", percentile(local_cmd, 0.99)},
              {"claim_gap_ms", claim_gap_ms},
              {"latency_by_hops_from_origin", by_hops},
              // CPU seconds used while the claims were issued and delivered, over that wall
              // time: with 2 cores, 2.0 would mean the machine was saturated.
              {"claims_wall_s", claims_wall_s},
              {"daemons_cpu_s", cpu1.first - cpu0.first},
              {"followers_cpu_s", cpu1.second - cpu0.second},
              {"daemons_cpu_ms_per_claim",
               (cpu1.first - cpu0.first) * 1000.0 / static_cast<double>(claims)},
              {"daemons_user_s", us1.first - us0.first},
              {"daemons_sys_s", us1.second - us0.second},
              // Over the claims (anti-entropy and pings included), summed over the fleet.
              {"frames_in_per_claim", (frames_in1 - frames_in0) / static_cast<double>(claims)},
              {"gossip_duplicates_per_claim", (dups1 - dups0) / static_cast<double>(claims)},
              {"mean_degree_after_claims",
               static_cast<double>(degree_sum) / static_cast<double>(mesh.size())},
              {"min_degree_after_claims", min_degree_after},
              {"components_after_claims", components_after},
              // Surplus links dropped by agreement (mesh.trim_surplus), summed over the fleet.
              {"trim_by_event", metric_sums(mesh, "meshd_trim_total", "event")},
              {"loadavg_after_claims", read_line("/proc/loadavg")},
              {"softnet_dropped_over_claims", softnet_dropped() - drops_before_claims},
              {"formation", formation},
              {"per_node", per_node},
              {"timestamp_resolution_ms", 1},
              {"goal_fleet_p99_ms", 100}};
  std::printf("%s\n", out.dump().c_str());
  followers.clear();
  return 0;
}
