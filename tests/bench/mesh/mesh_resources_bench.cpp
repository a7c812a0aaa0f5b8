// Memory and CPU of meshd in a real 5-node netns mesh.
//
//   1. idle: after the mesh is up and settled, VmRSS of every daemon (/proc/PID/status), then
//      CPU over --idle-s seconds (default 60) from utime+stime in /proc/PID/stat;
//   2. loaded: a certified peer (mesh_peer_tool flood, the real transport) pushes --claims
//      valid claims (default 100000, distinct /32s) into node1, which gossips them to the
//      fleet; once every node holds them all (status.active_claims), or after --max-load-s
//      (default 300), VmRSS again (with its anon/file split), per node with what it holds;
//   3. catch-up (unless --catchup-claims 0): node3 is stopped (SIGTERM), the peer pushes
//      --catchup-claims more (default claims/10) into node1 until the four running nodes hold
//      them, then node3 is started again: seconds until it answers `status` (its restore
//      from the store), until it holds every claim (restore + anti-entropy), the CPU seconds
//      the new process used by each of those two moments (less load-dependent than the wall
//      times), its peak RSS (VmHWM) over the restart and its RSS once settled.
// Goals: idle RSS <= 15 MB, RSS with 100k active claims <= 40 MB, idle CPU <= 0.5% of a core.
// MESHD_TEST_BIN_DIR in the environment runs another build's meshd/meshctl (before/after).
// The config raises mesh.origin_rate_per_min / origin_burst / peer_rate_frames_per_s and the
// policy budget (budget_burst, budget_rate_per_min, overrun_max_claims) so that one origin's
// 100k claims are accepted and enforced rather than deferred or treated as an overrun.
// Prints one JSON object.
//
// Usage (root): mesh_resources_bench [--claims N] [--idle-s S] [--max-load-s S] [--backend
// bpf|dryrun] [--log-level L] [--catchup-claims N]
//               (the peer tool's path is compiled in: MESHD_PEER_TOOL)
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/netns/mesh/mesh_cluster.hpp"

#ifndef MESHD_PEER_TOOL
#error "MESHD_PEER_TOOL must name the mesh_peer_tool binary"
#endif

namespace {

using meshd::test::MeshCluster;
using nlohmann::json;

std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop = true;
}

