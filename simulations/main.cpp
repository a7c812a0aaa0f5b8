// meshsim: runs a scenario under the requested policy and under `naive` (same model, two
// threads) and prints ONE JSON object. Exit codes: 0 ok, 2 bad command line or scenario,
// 1 runtime failure (e.g. cannot write --out).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "simulations/simulator.hpp"

int main(int argc, char** argv) {
  CLI::App app{"meshsim: multi-node trust simulator (real meshd/core + trust/ on a virtual clock)"};
  std::string scenario_path, out_dir, policy;
  std::optional<std::uint64_t> seed;
  app.add_option("--scenario", scenario_path, "scenario YAML file")->required();
  app.add_option("--seed", seed, "PRNG seed (overrides the scenario's seed)");
  app.add_option("--out", out_dir, "directory for CSV time series and SVG plots");
  app.add_option("--policy", policy, "trust | naive | quorum:K (overrides the scenario)");
  bool progress = false;
  double progress_every_s = 2;
  app.add_flag("--progress", progress,
               "print a progress line on stderr (simulated time, events/s, RSS) every "
               "--progress-every seconds and when each run ends");
  app.add_option("--progress-every", progress_every_s,
                 "seconds between progress lines (implies --progress; default 2)")
      ->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  const auto start = std::chrono::steady_clock::now();
  meshd::sim::Options opts;
  opts.seed = seed;
  // A sanitized build frees the nodes after all: its leak check must see a clean exit, and the
  // teardown path is exercised under ASan too.
#if defined(__SANITIZE_ADDRESS__)
  opts.skip_teardown = false;
#else
  opts.skip_teardown = true;
#endif
  if (progress || app.count("--progress-every") > 0) opts.progress_every_s = progress_every_s;
  if (!policy.empty()) opts.policy = policy;
  auto setup = meshd::sim::prepare(scenario_path, opts);
  if (!setup) {
    std::fprintf(stderr, "meshsim: %s\n", setup.error().message.c_str());
    return 2;
  }
  auto outcome = meshd::sim::simulate(*setup);
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto report = meshd::sim::make_report(*setup->model, outcome.main(), outcome.naive(), wall_s,
                                        meshd::sim::peak_rss_mb());
  std::cout << report.dump() << std::endl;
  if (!out_dir.empty()) {
    auto w =
        meshd::sim::write_outputs(out_dir, *setup->model, outcome.main(), outcome.naive(), report);
    if (!w) {
      std::fprintf(stderr, "meshsim: %s\n", w.error().message.c_str());
      return 1;
    }
  }
  return 0;
}
