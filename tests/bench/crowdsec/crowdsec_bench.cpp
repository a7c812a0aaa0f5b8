// meshd vs crowdsec-firewall-bouncer, one LAPI, one run, the same decisions (prints JSON).
//
// A real CrowdSec LAPI runs in node 1's namespace of a 3-node netns meshd mesh (bpf
// backend). meshd node 1 polls it (sensor.crowdsec, poll_ms as given); Debian's
// crowdsec-firewall-bouncer (nftables mode) runs in the same namespace against the same LAPI.
// For each of N decisions (`cscli decisions add --ip`), t0 is taken just before cscli runs:
//  - meshd: until the last of the three nodes logged block_enforce for it (the event is
//    recorded after the enforcer's kernel update; all nodes share the machine's clock);
//  - bouncer: until the address is an element of its set (`nft list set ip crowdsec
//    crowdsec-blacklists`, polled every 20 ms).
// Phase 1 runs the bouncer at its default update_frequency (10s), phase 2 at 1s; meshd is
// measured in both; each decision follows the previous one after a random time within the
// bouncer's period (10 s, 1 s), so it lands at a random phase of both pollers. Then a
// 10,000-decision `cscli decisions import` (CSV): until meshd node 1 has them in the kernel
// (its crowdsec_applied events' done_at) and until the bouncer's set holds all, or
// "complete": false with the counts when one stops short (the LAPI's delta answers can lose
// a chunk of a bulk insert; meshd re-pulls in full after one, the bouncer does not).
// Imported decisions (origin cscli-import) also become claims, signed at most
// sensor.crowdsec.max_claims_per_min a minute: the JSON gives how many still wait.
//
// Everything it creates (namespaces, cgroups, pins, the LAPI, the bouncer and its tables) is
// removed on the way out, also on an error, SIGINT or SIGTERM.
//
// The mesh runs with policy.budget_burst 100: with the default 20, an origin's claims beyond
// 20 in a burst wait for budget tokens on the peers (by design, 10 a minute), and this
// benchmark issues more than that within a few minutes.
//
// Usage: crowdsec_bench [--decisions N] [--poll-ms MS] [--import N] [--skip-default]
// (tests/bench/run runs it as group 9 of BENCHMARKS.md).
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "meshd/common/clock.hpp"
#include "tests/netns/crowdsec/crowdsec_lapi.hpp"
#include "tests/netns/mesh/mesh_cluster.hpp"
#include "tests/support/temp_dir.hpp"

using meshd::wall_now_ms;
using meshd::test::CrowdsecLapi;
using meshd::test::MeshCluster;
using meshd::test::MeshOptions;
using nlohmann::json;

namespace {

constexpr const char* kUsage =
    "usage: crowdsec_bench [--decisions N] [--poll-ms MS] [--import N] [--skip-default]\n"
    "  --decisions N   cscli decisions per phase (default 20; p50/p99 over them)\n"
    "  --poll-ms MS    meshd's sensor.crowdsec.poll_ms (default 1000)\n"
    "  --import N      decisions of the `cscli decisions import` phase (default 10000, 0 = "
    "none)\n"
    "  --skip-default  skip the phase with the bouncer at its default update_frequency (10s)\n"
    "Needs root and Debian's crowdsec + crowdsec-firewall-bouncer; prints JSON on stdout,\n"
    "progress on stderr.\n";

std::atomic<int> g_signal{0};
void on_signal(int sig) {
  g_signal = sig;
}
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted by signal " + std::to_string(g_signal.load())) {}
};
// Every wait of the benchmark goes through this, so a signal unwinds (and cleans up) promptly.
bool wait_for(const std::function<bool()>& pred, int timeout_ms) {
  return meshd::test::wait_until(
      [&] {
        if (g_signal != 0) throw Interrupted();
        return pred();
      },
      timeout_ms);
}

