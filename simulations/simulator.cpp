#include "simulations/simulator.hpp"

#include <exception>
#include <memory>
#include <thread>

#include "simulations/world.hpp"

namespace meshd::sim {

Result<Setup> prepare_scenario(Scenario sc, const Options& opts) {
  Setup s;
  if (opts.seed) sc.seed = *opts.seed;
  if (opts.policy) {
    auto p = parse_policy(*opts.policy);
    if (!p) return fail("bad_policy", "--policy: " + p.error().message);
    sc.policy = *p;
  }
  s.policy = sc.policy;
  s.run_naive = opts.run_naive && sc.policy.kind != PolicyKind::naive;
  s.skip_teardown = opts.skip_teardown;
  s.progress_every_s = opts.progress_every_s;
  s.config = core::Config::defaults();
  s.config.target_degree = std::size_t(sc.degree);
  for (const auto& [k, v] : sc.policy_params) {
    // "core.<name>": a meshd/core Config field (the daemon's `mesh.<name>`); otherwise a
    // trust parameter (the daemon's `policy.<name>`).
    Result<void> r = k.starts_with("core.") ? core::set_config(s.config, k.substr(5), v)
                                            : trust::set_param(s.params, k, v);
    if (!r) return fail("bad_param", "policy_params." + k + ": " + r.error().message);
  }
  if (auto r = s.params.validate(); !r) return fail("bad_param", r.error().message);
  if (auto r = s.config.validate(); !r) return fail("bad_param", r.error().message);
  auto model = build_model(sc, sc.seed);
  if (!model) return std::unexpected(model.error());
  s.model = *model;
  return s;
}

Result<Setup> prepare(const std::string& path, const Options& opts) {
  auto sc = load_scenario(path);
  if (!sc) return std::unexpected(sc.error());
  auto s = prepare_scenario(std::move(*sc), opts);
  if (!s) return fail(s.error().code, path + ": " + s.error().message);
  return s;
}

Result<Setup> prepare_text(std::string_view yaml, std::string_view name, const Options& opts) {
  auto sc = parse_scenario(yaml, name);
  if (!sc) return std::unexpected(sc.error());
  return prepare_scenario(std::move(*sc), opts);
}

namespace {

RunResult run_policy(const Setup& s, PolicySpec policy) {
  trust::Params p = s.params;
  p.mode = policy.kind == PolicyKind::trust   ? trust::PolicyMode::trust
           : policy.kind == PolicyKind::naive ? trust::PolicyMode::naive
                                              : trust::PolicyMode::quorum;
  p.quorum_k = std::uint32_t(policy.quorum_k);
  auto w = std::make_unique<World>(s.model, p, s.config);
  w->set_progress(s.progress_every_s);
  RunResult r = w->run();
  if (s.skip_teardown) (void)w.release();  // intentionally not freed: see Options
  return r;
}

}  // namespace

Outcome simulate(const Setup& s) {
  Outcome o;
  if (!s.run_naive) {
    o.main_run = run_policy(s, s.policy);
    return o;
  }
  // The two policies share only the immutable model: safe on two threads.
  RunResult naive;
  std::exception_ptr naive_error, main_error;
  std::thread t([&] {
    try {
      naive = run_policy(s, PolicySpec{PolicyKind::naive, 2});
    } catch (...) {
      naive_error = std::current_exception();
    }
  });
  try {
    o.main_run = run_policy(s, s.policy);
  } catch (...) {
    main_error = std::current_exception();
  }
  t.join();
  if (main_error) std::rethrow_exception(main_error);
  if (naive_error) std::rethrow_exception(naive_error);
  o.naive_run = std::move(naive);
  return o;
}

}  // namespace meshd::sim
