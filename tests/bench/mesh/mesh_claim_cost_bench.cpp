// The daemons' CPU per accepted peer claim, in a real netns mesh (issue #13: the rate-10x
// flood's cost is CPU, so this is the figure a change to the claim path must lower).
//
//   mesh_claim_cost_bench [--nodes N] [--claims K] [--rate R] [--rounds M] [--log-level L]
//                         [--backend dryrun|bpf] [--settle-s S]
//
// Builds a mesh of N nodes (default 5) with the hostile bench's relaxed origin and budget
// limits and a peer rate limit above R, so that every claim is accepted. Then, M times
// (default 3): a certified peer (mesh_peer_tool flood, the real transport) pushes K valid
// claims (default 8000, fresh /32s and seqs each round) at R claims/s (default 2000, the
// rate-10x flood's rate) into node1, which gossips them to the fleet. A round ends once every
// node holds all of them (status.active_claims, polled every 250 ms). For each round the
// bench prints one JSON line with the daemons' user and system CPU (utime, stime of
// /proc/PID/stat over the round) and their sum divided by K x N: the CPU microseconds one
// node spends per accepted claim (verify, store, enforce, log, events, relays, duplicates).
// Counts, not wall times: they depend less on what else runs on the machine. The load
// average at the start and end of the round is printed with it, and per claim and node the
// signatures verified (meshd_envelopes_verified_total) and the duplicates received
// (meshd_gossip_duplicates_total), which say what the work was.
// MESHD_TEST_BIN_DIR in the environment runs another build's meshd/meshctl (before/after).
// Needs root. The peer tool's path is compiled in (MESHD_PEER_TOOL).
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/netns/mesh/mesh_cluster.hpp"

#ifndef MESHD_PEER_TOOL
#error "MESHD_PEER_TOOL must name the mesh_peer_tool binary"
#endif

namespace {

using meshd::test::MeshCluster;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

struct Ticks {
  long user = 0, sys = 0;
};

// utime and stime (fields 14, 15) of /proc/PID/stat, in clock ticks.
Ticks cpu_ticks(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = all.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(all.substr(close + 2));  // fields from 3 on
  std::string field;
  Ticks t;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) t.user = std::stol(field);
    if (i == 15) t.sys = std::stol(field);
  }
  return t;
}

double load1() {
  double l[1] = {-1};
  return ::getloadavg(l, 1) == 1 ? l[0] : -1;
}

}  // namespace

