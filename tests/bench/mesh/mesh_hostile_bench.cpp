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
// After each attack, an after-window until the daemons' CPU is back to a quiet baseline's (at
// least 3 s; the flood's at least until its deferred claims have drained, ~30 s at meshd's
// defaults), reported on its own: an attack's late work lands there, not in the next baseline.
// The first line printed is the configuration the daemons ran with.
//
// Usage (root): mesh_hostile_bench [--phase-s 20] [--interval-ms 200] [--peer-rate 200]
//                                   [--rounds 1] [--only ATTACK[,ATTACK...]]
//                                   [--limits defaults|relaxed]
//                                   [--mesh KEY=VALUE]... [--policy KEY=VALUE]...
//                                   [--settle-min-s N] [--settle-max-s 60]
//   (the flood runs at 10x --peer-rate; the peer tool's path is compiled in; --only runs the
//   named attacks alone, e.g. --only rate-10x, between the same baselines; --only none runs
//   --rounds + 1 baseline windows and nothing else). --limits: meshd's
//   own per-origin rate and overrun limits (defaults, the default) or the relaxed ones that
//   leave the per-peer frame limit alone against the flood (tests/netns/mesh/hostile.hpp,
//   Limits); --mesh/--policy override single keys on top. An --interval-ms whose honest stream
//   would exceed the per-origin rate or the overrun threshold is refused (exit 2).
#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "meshd/app/config.hpp"
#include "meshd/common/numbers.hpp"
#include "meshd/core/config.hpp"
#include "tests/netns/mesh/hostile.hpp"

#ifndef MESHD_PEER_TOOL
#error "MESHD_PEER_TOOL must name the mesh_peer_tool binary"
#endif

namespace {

// A number option's value through meshd's own parser (meshd/common/numbers.hpp): false, and a
// message naming the option and why, for anything that is not a whole number in range.
bool number_of(const std::string& what, const std::string& text, int& out) {
  auto v = meshd::parse_integer<int>(text, INT_MIN, INT_MAX);
  if (!v)
    std::fprintf(stderr, "mesh_hostile_bench: %s: %s\n", what.c_str(), v.error().message.c_str());
  if (v) out = *v;
  return v.has_value();
}
bool number_of(const std::string& what, const std::string& text, double& out) {
  auto v = meshd::parse_finite(text, -1e300, 1e300);
  if (!v)
    std::fprintf(stderr, "mesh_hostile_bench: %s: %s\n", what.c_str(), v.error().message.c_str());
  if (v) out = *v;
  return v.has_value();
}

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

// Samples of several windows: window -> claim -> its delays (one per receiving node).
struct Pool {
  std::vector<std::vector<std::vector<double>>> windows;
  std::vector<double> delays;  // all of them
  void add(const HonestTraffic::Window& w) {
    auto& claims = windows.emplace_back(static_cast<std::size_t>(w.claims));
    for (std::size_t i = 0; i < w.delays_ms.size(); ++i)
      claims[static_cast<std::size_t>(w.claim_of[i])].push_back(w.delays_ms[i]);
    std::erase_if(claims, [](const auto& d) { return d.empty(); });
    if (claims.empty()) windows.pop_back();
    delays.insert(delays.end(), w.delays_ms.begin(), w.delays_ms.end());
  }
  int count() const { return static_cast<int>(windows.size()); }
};

// How many samples the nearest-rank p99 of n samples rests on: it is the k-th largest.
std::size_t p99_rank_from_top(std::size_t n) {
  if (n == 0) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(n)));
  return n - std::max<std::size_t>(rank, 1) + 1;
}