int parse_count(const char* flag, const char* value, int min) {
  std::size_t used = 0;
  int v = -1;
  try {
    v = std::stoi(value ? value : "", &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (value == nullptr || used == 0 || value[used] != '\0' || v < min)
    throw std::invalid_argument(std::string(flag) + " needs an integer >= " + std::to_string(min) +
                                ", got '" + (value ? value : "") + "'");
  return v;
}

json summary(std::vector<double> v) {
  json out = {{"n", v.size()}};
  if (v.empty()) return out;
  std::sort(v.begin(), v.end());
  auto rank = [&](double q) {  // nearest rank
    std::size_t i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
  };
  double sum = 0;
  for (double x : v) sum += x;
  out["p50_ms"] = rank(0.5);
  out["p99_ms"] = rank(0.99);
  out["min_ms"] = v.front();
  out["max_ms"] = v.back();
  out["mean_ms"] = sum / static_cast<double>(v.size());
  out["samples_ms"] = v;
  return out;
}

// Elements of the bouncer's IPv4 set (0 when it does not exist yet).
std::size_t bouncer_set_size(const meshd::test::NetNs& ns) {
  auto r = meshd::test::run(meshd::test::netns_prefix(ns) +
                            "nft -j list set ip crowdsec crowdsec-blacklists 2>/dev/null");
  if (!r.ok()) return 0;
  json j = json::parse(r.output, nullptr, false);
  if (!j.is_object()) return 0;
  for (const auto& item : j.value("nftables", json::array()))
    if (item.contains("set")) return item["set"].value("elem", json::array()).size();
  return 0;
}

bool bouncer_has(const meshd::test::NetNs& ns, const std::string& ip) {
  return meshd::test::run(meshd::test::netns_prefix(ns) +
                          "nft get element ip crowdsec crowdsec-blacklists '{ " + ip +
                          " }' >/dev/null 2>&1")
      .ok();
}

// Latest block_enforce of `ip` over all nodes, minus t0; -1 if a node has none yet.
double mesh_enforced_ms(const MeshCluster& mesh, const std::string& ip, std::int64_t t0) {
  std::int64_t last = 0;
  for (int i = 1; i <= mesh.size(); ++i) {
    auto at = mesh.event_at(i, "block_enforce", ip);
    if (!at) return -1;
    last = std::max(last, *at);
  }
  return static_cast<double>(last - t0);
}

}  // namespace

int run_bench(int decisions, int poll_ms, int import_n, bool skip_default) {
  meshd::testing::TempDir tmp("csbench");
  const std::string key_file = tmp.file("meshd.key");
  MeshOptions o;
  o.nodes = 3;
  o.backend = "bpf";
  o.log_level = "warn";
  o.policy["budget_burst"] = "100";
  o.sensor_yaml[1] = "crowdsec: {url: \"http://127.0.0.1:8080\", api_key_file: " + key_file +
                     ", poll_ms: " + std::to_string(poll_ms) + "}";
  auto mesh = std::make_unique<MeshCluster>(o);
  auto lapi = std::make_unique<CrowdsecLapi>(mesh->ns(1), tmp.file("lapi"));
  std::ofstream(key_file) << lapi->add_bouncer("meshd") << "\n";
  const std::string fw_key = lapi->add_bouncer("firewall-bouncer");
  mesh->start_all();
  if (!mesh->wait_ready(2)) {
    std::cerr << "mesh did not come up\n" << mesh->logs(20);
    return 1;
  }
  const auto& ns1 = mesh->ns(1);
  json out = {{"decisions_per_phase", decisions},
              {"meshd_poll_ms", poll_ms},
              {"nodes", 3},
              {"backend", "bpf"}};
  int next_ip = 0;
  std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> phase_ms(0, 9999);
  auto phase = [&](const std::string& freq, int period_ms) {
    lapi->start_firewall_bouncer(fw_key, freq);
    // The bouncer has made its table (first pull done) before the clock starts.
    wait_for(
        [&] {
          return meshd::test::run(meshd::test::netns_prefix(ns1) +
                                  "nft list set ip crowdsec crowdsec-blacklists >/dev/null 2>&1")
              .ok();
        },
        20000);
    if (!meshd::test::run(meshd::test::netns_prefix(ns1) +
                          "nft list set ip crowdsec crowdsec-blacklists >/dev/null 2>&1")
             .ok())
      throw std::runtime_error(
          "crowdsec-firewall-bouncer (" + freq + ") made no set within 20 s:\n" +
          meshd::test::run("tail -n 20 " + lapi->dir() + "/log/*bouncer*").output);
    std::vector<double> m, b;
    for (int k = 0; k < decisions; ++k) {
      const std::string ip =
          "198.18." + std::to_string(next_ip / 250) + "." + std::to_string(next_ip % 250 + 1);
      ++next_ip;
      const std::int64_t t0 = wall_now_ms();
      auto r = lapi->cscli("decisions add --ip " + ip + " --duration 1h --reason bench");
      if (!r.ok()) {
        std::cerr << "cscli failed: " << r.output << "\n";
        continue;
      }
      double bouncer = -1;
      wait_for(
          [&] {
            if (!bouncer_has(ns1, ip)) return false;
            bouncer = static_cast<double>(wall_now_ms() - t0);
            return true;
          },
          30000);
      double meshd_ms = -1;
      wait_for([&] { return (meshd_ms = mesh_enforced_ms(*mesh, ip, t0)) >= 0; }, 30000);
      if (bouncer >= 0) b.push_back(bouncer);
      if (meshd_ms >= 0) m.push_back(meshd_ms);
      std::cerr << freq << " #" << k << " " << ip << ": meshd " << meshd_ms << " ms, bouncer "
                << bouncer << " ms\n";
      // A random phase over the bouncer's whole period (and meshd's), as a real decision
      // would have: waiting for the bouncer ends just after one of its pulls, so without it
      // every next decision would come right after a pull and wait nearly a full period.
      std::this_thread::sleep_for(std::chrono::milliseconds(phase_ms(rng) % period_ms));
    }
    out["phases"].push_back({{"bouncer_update_frequency", freq},
                             {"meshd_add_to_enforced_on_all_nodes", summary(m)},
                             {"bouncer_add_to_element_in_set", summary(b)}});
  };
  if (!skip_default) phase("10s", 10000);
  phase("1s", 1000);

  if (import_n > 0) {
    // The bouncer keeps running at 1s.
    const std::string csv = tmp.file("import.csv");
    {
      std::ofstream f(csv);
      f << "duration,scope,value,reason\n";
      for (int i = 0; i < import_n; ++i)
        f << "2h,Ip,10.100." << i / 250 << "." << i % 250 + 1 << ",bench-import\n";
    }
    const std::size_t before = bouncer_set_size(ns1);
    const std::int64_t t0 = wall_now_ms();
    auto r = lapi->cscli("decisions import -i " + csv);
    const double cscli_ms = static_cast<double>(wall_now_ms() - t0);
    if (!r.ok()) std::cerr << "cscli decisions import failed: " << r.output << "\n";
    double meshd_ms = -1, meshd_apply_ms = 0, bouncer_ms = -1;
    std::size_t meshd_enforced = 0, bouncer_elements = before;
    std::int64_t meshd_changed = t0, bouncer_changed = t0;
    const auto want = static_cast<std::size_t>(import_n);
    // Until both have all of them, or the one missing some has not changed for 60 s (a
    // poller that lost decisions does not get them later): "incomplete", with the counts.
    wait_for(
        [&] {
          const std::int64_t now = wall_now_ms();
          if (meshd_ms < 0) {
            std::size_t total = 0;
            double apply = 0;
            std::int64_t last = 0;
            for (const auto& e : mesh->events(1, 2000))
              if (e.value("event", "") == "crowdsec_applied" && e.value("at", 0LL) >= t0) {
                total += e.value("enforced", 0u);
                apply += e.value("apply_ms", 0.0);
                last = std::max<std::int64_t>(last, e.value("done_at", 0LL));
              }
            if (total != meshd_enforced) meshd_changed = now;
            meshd_enforced = total;
            meshd_apply_ms = apply;
            if (total >= want) meshd_ms = static_cast<double>(last - t0);
          }
          if (bouncer_ms < 0) {
            const std::size_t n = bouncer_set_size(ns1);
            if (n != bouncer_elements) bouncer_changed = now;
            bouncer_elements = n;
            if (n >= before + want) bouncer_ms = static_cast<double>(now - t0);
          }
          const bool meshd_over = meshd_ms >= 0 || now - meshd_changed > 60000;
          const bool bouncer_over = bouncer_ms >= 0 || now - bouncer_changed > 60000;
          return meshd_over && bouncer_over;
        },
        600000);
    out["import"] = {{"decisions", import_n},
                     {"cscli_import_ms", cscli_ms},
                     {"meshd_node1_import_to_kernel_ms", meshd_ms},
                     {"meshd_node1_apply_ms", meshd_apply_ms},
                     {"meshd_node1_enforced", meshd_enforced},
                     {"meshd_complete", meshd_ms >= 0},
                     {"bouncer_import_to_all_in_set_ms", bouncer_ms},
                     {"bouncer_set_elements", bouncer_set_size(ns1)},
                     {"bouncer_set_elements_before", before},
                     {"bouncer_complete", bouncer_ms >= 0},
                     {"meshd_claims_queued_node1",
                      mesh->metric(1, "meshd_crowdsec_claims_queued").value_or(-1)}};
  }
  lapi->stop_firewall_bouncer();
  std::cout << out.dump() << "\n";  // one line: compare.py reads the last JSON line
  return 0;
}

int main(int argc, char** argv) {
  int decisions = 20, poll_ms = 1000, import_n = 10000;
  bool skip_default = false;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
      if (a == "--help" || a == "-h") {
        std::cout << kUsage;
        return 0;
      } else if (a == "--decisions") {
        decisions = parse_count("--decisions", value, 1), ++i;
      } else if (a == "--poll-ms") {
        poll_ms = parse_count("--poll-ms", value, 1), ++i;
      } else if (a == "--import") {
        import_n = parse_count("--import", value, 0), ++i;
      } else if (a == "--skip-default") {
        skip_default = true;
      } else {
        throw std::invalid_argument("unknown argument '" + a + "'");
      }
    }
  } catch (const std::invalid_argument& e) {
    std::cerr << "crowdsec_bench: " << e.what() << "\n" << kUsage;
    return 2;
  }
  if (!meshd::test::is_root() || !meshd::test::crowdsec_installed() ||
      !meshd::test::run("command -v crowdsec-firewall-bouncer").ok()) {
    std::cerr << "crowdsec_bench: needs root and crowdsec + crowdsec-firewall-bouncer\n";
    return 77;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  try {
    return run_bench(decisions, poll_ms, import_n, skip_default);
  } catch (const std::exception& e) {
    // The guards of run_bench are gone by now: everything it created is removed.
    std::cerr << "crowdsec_bench: " << e.what() << "\n";
    return 1;
  }
}
