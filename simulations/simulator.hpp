// The simulator's entry points, used by meshsim's main() and by tests/sim: prepare a scenario
// (parse, apply overrides, check policy parameters, build the shared model), then simulate it
// under the requested policy and under `naive` on two threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "meshd/common/result.hpp"
#include "meshd/core/config.hpp"
#include "simulations/model.hpp"
#include "simulations/report.hpp"
#include "simulations/run_result.hpp"
#include "trust/params.hpp"

namespace meshd::sim {

struct Options {
  std::optional<std::uint64_t> seed;  // overrides the scenario's seed
  std::optional<std::string> policy;  // overrides the scenario's policy
  bool run_naive = true;              // also run `naive` for harm.naive_total
  // Do not free the simulated nodes after a run (the CLI exits right after: freeing ~10^8
  // small allocations of a 10,000-node run costs seconds and changes nothing).
  bool skip_teardown = false;
  // > 0: each run prints a progress line on stderr about every this many wall seconds (simulated
  // time, events/s, the process's RSS) and one when it ends. Changes nothing in the results.
  double progress_every_s = 0;
};

struct Setup {
  std::shared_ptr<const Model> model;
  PolicySpec policy;
  trust::Params params;  // trust parameters after policy_params (mode set per run)
  core::Config config;   // core parameters after policy_params ("core.<name>")
  bool run_naive = true;
  bool skip_teardown = false;   // see Options
  double progress_every_s = 0;  // see Options
};

// Errors (code bad_scenario / bad_value / unknown_key / bad_param ...) name the file and key.
Result<Setup> prepare(const std::string& scenario_path, const Options& opts);
Result<Setup> prepare_text(std::string_view yaml, std::string_view name, const Options& opts);
Result<Setup> prepare_scenario(Scenario scenario, const Options& opts);

class Outcome {
 public:
  RunResult main_run;
  std::optional<RunResult> naive_run;  // absent when the main policy is naive
  const RunResult& main() const { return main_run; }
  const RunResult& naive() const { return naive_run ? *naive_run : main_run; }
};

// Runs the model; deterministic for a given setup (wall-clock fields aside).
Outcome simulate(const Setup& setup);

}  // namespace meshd::sim
