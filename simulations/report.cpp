#include "simulations/report.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include "simulations/svg.hpp"

namespace meshd::sim {

void LatencyHistogram::add(double ms) {
  if (ms < 0) ms = 0;
  ++count_;
  max_ = std::max(max_, ms);
  const auto bin = static_cast<std::size_t>(ms / kBinMs);
  if (bin < kBins)
    ++bins_[bin];
  else
    overflow_.push_back(ms);
}

double LatencyHistogram::quantile(double q) const {
  if (count_ == 0) return 0;
  // Nearest-rank: the smallest value with at least ceil(q * n) samples at or below it.
  const auto rank = std::max<std::uint64_t>(1, std::uint64_t(std::ceil(q * double(count_))));
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < kBins; ++b) {
    seen += bins_[b];
    if (seen >= rank) return std::min(max_, double(b + 1) * kBinMs);
  }
  std::vector<double> over = overflow_;
  std::sort(over.begin(), over.end());
  return over[std::min<std::size_t>(over.size() - 1, rank - seen - 1)];
}

std::vector<std::pair<double, double>> LatencyHistogram::cdf(std::size_t points) const {
  std::vector<std::pair<double, double>> out;
  if (count_ == 0) return out;
  for (std::size_t i = 0; i <= points; ++i) {
    const double q = double(i) / double(points);
    out.emplace_back(quantile(q), q);
  }
  return out;
}

namespace {

double ratio(double num, double den) {
  return den > 0 ? num / den : 0;
}
double round3(double x) {
  return std::round(x * 1000) / 1000;
}

double coverage(const RunResult& r) {
  return ratio(r.tp_enforced_ms, r.tp_possible_ms);
}

}  // namespace

nlohmann::ordered_json make_report(const Model& m, const RunResult& main, const RunResult& naive,
                                   double wall_s, double rss_mb) {
  using nlohmann::ordered_json;
  ordered_json j;
  j["scenario"] = m.scenario.name;
  j["policy"] = main.policy;
  j["nodes"] = m.nodes;
  j["seed"] = m.seed;
  j["wall_s"] = round3(wall_s);
  j["tp"] = {{"coverage", coverage(main)},
             {"p50_ms", main.tp_latency.quantile(0.5)},
             {"p99_ms", main.tp_latency.quantile(0.99)},
             {"naive_coverage", coverage(naive)},
             {"coverage_vs_naive", ratio(coverage(main), coverage(naive))}};
  ordered_json harm = {{"total", main.harm_total},
                       {"protected", main.harm_protected},
                       {"naive_total", naive.harm_total},
                       {"naive_protected", naive.harm_protected}};
  // 0/0 (no harm possible at all) is reported as 0: the policy did no worse than naive.
  if (naive.harm_total > 0 || main.harm_total == 0)
    harm["ratio_vs_naive"] = ratio(main.harm_total, naive.harm_total);
  else
    harm["ratio_vs_naive"] = nullptr;
  j["harm"] = harm;

  ordered_json q;
  bool detected = !main.quarantine.empty();
  double p99 = 0;
  ordered_json origins = ordered_json::array();
  for (const auto& o : main.quarantine) {
    detected = detected && o.detected;
    p99 = std::max(p99, o.p99_ms);
    origins.push_back({{"origin", o.origin},
                       {"detected", o.detected},
                       {"nodes", o.nodes_quarantined},
                       {"honest_nodes", o.honest_nodes},
                       {"p99_ms", o.p99_ms},
                       {"max_ms", o.max_ms}});
  }
  q["detected"] = detected;
  q["p99_ms"] = p99;
  q["offenders"] = origins;
  j["quarantine"] = q;

  const double node_claims = double(m.nodes) * double(m.valid_claims);
  j["messages"] = {{"per_node_per_claim", ratio(double(main.claim_envelopes_sent), node_claims)},
                   {"claim_envelopes", main.claim_envelopes_sent},
                   {"total", main.messages_sent},
                   {"lost", main.messages_lost},
                   {"disconnects", main.disconnects},
                   {"honest_disconnects", main.honest_disconnects}};
  j["delivery"] = {
      {"fraction",
       main.delivery_pairs ? ratio(double(main.delivered), double(main.delivery_pairs)) : 1.0},
      {"p50_ms", main.delivery_latency.quantile(0.5)},
      {"p99_ms", main.delivery_latency.quantile(0.99)},
      {"max_ms", main.delivery_latency.max()},
      {"pairs", main.delivery_pairs},
      {"all_valid_fraction",
       main.delivery_pairs_all ? ratio(double(main.delivered_all), double(main.delivery_pairs_all))
                               : 1.0}};
  j["overlay"] = {{"diameter", m.diameter},
                  {"mean_degree", round3(m.overlay.mean_degree())},
                  {"diameter_x_latency_ms", m.diameter * m.scenario.link.latency_ms}};
  j["claims"] = {
      {"planned", m.claims.size()}, {"valid", m.valid_claims}, {"honest", m.honest_claims}};
  if (main.had_partition)
    j["partition"] = {{"heal_max_ms", main.heal_max_ms},
                      {"all_reached", main.heal_all_reached},
                      {"pairs_pending_at_heal", main.heal_pairs}};
  if (main.restarts)
    j["crash"] = {{"restarts", main.restarts}, {"catchup_max_ms", main.restart_catchup_max_ms}};
  j["events"] = main.events + (&naive == &main ? 0 : naive.events);
  j["ticks"] = {{"run", main.ticks}, {"stale", main.stale_ticks}, {"spin", main.spin_ticks}};
  j["peak_rss_mb"] = round3(rss_mb);
  ordered_json counters = ordered_json::object();
  for (const auto& [k, v] : main.counters) counters[k] = v;
  j["counters"] = counters;
  return j;
}

