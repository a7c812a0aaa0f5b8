// Honest delivery under attack: a real 5-node netns mesh with honest claims flowing (one
// `block add` every --interval-ms, nodes in turn). --rounds times: a baseline window, then each
// attack of tests/netns/mesh/hostile.hpp against node1 for --phase-s seconds from its start (no
// ramp-up left out; each round with a fresh attacker identity); then a closing baseline.
// For every window: p50/p99 of the delay from claim_signed at the origin to block_enforce at
// each other node, the p99 change against the round's baseline, node1's RSS (max over the
// window's end of all nodes too), the CPU seconds the five daemons used in the window, the
// metric that counted the attack and whether a log line of node1 names the attacker. Prints one
// JSON object per window, then a Markdown table. Then the comparison the goal is about: every
// attack's samples pooled over its rounds against all baseline windows pooled, p99 change with a 95
// % bootstrap interval (claims resampled, a claim's delays to the four other nodes kept together),
// and the same for the baselines against each other (even vs odd windows): how far apart two
// measurements of one thing land.
//
// Usage (root): mesh_hostile_bench [--phase-s 20] [--interval-ms 200] [--peer-rate 200]
//                                   [--rounds 1] [--only ATTACK[,ATTACK...]]
//                                   [--mesh KEY=VALUE]... [--policy KEY=VALUE]...
//   (the flood runs at 10x --peer-rate; the peer tool's path is compiled in; --only runs the
//   named attacks alone, e.g. --only rate-10x, between the same baselines)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "tests/netns/mesh/hostile.hpp"

#ifndef MESHD_PEER_TOOL
#error "MESHD_PEER_TOOL must name the mesh_peer_tool binary"
#endif