// p99 change of `b` against `a` in percent, and its 95 % bootstrap interval, 2,000 resamples
// of both pools. Two levels when both pools have 2 windows or more: windows with replacement,
// then the claims of each drawn window with replacement (a claim's delays together), so the
// interval covers how far windows of one thing land apart (load from outside the mesh moves
// them), not only the claims' scatter. With one window on a side only claims are resampled,
// and the interval is too narrow whenever the windows moved.
struct Change {
  double a_p99, b_p99, percent, low, high;
  bool by_window;
};
Change p99_change(const Pool& a, const Pool& b) {
  std::mt19937 rng(12345);
  const bool by_window = a.count() >= 2 && b.count() >= 2;
  auto resample = [&](const Pool& p) {
    std::vector<double> out;
    auto draw_claims = [&](const std::vector<std::vector<double>>& claims) {
      std::uniform_int_distribution<std::size_t> pick(0, claims.size() - 1);
      for (std::size_t k = 0; k < claims.size(); ++k) {
        const auto& d = claims[pick(rng)];
        out.insert(out.end(), d.begin(), d.end());
      }
    };
    if (by_window) {
      std::uniform_int_distribution<std::size_t> pick(0, p.windows.size() - 1);
      for (std::size_t k = 0; k < p.windows.size(); ++k) draw_claims(p.windows[pick(rng)]);
    } else {
      std::vector<std::vector<double>> all;
      for (const auto& w : p.windows) all.insert(all.end(), w.begin(), w.end());
      draw_claims(all);
    }
    return percentile(std::move(out), 99);
  };
  Change c{percentile(a.delays, 99), percentile(b.delays, 99), 0, 0, 0, by_window};
  c.percent = c.a_p99 > 0 ? (c.b_p99 - c.a_p99) / c.a_p99 * 100 : 0;
  if (a.windows.empty() || b.windows.empty()) return c;
  std::vector<double> changes;
  for (int i = 0; i < 2000; ++i) {
    const double pa = resample(a), pb = resample(b);
    if (pa > 0) changes.push_back((pb - pa) / pa * 100);
  }
  c.low = percentile(changes, 2.5);
  c.high = percentile(changes, 97.5);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  int phase_s = 20, interval_ms = 200, rounds = 1, settle_min_s = -1, settle_max_s = 60;
  double peer_rate = 200;
  Limits limits = Limits::daemon_defaults;
  std::string only;  // comma-separated attack names; empty = all
  // --mesh / --policy KEY=VALUE override single keys of the --limits configuration
  // (hostile_mesh_options).
  std::map<std::string, std::string> extra_mesh, extra_policy;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--mesh" || a == "--policy") {
      if (!MeshOptions::set_line(a == "--mesh" ? extra_mesh : extra_policy, argv[i + 1])) {
        std::fprintf(stderr, "mesh_hostile_bench: %s takes KEY=VALUE, got '%s'\n", a.c_str(),
                     argv[i + 1]);
        return 2;
      }
    } else if (a == "--phase-s") {
      if (!number_of(a, argv[i + 1], phase_s)) return 2;
    } else if (a == "--interval-ms") {
      if (!number_of(a, argv[i + 1], interval_ms)) return 2;
    } else if (a == "--peer-rate") {
      if (!number_of(a, argv[i + 1], peer_rate)) return 2;
    } else if (a == "--rounds") {
      if (!number_of(a, argv[i + 1], rounds)) return 2;
      rounds = std::max(1, rounds);
    } else if (a == "--only") {
      only = argv[i + 1];
    } else if (a == "--settle-min-s") {
      if (!number_of(a, argv[i + 1], settle_min_s)) return 2;
      settle_min_s = std::max(3, settle_min_s);  // for every attack
    } else if (a == "--settle-max-s") {
      if (!number_of(a, argv[i + 1], settle_max_s)) return 2;
      settle_max_s = std::max(3, settle_max_s);
    } else if (a == "--limits") {
      const std::string v = argv[i + 1];
      if (v != "defaults" && v != "relaxed") {
        std::fprintf(stderr, "mesh_hostile_bench: --limits takes defaults or relaxed\n");
        return 2;
      }
      limits = v == "relaxed" ? Limits::relaxed : Limits::daemon_defaults;
    } else {
      std::fprintf(stderr, "mesh_hostile_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (!is_root()) {
    std::fprintf(stderr, "mesh_hostile_bench: needs root (netns)\n");
    return 1;
  }
  MeshOptions options = hostile_mesh_options(peer_rate, limits);
  for (auto& [k, v] : extra_mesh) options.mesh[k] = v;
  for (auto& [k, v] : extra_policy) options.policy[k] = v;
  if (const auto why = honest_stream_problem(options, interval_ms); !why.empty()) {
    std::fprintf(stderr, "mesh_hostile_bench: --interval-ms %d: %s\n", interval_ms, why.c_str());
    return 2;
  }
  // The flood's after-window lasts at least as long as its deferred claims take to drain: the
  // per-origin limit queues up to origin_queue_max (meshd/core/config.hpp, not configurable)
  // and feeds them out at origin_rate_per_min, on every node, ~26 s at meshd's defaults. A 3 s
  // window left that work in the following baselines (their CPU 0.31-0.75 s per 4 s against
  // 0.23-0.29 with the relaxed limits). The other attacks push no more new claims than
  // origin_burst: 3 s, unless --settle-min-s says otherwise.
  double origin_rate_per_min = meshd::app::MeshConfig{}.origin_rate_per_min;
  if (options.mesh.contains("origin_rate_per_min") &&
      !number_of("--mesh origin_rate_per_min", options.mesh.at("origin_rate_per_min"),
                 origin_rate_per_min))
    return 2;
  const int flood_settle_min_s =
      settle_min_s >= 0
          ? settle_min_s
          : std::max(3, static_cast<int>(
                            std::ceil(static_cast<double>(meshd::core::Config{}.origin_queue_max) /
                                      (origin_rate_per_min / 60.0))) +
                            4);
  if (settle_min_s < 0) settle_min_s = 3;
  // What the daemons ran with: the keys not listed are meshd's defaults.
  std::printf("%s\n", json{{"limits", to_string(limits)},
                           {"mesh", options.mesh},
                           {"policy", options.policy},
                           {"phase_s", phase_s},
                           {"interval_ms", interval_ms},
                           {"rounds", rounds},
                           {"settle_min_s", settle_min_s},
                           {"flood_settle_min_s", flood_settle_min_s}}
                          .dump()
                          .c_str());
  MeshCluster mesh(options);
  prepare_hostile_mesh(mesh);
  mesh.start_all();
  if (!mesh.wait_ready(4, 30000)) {
    std::fprintf(stderr, "mesh did not come up\n%s", mesh.logs().c_str());
    return 1;
  }
  auto attacks = hostile_attacks(mesh, MESHD_PEER_TOOL, 10 * peer_rate, rounds);
  if (only == "none") {
    attacks.clear();  // baselines only: what the run can resolve, window against window
  } else if (!only.empty()) {
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
             {"p99_is_kth_largest", p99_rank_from_top(w.delays_ms.size())},
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
  std::map<std::string, Pool> attacked, after;
  int baseline_windows = 0;
  // The daemons' CPU per second in the quietest baseline window so far: what "settled" means.
  double quiet_cpu_per_s = 1e9;
  auto baseline = [&](const std::string& name, double base_p99) {
    pause(phase_s);
    double cpu = 0;
    const auto w = end_window(cpu);
    baselines.add(w);
    (++baseline_windows % 2 ? odd : even).add(w);
    quiet_cpu_per_s = std::min(quiet_cpu_per_s, cpu / phase_s);
    json row = window(name, w, base_p99, cpu);
    std::printf("%s\n", row.dump().c_str());
    std::fflush(stdout);
    rows.push_back(row);
    cpu_mark = daemons_cpu();  // the next window starts here (with --only none, a baseline)
    return row["p99_ms"].get<double>();
  };
  // After an attack: its own window, until the daemons are back to a quiet baseline's CPU:
  // over the last 3 s at most 1.25x the quietest baseline's CPU per second + 0.02 s (at least
  // 3 s, at most --settle-max-s; /proc counts CPU in 10 ms ticks per daemon, hence 3 s). Work
  // an attack leaves behind (claims the per-origin limit deferred and feeds out at
  // origin_rate_per_min, anti-entropy of what it dropped) lands here, not in the next
  // baseline, and its honest delays count as the attack's aftermath.
  auto settle = [&](const std::string& name, double base_p99, int min_s) {
    const auto t0 = std::chrono::steady_clock::now();
    const double limit = 3 * (1.25 * quiet_cpu_per_s + 0.02);
    std::vector<double> marks{daemons_cpu()};
    bool quiet = false;
    for (int waited = 1; waited <= std::max(settle_max_s, min_s) && !quiet; ++waited) {
      pause(1);
      marks.push_back(daemons_cpu());
      quiet = waited >= min_s && marks.back() - marks[marks.size() - 4] <= limit;
    }
    double cpu = 0;
    const auto w = end_window(cpu);
    after[name].add(w);
    json row = window(name + " (after)", w, base_p99, cpu);
    row["settle_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    row["settled"] = quiet;
    std::printf("%s\n", row.dump().c_str());
    std::fflush(stdout);
    rows.push_back(row);
    begin_window();
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
      cpu_mark = daemons_cpu();
      settle(attack.name, base_p99, attack.name == "rate-10x" ? flood_settle_min_s : settle_min_s);
    }
  }
  baseline("baseline-end", rows.front()["p99_ms"].get<double>());

  std::printf(
      "\n| window | honest p50 / p99 ms | samples (p99 = k-th largest) | p99 vs baseline | "
      "missing | node1 RSS MB (max all) | daemons' CPU s | metric (delta on node1) | log names "
      "attacker |\n"
      "|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    std::string metric = "-";
    if (r.contains("metric")) {
      metric.clear();
      for (const auto& m : r["metric"])
        metric += (metric.empty() ? "" : " + ") + m.get<std::string>();
      metric += " (+" + std::to_string(static_cast<long>(r["metric_delta"].get<double>())) + ")";
    }
    std::string name = r["window"].get<std::string>();
    if (r.contains("settle_s"))
      name += " " + std::to_string(std::lround(r["settle_s"].get<double>())) + " s" +
              (r["settled"].get<bool>() ? "" : ", not settled");
    std::printf(
        "| %s | %.2f / %.2f | %zu (%zu) | %+.0f %% | %d | %.1f (%.1f) | %.2f | `%s` | %s |\n",
        name.c_str(), r["p50_ms"].get<double>(), r["p99_ms"].get<double>(),
        r["samples"].get<std::size_t>(), r["p99_is_kth_largest"].get<std::size_t>(),
        r["p99_change_percent"].get<double>(), r["missing"].get<int>(),
        r["node1_rss_mb"].get<double>(), r["max_rss_mb"].get<double>(),
        r["daemons_cpu_s"].get<double>(), metric.c_str(),
        r.contains("log_names_attacker") ? (r["log_names_attacker"].get<bool>() ? "yes" : "no")
                                         : "-");
  }
  // The goal: p99 under attack < 1.2 x baseline. Met only when the whole interval is below
  // +20 %, missed when it is above. The baselines against each other show the resolution: the
  // run can tell 20 % apart only if their interval lies within -20 .. +20 %. With 2 windows or
  // more on each side the interval resamples windows too (p99_change), so it covers baselines
  // that move between windows; with fewer it resamples claims only, and an interval of the
  // baselines that excludes 0 then says they moved: every interval of the run is too narrow.
  std::printf(
      "\n| pooled | baseline p99 ms (windows, samples, p99 = k-th largest) | p99 ms (windows, "
      "samples, k) | change | 95 %% interval (resampled) | verdict |\n|---|---|---|---|---|---|\n");
  auto line = [](const std::string& name, const Pool& a, const Pool& b, bool same) {
    const Change c = p99_change(a, b);
    const char* verdict = c.high < 20   ? "< +20 %: met"
                          : c.low >= 20 ? ">= +20 %: missed"
                                        : "not resolved";
    if (same)
      verdict = c.low > -20 && c.high < 20 ? "resolves 20 %"
                : !c.by_window && (c.low > 0 || c.high < 0)
                    ? "baselines moved: intervals too narrow"
                    : "cannot resolve 20 %";
    std::printf(
        "| %s | %.2f (%d, %zu, %zu) | %.2f (%d, %zu, %zu) | %+.0f %% | %+.0f .. %+.0f %% (%s) | "
        "%s |\n",
        name.c_str(), c.a_p99, a.count(), a.delays.size(), p99_rank_from_top(a.delays.size()),
        c.b_p99, b.count(), b.delays.size(), p99_rank_from_top(b.delays.size()), c.percent, c.low,
        c.high, c.by_window ? "windows, claims" : "claims only", verdict);
  };
  line("baselines: odd vs even windows", even, odd, true);
  for (const auto& attack : attacks) {
    line(attack.name, baselines, attacked[attack.name], false);
    line(attack.name + " (after)", baselines, after[attack.name], false);
  }
  return 0;
}