namespace {

Result<void> write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
  out.close();
  if (!out) return fail("io", "cannot write '" + p.string() + "'");
  return {};
}

std::string timeseries_csv(const RunResult& main, const RunResult& naive) {
  std::ostringstream os;
  os << "t_s,policy,harm_rate,harm_cum,protected_cum,enforced_benign,enforced_malicious,"
        "enforced_protected,nodes_up,links_up\n";
  auto dump = [&](const RunResult& r) {
    for (const auto& s : r.samples)
      os << s.t_s << ',' << r.policy << ',' << s.harm_rate << ',' << s.harm_cum << ','
         << s.protected_cum << ',' << s.enforced_benign << ',' << s.enforced_malicious << ','
         << s.enforced_protected << ',' << s.nodes_up << ',' << s.links_up << '\n';
  };
  dump(main);
  if (&naive != &main) dump(naive);
  return os.str();
}

}  // namespace

Result<void> write_outputs(const std::string& dir, const Model& m, const RunResult& main,
                           const RunResult& naive, const nlohmann::ordered_json& report) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail("io", "cannot create output directory '" + dir + "': " + ec.message());
  const fs::path d(dir);
  if (auto r = write_file(d / "report.json", report.dump(2) + "\n"); !r) return r;
  if (auto r = write_file(d / "timeseries.csv", timeseries_csv(main, naive)); !r) return r;

  std::ostringstream cdf;
  cdf << "latency_ms,fraction\n";
  const auto points = main.delivery_latency.cdf(200);
  for (auto [ms, f] : points) cdf << ms << ',' << f << '\n';
  if (auto r = write_file(d / "delivery_cdf.csv", cdf.str()); !r) return r;

  std::ostringstream qcsv;
  qcsv << "origin,detected,nodes,honest_nodes,p99_ms,max_ms\n";
  for (const auto& o : main.quarantine)
    qcsv << o.origin << ',' << o.detected << ',' << o.nodes_quarantined << ',' << o.honest_nodes
         << ',' << o.p99_ms << ',' << o.max_ms << '\n';
  if (auto r = write_file(d / "quarantine.csv", qcsv.str()); !r) return r;

  SvgChart cdf_chart{m.scenario.name + ": delivery latency CDF (" + main.policy + ")",
                     "latency after issue (ms, simulated)",
                     "fraction of (claim, node) pairs",
                     {}};
  cdf_chart.series.push_back({main.policy, "#1f77b4", points});
  if (auto r = write_file(d / "delivery_cdf.svg", render_svg(cdf_chart)); !r) return r;

  SvgChart harm{m.scenario.name + ": legitimate flows denied, cumulative",
                "time (s, simulated)",
                "flows denied",
                {}};
  auto harm_points = [](const RunResult& r) {
    std::vector<std::pair<double, double>> p;
    for (const auto& s : r.samples) p.emplace_back(s.t_s, s.harm_cum);
    return p;
  };
  harm.series.push_back({main.policy, "#1f77b4", harm_points(main)});
  if (&naive != &main) harm.series.push_back({naive.policy, "#d62728", harm_points(naive)});
  if (auto r = write_file(d / "harm.svg", render_svg(harm)); !r) return r;
  return {};
}

namespace {

double status_mb(std::string_view key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with(key)) {
      std::istringstream is(line.substr(key.size()));
      double kb = 0;
      is >> kb;
      return kb / 1024.0;
    }
  return 0;
}

}  // namespace

double peak_rss_mb() {
  return status_mb("VmHWM:");
}

double rss_mb() {
  return status_mb("VmRSS:");
}

}  // namespace meshd::sim
