// Turns run results into meshsim's outputs: the one JSON object (field names in
// simulations/README.md "Metrics"), CSV time series and hand-written SVG plots.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "meshd/common/result.hpp"
#include "simulations/model.hpp"
#include "simulations/run_result.hpp"

namespace meshd::sim {

// `main` is the run of the requested policy, `naive` the naive run on the same model (the
// same object as `main` when the requested policy is naive). `wall_s` is the whole
// invocation's wall time; `peak_rss_mb` the process's peak resident set.
nlohmann::ordered_json make_report(const Model& model, const RunResult& main,
                                   const RunResult& naive, double wall_s, double peak_rss_mb);

// Writes timeseries.csv, delivery_cdf.csv, quarantine.csv, delivery_cdf.svg, harm.svg and
// report.json into `dir` (created if missing). Errors name the file.
Result<void> write_outputs(const std::string& dir, const Model& model, const RunResult& main,
                           const RunResult& naive, const nlohmann::ordered_json& report);

// Process peak RSS in MiB (VmHWM from /proc/self/status; 0 if unavailable).
double peak_rss_mb();
// The process's current resident set (VmRSS), MB; 0 if unknown.
double rss_mb();

}  // namespace meshd::sim