// Sleeps `s` seconds unless a signal asks to stop.
void sleep_s(double s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(s);
  while (!g_stop && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

// A /proc/PID/status field in MB ("VmRSS", "RssAnon", "RssFile").
double status_mb(pid_t pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  return -1;
}
double rss_mb(pid_t pid) {
  return status_mb(pid, "VmRSS");
}
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
// VmRSS with its anonymous / file-backed split, for the report.
json rss_detail(pid_t pid) {
  return {{"rss", status_mb(pid, "VmRSS")},
          {"anon", status_mb(pid, "RssAnon")},
          {"file", status_mb(pid, "RssFile")},
          {"shmem", status_mb(pid, "RssShmem")}};
}

// utime + stime in clock ticks.
long cpu_ticks(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(all.substr(all.rfind(')') + 2));  // fields from 3 on
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

}  // namespace

int main(int argc, char** argv) {
  long claims = 100000;
  long catchup_claims = -1;  // default: claims / 10
  int idle_s = 60;
  int max_load_s = 300;
  std::string backend = "bpf";
  std::string log_level = "warn";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--claims")
      claims = std::stol(argv[i + 1]);
    else if (a == "--idle-s")
      idle_s = std::stoi(argv[i + 1]);
    else if (a == "--backend")
      backend = argv[i + 1];
    else if (a == "--max-load-s")
      max_load_s = std::stoi(argv[i + 1]);
    else if (a == "--log-level")  // the daemons' (their logs are kept only while running)
      log_level = argv[i + 1];
    else if (a == "--catchup-claims")
      catchup_claims = std::stol(argv[i + 1]);
  }
  if (catchup_claims < 0) catchup_claims = claims / 10;
  std::signal(SIGINT, on_signal);  // stop waiting, then tear the mesh down normally
  std::signal(SIGTERM, on_signal);
  if (!meshd::test::is_root()) {
    std::fprintf(stderr, "mesh_resources_bench: needs root (netns, bpf, cgroups)\n");
    return 1;
  }
  meshd::test::MeshOptions o;
  o.backend = backend;
  o.log_level = log_level;
  o.mesh = {{"origin_rate_per_min", "100000000"},
            {"origin_burst", std::to_string((claims + catchup_claims) * 2)},
            {"peer_rate_frames_per_s", "1000000"}};
  o.policy = {{"budget_burst", std::to_string((claims + catchup_claims) * 2)},
              {"budget_rate_per_min", "100000000"},
              {"overrun_max_claims", "1000000000"}};
  MeshCluster mesh(o);
  mesh.start_all();
  if (!mesh.wait_ready(4, 30000)) {
    std::fprintf(stderr, "mesh did not come up\n%s", mesh.logs().c_str());
    return 1;
  }
  sleep_s(5);  // settle: anti-entropy, first pings

  json idle_rss = json::object(), idle_cpu = json::object();
  double idle_rss_max = 0, idle_cpu_max = 0;
  std::vector<long> t0;
  for (int i = 1; i <= mesh.size(); ++i) {
    const double r = rss_mb(mesh.pid(i));
    idle_rss[mesh.name(i)] = rss_detail(mesh.pid(i));
    idle_rss_max = std::max(idle_rss_max, r);
    t0.push_back(cpu_ticks(mesh.pid(i)));
  }
  const auto w0 = std::chrono::steady_clock::now();
  sleep_s(idle_s);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  for (int i = 1; i <= mesh.size(); ++i) {
    const double pct =
        static_cast<double>(cpu_ticks(mesh.pid(i)) - t0[static_cast<std::size_t>(i - 1)]) / hz /
        wall * 100.0;
    idle_cpu[mesh.name(i)] = pct;
    idle_cpu_max = std::max(idle_cpu_max, pct);
  }

  // Loaded: a certified peer floods node1 with valid claims. It stays connected (a peer
  // that leaves takes its undelivered frames with it) until every node holds them all.
  const auto& flood_ns = mesh.attach("mfld", {"10.213.0.88"});
  const std::string fdir = mesh.work_dir() + "/flooder";
  mesh.make_identity(fdir, "flooder", "zone-x");
  const auto f0 = std::chrono::steady_clock::now();
  const std::string flood_log = mesh.work_dir() + "/flood.out";
  auto flood = std::make_unique<meshd::test::BackgroundProcess>(
      meshd::test::netns_prefix(flood_ns) + MESHD_PEER_TOOL + " --ca " + mesh.ca_dir() +
      "/ca.pub --key " + fdir + "/node.key --cert " + fdir + "/node.cert --connect " +
      MeshCluster::ip(1) + ":7946 flood --count " + std::to_string(claims) +
      " --hold-ms 3600000 --timeout-ms 20000 > " + flood_log + " 2>&1");
  json active = json::object();
  auto last_report = std::chrono::steady_clock::now();
  int skip_node = 0;  // not polled (stopped during the catch-up phase)
  long target = claims;
  auto all_hold = [&] {
    if (g_stop) return true;
    bool all = true;
    for (int i = 1; i <= mesh.size(); ++i) {
      if (i == skip_node) continue;
      json s = mesh.ctl_json(i, "status");
      const long a = s.is_object() ? s.value("active_claims", 0L) : -1;
      active[mesh.name(i)] = a;
      all = all && a >= target;
    }
    if (std::chrono::steady_clock::now() - last_report > std::chrono::seconds(10)) {
      last_report = std::chrono::steady_clock::now();
      std::fprintf(stderr, "mesh_resources_bench: %.0f s: active claims %s\n",
                   std::chrono::duration<double>(last_report - f0).count(), active.dump().c_str());
    }
    return all;
  };
  // Polled once a second: meshctl calls must not be a load of their own.
  bool held = false;
  while (!g_stop && !(held = all_hold()) &&
         std::chrono::steady_clock::now() - f0 < std::chrono::seconds(max_load_s))
    sleep_s(1);
  held = held && !g_stop;
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - f0).count();
  flood.reset();
  sleep_s(12);  // settled: the daemons return freed memory to the OS every 10 s
  json loaded_rss = json::object(), enforced = json::object();
  double loaded_rss_max = 0;
  for (int i = 1; i <= mesh.size(); ++i) {
    const double r = rss_mb(mesh.pid(i));
    json detail = rss_detail(mesh.pid(i));
    // The daemon's own view of its anonymous memory (absent from older builds).
    for (const auto& [key, sample] :
         {std::pair{"heap_in_use", "meshd_heap_bytes{state=\"in_use\"}"},
          std::pair{"heap_free", "meshd_heap_bytes{state=\"free\"}"},
          std::pair{"sqlite", "meshd_sqlite_memory_bytes"}})
      if (auto v = mesh.metric(i, sample)) detail[key] = *v / 1048576.0;
    loaded_rss[mesh.name(i)] = detail;
    loaded_rss_max = std::max(loaded_rss_max, r);
    enforced[mesh.name(i)] = mesh.ctl_json(i, "status").value("enforced", 0L);
  }

  // Catch-up: node3 misses catchup_claims while it is down, then restarts holding `claims`.
  json catchup = nullptr;
  bool caught_up = true;
  if (held && catchup_claims > 0) {
    constexpr int kNode = 3;
    mesh.kill(kNode, SIGTERM);
    skip_node = kNode;
    target = claims + catchup_claims;
    const std::string flood2_log = mesh.work_dir() + "/flood2.out";
    auto flood2 = std::make_unique<meshd::test::BackgroundProcess>(
        meshd::test::netns_prefix(flood_ns) + MESHD_PEER_TOOL + " --ca " + mesh.ca_dir() +
        "/ca.pub --key " + fdir + "/node.key --cert " + fdir + "/node.cert --connect " +
        MeshCluster::ip(1) + ":7946 flood --count " + std::to_string(catchup_claims) +
        " --seq-start " + std::to_string(claims + 1) +
        " --base 100.96.0.0 --hold-ms 3600000 --timeout-ms 20000 > " + flood2_log + " 2>&1");
    const auto g0 = std::chrono::steady_clock::now();
    bool others = false;
    while (!g_stop && !(others = all_hold()) && seconds_since(g0) < max_load_s) sleep_s(1);
    flood2.reset();
    skip_node = 0;
    if (others && !g_stop) {
      const auto r0 = std::chrono::steady_clock::now();
      mesh.start(kNode);
      const bool answered = mesh.wait_status(kNode, max_load_s * 1000);
      const double restore_s = seconds_since(r0);
      // CPU the restarted daemon used (a new process: all of it is restore + catch-up). Less
      // dependent on the machine's other load than the wall times.
      const double hz_r = static_cast<double>(::sysconf(_SC_CLK_TCK));
      const double restore_cpu_s = static_cast<double>(cpu_ticks(mesh.pid(kNode))) / hz_r;
      long have = -1;
      while (answered && !g_stop && seconds_since(r0) < max_load_s) {
        json st = mesh.ctl_json(kNode, "status");
        have = st.is_object() ? st.value("active_claims", 0L) : -1;
        if (have >= target) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      const double catchup_s = seconds_since(r0);
      const double catchup_cpu_s = static_cast<double>(cpu_ticks(mesh.pid(kNode))) / hz_r;
      caught_up = have >= target;
      const double hwm = status_mb(mesh.pid(kNode), "VmHWM");
      sleep_s(12);  // settled, as for loaded_rss
      catchup = {{"node", mesh.name(kNode)},
                 {"missed_claims", catchup_claims},
                 {"holds", have},
                 {"caught_up", caught_up},
                 {"status_after_s", restore_s},
                 {"all_claims_after_s", catchup_s},
                 {"cpu_s_when_status_answered", restore_cpu_s},
                 {"cpu_s_when_all_claims_held", catchup_cpu_s},
                 {"peak_rss_mb", hwm},
                 {"settled_rss_mb", rss_detail(mesh.pid(kNode))}};
    } else {
      caught_up = false;
      catchup = {{"node", mesh.name(kNode)},
                 {"error", "the running nodes did not get the claims"},
                 {"active_claims", active}};
    }
  }
  json out = {{"bench", "mesh_resources"},
              {"nodes", mesh.size()},
              {"backend", backend},
              {"idle_rss_mb", idle_rss},
              {"idle_rss_max_mb", idle_rss_max},
              {"idle_cpu_percent", idle_cpu},
              {"idle_cpu_max_percent", idle_cpu_max},
              {"idle_window_s", wall},
              {"claims", claims},
              {"all_nodes_hold_all_claims", held},
              {"active_claims", active},
              {"enforced", enforced},
              {"load_seconds", load_s},
              {"loaded_rss_mb", loaded_rss},
              {"loaded_rss_max_mb", loaded_rss_max},
              {"catchup", catchup},
              {"goal_idle_rss_mb", 15},
              {"goal_loaded_rss_mb", 40},
              {"goal_idle_cpu_percent", 0.5}};
  std::printf("%s\n", out.dump().c_str());
  return held && caught_up ? 0 : 1;
}