namespace {

using namespace meshd::test;
using nlohmann::json;

std::size_t file_size(const std::string& path) {
  std::ifstream in(path, std::ios::ate);
  return in ? static_cast<std::size_t>(in.tellg()) : 0;
}

std::string read_from(const std::string& path, std::size_t offset) {
  std::ifstream in(path);
  std::string all{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return offset < all.size() ? all.substr(offset) : std::string();
}

// Samples of several windows, each tagged with a claim number unique across them.
struct Pool {
  std::vector<double> delays;
  std::vector<int> claim;
  int claims = 0, windows = 0;
  void add(const HonestTraffic::Window& w) {
    delays.insert(delays.end(), w.delays_ms.begin(), w.delays_ms.end());
    for (int c : w.claim_of) claim.push_back(claims + c);
    claims += w.claims;
    ++windows;
  }
};

// p99 change of `b` against `a` in percent, and its 95 % bootstrap interval: both pools are
// resampled by claim (with replacement, a claim's delays together) 2,000 times.
struct Change {
  double a_p99, b_p99, percent, low, high;
};
Change p99_change(const Pool& a, const Pool& b) {
  auto by_claim = [](const Pool& p) {
    std::map<int, std::vector<double>> m;
    for (std::size_t i = 0; i < p.delays.size(); ++i) m[p.claim[i]].push_back(p.delays[i]);
    std::vector<std::vector<double>> v;
    for (auto& [c, d] : m) v.push_back(std::move(d));
    return v;
  };
  const auto ca = by_claim(a), cb = by_claim(b);
  std::mt19937 rng(12345);
  auto resample = [&](const std::vector<std::vector<double>>& claims) {
    std::uniform_int_distribution<std::size_t> pick(0, claims.size() - 1);
    std::vector<double> out;
    for (std::size_t k = 0; k < claims.size(); ++k) {
      const auto& d = claims[pick(rng)];
      out.insert(out.end(), d.begin(), d.end());
    }
    return percentile(std::move(out), 99);
  };
  Change c{percentile(a.delays, 99), percentile(b.delays, 99), 0, 0, 0};
  c.percent = c.a_p99 > 0 ? (c.b_p99 - c.a_p99) / c.a_p99 * 100 : 0;
  if (ca.empty() || cb.empty()) return c;
  std::vector<double> changes;
  for (int i = 0; i < 2000; ++i) {
    const double pa = resample(ca), pb = resample(cb);
    if (pa > 0) changes.push_back((pb - pa) / pa * 100);
  }
  c.low = percentile(changes, 2.5);
  c.high = percentile(changes, 97.5);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  int phase_s = 20, interval_ms = 200, rounds = 1;
  double peer_rate = 200;
  std::string only;  // comma-separated attack names; empty = all
  // --mesh / --policy KEY=VALUE override the bench's relaxed limits (hostile_mesh_options),
  // e.g. to measure an attack against the daemon's own defaults.
  std::map<std::string, std::string> extra_mesh, extra_policy;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--mesh" || a == "--policy") {
      if (!MeshOptions::set_line(a == "--mesh" ? extra_mesh : extra_policy, argv[i + 1])) {
        std::fprintf(stderr, "mesh_hostile_bench: %s takes KEY=VALUE, got '%s'\n", a.c_str(),
                     argv[i + 1]);
        return 2;
      }
    } else if (a == "--phase-s")
      phase_s = std::stoi(argv[i + 1]);
    else if (a == "--interval-ms")
      interval_ms = std::stoi(argv[i + 1]);
    else if (a == "--peer-rate")
      peer_rate = std::stod(argv[i + 1]);
    else if (a == "--rounds")
      rounds = std::max(1, std::stoi(argv[i + 1]));
    else if (a == "--only")
      only = argv[i + 1];
    else {
      std::fprintf(stderr, "mesh_hostile_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (!is_root()) {
    std::fprintf(stderr, "mesh_hostile_bench: needs root (netns)\n");
    return 1;
  }
  MeshOptions options = hostile_mesh_options(peer_rate);
  for (auto& [k, v] : extra_mesh) options.mesh[k] = v;
  for (auto& [k, v] : extra_policy) options.policy[k] = v;
  MeshCluster mesh(options);
  prepare_hostile_mesh(mesh);
  mesh.start_all();
  if (!mesh.wait_ready(4, 30000)) {
    std::fprintf(stderr, "mesh did not come up\n%s", mesh.logs().c_str());
    return 1;
  }
  auto attacks = hostile_attacks(mesh, MESHD_PEER_TOOL, 10 * peer_rate, rounds);
  if (!only.empty()) {
    const std::string list = "," + only + ",";
    std::erase_if(attacks, [&](const Attack& a) {
      return list.find("," + a.name + ",") == std::string::npos;
    });
    if (attacks.empty()) {
      std::fprintf(stderr, "mesh_hostile_bench: --only %s names no attack\n", only.c_str());
      return 2;
    }
  }
  HonestTraffic honest(mesh, interval_ms);
  const std::string log = mesh.dir(1) + "/meshd.log";
  auto max_rss = [&] {
    double m = 0;
    for (int i = 1; i <= mesh.size(); ++i) m = std::max(m, rss_mb(mesh.pid(i)));
    return m;
  };
  auto pause = [](int s) { std::this_thread::sleep_for(std::chrono::seconds(s)); };
  // CPU seconds of the five daemons since the window began: what the attack costs the mesh.
  auto daemons_cpu = [&] {
    double sum = 0;
    for (int i = 1; i <= mesh.size(); ++i) sum += cpu_s(mesh.pid(i));
    return sum;
  };
  double cpu_mark = 0;
  auto begin_window = [&] {
    (void)honest.take(0);
    cpu_mark = daemons_cpu();
  };
  auto end_window = [&](double& cpu) {
    cpu = daemons_cpu() - cpu_mark;
    return honest.take();
  };

  std::vector<json> rows;
  auto window = [&](const std::string& name, const HonestTraffic::Window& w, double base_p99,
                    double cpu) {
    const double p99 = percentile(w.delays_ms, 99);
    json row{{"window", name},
             {"claims", w.claims},
             {"samples", w.delays_ms.size()},
             {"missing", w.missing},
             {"failed_block_add", w.failed},
             {"p50_ms", percentile(w.delays_ms, 50)},
             {"p99_ms", p99},
             {"p99_change_percent", base_p99 > 0 ? (p99 - base_p99) / base_p99 * 100 : 0},
             {"node1_rss_mb", rss_mb(mesh.pid(1))},
             {"max_rss_mb", max_rss()},
             {"daemons_cpu_s", cpu},
             {"node1_running", mesh.running(1)}};
    return row;
  };

  pause(3);
  begin_window();
  Pool baselines, even, odd;
  std::map<std::string, Pool> attacked;
  auto baseline = [&](const std::string& name, double base_p99) {
    pause(phase_s);
    double cpu = 0;
    const auto w = end_window(cpu);
    baselines.add(w);
    (baselines.windows % 2 ? odd : even).add(w);
    json row = window(name, w, base_p99, cpu);
    std::printf("%s\n", row.dump().c_str());
    std::fflush(stdout);
    rows.push_back(row);
    return row["p99_ms"].get<double>();
  };
  for (int round = 1; round <= rounds; ++round) {
    const double base_p99 =
        baseline(rounds > 1 ? "baseline-" + std::to_string(round) : "baseline", 0);
    for (const auto& attack : attacks) {
      const double before = attack_count(mesh, attack);
      const std::size_t log_at = file_size(log);
      // The window starts with the attack: the flood's burst (the claims it gets accepted
      // before its ban) comes within ~1.5 s of its connect, and a ramp-up left out of the
      // window left it out of the measurement once the peer tool stopped signing everything up
      // front.
      begin_window();
      auto process = attack.start();
      pause(phase_s);
      double cpu = 0;
      const auto w = end_window(cpu);
      attacked[attack.name].add(w);
      json row = window(attack.name, w, base_p99, cpu);
      const double after = attack_count(mesh, attack);
      process.reset();
      row["attack"] = attack.description;
      row["metric"] = attack.metrics;
      row["metric_delta"] = after - before;
      row["log_names_attacker"] =
          read_from(log, log_at).find(attack.log_needle()) != std::string::npos;
      std::printf("%s\n", row.dump().c_str());
      std::fflush(stdout);
      rows.push_back(row);
      pause(3);  // recovery, not measured
      begin_window();
    }
  }
  baseline("baseline-end", rows.front()["p99_ms"].get<double>());

  std::printf(
      "\n| window | honest p50 / p99 ms | p99 vs baseline | missing | node1 RSS MB (max all) | "
      "daemons' CPU s | metric (delta on node1) | log names attacker |\n"
      "|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    std::string metric = "-";
    if (r.contains("metric")) {
      metric.clear();
      for (const auto& m : r["metric"])
        metric += (metric.empty() ? "" : " + ") + m.get<std::string>();
      metric += " (+" + std::to_string(static_cast<long>(r["metric_delta"].get<double>())) + ")";
    }
    std::printf("| %s | %.2f / %.2f | %+.0f %% | %d | %.1f (%.1f) | %.2f | `%s` | %s |\n",
                r["window"].get<std::string>().c_str(), r["p50_ms"].get<double>(),
                r["p99_ms"].get<double>(), r["p99_change_percent"].get<double>(),
                r["missing"].get<int>(), r["node1_rss_mb"].get<double>(),
                r["max_rss_mb"].get<double>(), r["daemons_cpu_s"].get<double>(), metric.c_str(),
                r.contains("log_names_attacker")
                    ? (r["log_names_attacker"].get<bool>() ? "yes" : "no")
                    : "-");
  }
  // The goal: p99 under attack < 1.2 x baseline. Met only when the whole interval is below
  // +20 %, missed when it is above. The baselines against each other show the resolution: the
  // run can tell 20 % apart only if their interval lies within -20 .. +20 %; when it excludes
  // 0 the baseline itself moved between windows (load from outside the mesh), which resampling
  // within the pools does not cover: every interval of the run is then too narrow.
  std::printf(
      "\n| pooled | baseline p99 ms (windows, samples) | p99 ms (windows, samples) | change | "
      "95 %% interval | verdict |\n|---|---|---|---|---|---|\n");
  auto line = [](const std::string& name, const Pool& a, const Pool& b, bool same) {
    const Change c = p99_change(a, b);
    const char* verdict = c.high < 20   ? "< +20 %: met"
                          : c.low >= 20 ? ">= +20 %: missed"
                                        : "not resolved";
    if (same)
      verdict = c.low > -20 && c.high < 20 ? "resolves 20 %"
                : c.low > 0 || c.high < 0  ? "baselines moved: intervals too narrow"
                                           : "cannot resolve 20 %";
    std::printf("| %s | %.2f (%d, %zu) | %.2f (%d, %zu) | %+.0f %% | %+.0f .. %+.0f %% | %s |\n",
                name.c_str(), c.a_p99, a.windows, a.delays.size(), c.b_p99, b.windows,
                b.delays.size(), c.percent, c.low, c.high, verdict);
  };
  line("baselines: odd vs even windows", even, odd, true);
  for (const auto& attack : attacks) line(attack.name, baselines, attacked[attack.name], false);
  return 0;
}