int main(int argc, char** argv) {
  int nodes = 5, rounds = 3;
  long claims = 8000;
  double rate = 2000, settle_s = 3;
  std::string log_level = "info", backend = "dryrun";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--nodes")
      nodes = std::stoi(v);
    else if (a == "--claims")
      claims = std::stol(v);
    else if (a == "--rate")
      rate = std::stod(v);
    else if (a == "--rounds")
      rounds = std::stoi(v);
    else if (a == "--log-level")
      log_level = v;
    else if (a == "--backend")
      backend = v;
    else if (a == "--settle-s")
      settle_s = std::stod(v);
    else {
      std::fprintf(stderr, "mesh_claim_cost_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (nodes < 2 || claims < 1 || rounds < 1 || rate <= 0 || rounds * claims > 60000) {
    std::fprintf(stderr,
                 "mesh_claim_cost_bench: need --nodes >= 2, --claims >= 1, --rounds >= 1, "
                 "--rate > 0 and rounds x claims <= 60000 (the /32s of 100.64.0.0/10 used)\n");
    return 2;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  if (!meshd::test::is_root()) {
    std::fprintf(stderr, "mesh_claim_cost_bench: needs root (netns, cgroups)\n");
    return 1;
  }
  const long all = claims * rounds;
  meshd::test::MeshOptions o;
  o.nodes = nodes;
  o.backend = backend;
  o.log_level = log_level;
  o.mesh = {{"origin_rate_per_min", "100000000"},
            {"origin_burst", std::to_string(all * 2)},
            {"peer_rate_frames_per_s", std::to_string(static_cast<long>(rate * 4))}};
  o.policy = {{"budget_burst", std::to_string(all * 2)},
              {"budget_rate_per_min", "100000000"},
              {"overrun_max_claims", "1000000000"}};
  MeshCluster mesh(o);
  mesh.start_all();
  if (!mesh.wait_ready(std::min(nodes - 1, 4), 30000)) {
    std::fprintf(stderr, "mesh did not come up\n%s", mesh.logs().c_str());
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(settle_s));

  const auto& flood_ns = mesh.attach("mcst", {"10.213.0.89"});
  const std::string fdir = mesh.work_dir() + "/flooder";
  mesh.make_identity(fdir, "flooder", "zone-x");
  const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  int failed = 0;
  for (int r = 0; r < rounds && !g_stop; ++r) {
    auto sum_metric = [&](const char* sample) {
      double v = 0;
      for (int i = 1; i <= nodes; ++i) v += mesh.metric(i, sample).value_or(0);
      return v;
    };
    const double verified0 = sum_metric("meshd_envelopes_verified_total");
    const double dups0 = sum_metric("meshd_gossip_duplicates_total");
    std::vector<Ticks> t0;
    for (int i = 1; i <= nodes; ++i) t0.push_back(cpu_ticks(mesh.pid(i)));
    const double load_start = load1();
    const auto w0 = Clock::now();
    // Fresh seqs and fresh /32s each round (a /16 apart: 100.64, 100.65, ...).
    const std::string base = "100." + std::to_string(64 + r) + ".0.0";
    const std::string out = mesh.work_dir() + "/flood" + std::to_string(r) + ".out";
    auto flood = std::make_unique<meshd::test::BackgroundProcess>(
        meshd::test::netns_prefix(flood_ns) + MESHD_PEER_TOOL + " --ca " + mesh.ca_dir() +
        "/ca.pub --key " + fdir + "/node.key --cert " + fdir + "/node.cert --connect " +
        MeshCluster::ip(1) + ":7946 flood --count " + std::to_string(claims) + " --rate " +
        std::to_string(static_cast<long>(rate)) + " --seq-start " + std::to_string(r * claims + 1) +
        " --base " + base + " --hold-ms 3600000 --timeout-ms 20000 > " + out + " 2>&1");
    const long target = claims * (r + 1);
    const auto limit = std::chrono::duration<double>(claims / rate * 4 + 30);
    bool held = false;
    json active = json::array();
    while (!g_stop && !held && Clock::now() - w0 < limit) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      held = true;
      active = json::array();
      for (int i = 1; i <= nodes; ++i) {
        json s = mesh.ctl_json(i, "status");
        const long a = s.is_object() ? s.value("active_claims", 0L) : -1;
        active.push_back(a);
        held = held && a >= target;
      }
    }
    const double wall = std::chrono::duration<double>(Clock::now() - w0).count();
    std::vector<Ticks> t1;
    for (int i = 1; i <= nodes; ++i) t1.push_back(cpu_ticks(mesh.pid(i)));
    flood.reset();
    const double per = static_cast<double>(claims * nodes);
    const double verified = (sum_metric("meshd_envelopes_verified_total") - verified0) / per;
    const double dups = (sum_metric("meshd_gossip_duplicates_total") - dups0) / per;
    double user = 0, sys = 0;
    json per_node = json::array();
    for (std::size_t i = 0; i < t0.size(); ++i) {
      const double u = static_cast<double>(t1[i].user - t0[i].user) / hz;
      const double s = static_cast<double>(t1[i].sys - t0[i].sys) / hz;
      user += u;
      sys += s;
      per_node.push_back(u + s);
    }
    const double per_claim_us = (user + sys) / static_cast<double>(claims * nodes) * 1e6;
    json line = {{"round", r + 1},
                 {"claims", claims},
                 {"nodes", nodes},
                 {"rate", rate},
                 {"all_held", held},
                 {"active_claims", active},
                 {"wall_s", wall},
                 {"cpu_user_s", user},
                 {"cpu_sys_s", sys},
                 {"cpu_s_per_node", per_node},
                 {"cpu_us_per_claim_per_node", per_claim_us},
                 {"user_us_per_claim_per_node", user / static_cast<double>(claims * nodes) * 1e6},
                 {"sys_us_per_claim_per_node", sys / static_cast<double>(claims * nodes) * 1e6},
                 {"verified_per_claim_per_node", verified},
                 {"duplicates_per_claim_per_node", dups},
                 {"load1_start", load_start},
                 {"load1_end", load1()}};
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
    if (!held) {
      ++failed;
      std::fprintf(stderr, "round %d: not every node held %ld claims\n%s", r + 1, target,
                   mesh.logs(5).c_str());
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(settle_s));
  }
  return failed || g_stop ? 1 : 0;
}
