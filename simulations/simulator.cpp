#include "simulations/simulator.hpp"

#include <charconv>
#include <exception>
#include <thread>

#include "simulations/world.hpp"

namespace meshd::sim {

namespace {

// Core parameters a scenario may override as "core.<name>" in policy_params.
template <class T>
Result<void> parse_number(std::string_view key, std::string_view text, T& out) {
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || v < 0)
    return fail("bad_param", "policy_params." + std::string(key) + " = '" + std::string(text) +
                                 "' is not a non-negative number");
  out = static_cast<T>(v);
  return {};
}

Result<void> set_core(core::Config& c, std::string_view name, std::string_view v) {
#define MESHSIM_CORE_FIELD(f) \
  if (name == #f) return parse_number(std::string("core.") + #f, v, c.f);
  MESHSIM_CORE_FIELD(target_degree)
  MESHSIM_CORE_FIELD(max_peers)
  MESHSIM_CORE_FIELD(seen_capacity)
  MESHSIM_CORE_FIELD(seen_ttl_ms)
  MESHSIM_CORE_FIELD(store_capacity)
  MESHSIM_CORE_FIELD(anti_entropy_period_ms)
  MESHSIM_CORE_FIELD(anti_entropy_jitter)
  MESHSIM_CORE_FIELD(anti_entropy_fanout)
  MESHSIM_CORE_FIELD(max_range_span)
  MESHSIM_CORE_FIELD(max_range_envelopes)
  MESHSIM_CORE_FIELD(peer_rate_per_s)
  MESHSIM_CORE_FIELD(peer_burst)
  MESHSIM_CORE_FIELD(origin_rate_per_min)
  MESHSIM_CORE_FIELD(origin_burst)
  MESHSIM_CORE_FIELD(origin_queue_max)
  MESHSIM_CORE_FIELD(penalty_invalid)
  MESHSIM_CORE_FIELD(penalty_rate_limit)
  MESHSIM_CORE_FIELD(penalty_duplicate)
  MESHSIM_CORE_FIELD(dup_tolerance)
  MESHSIM_CORE_FIELD(score_threshold)
  MESHSIM_CORE_FIELD(proof_jitter_ms)
#undef MESHSIM_CORE_FIELD
  return fail("bad_param", "policy_params.core." + std::string(name) +
                               " is not a core parameter meshsim can set");
}

}  // namespace

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
  s.config = core::Config::defaults();
  s.config.target_degree = std::size_t(sc.degree);
  for (const auto& [k, v] : sc.policy_params) {
    Result<void> r = k.starts_with("core.") ? set_core(s.config, k.substr(5), v)
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
  World w(s.model, p, s.config);
  return w.run();
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
