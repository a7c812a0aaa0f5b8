// The dry-run enforcer: keeps the rules it was asked to install in memory and logs what a
// real backend would do, so an operator can run meshd in observe-only mode and read, in the
// log and `meshctl blocks`, exactly what would have been blocked. Like every enforcer it
// refuses protected prefixes on its own. Not thread-safe (the daemon calls it from one
// strand).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <span>

#include <spdlog/logger.h>

#include "sensor/enforcer.hpp"

namespace meshd::sensor {

// Shared check of the user-space enforcers (defence in depth for invariant I1): an error
// naming the protected prefix when `rule` overlaps one of `protected_prefixes`, or when the
// rule's direction is not a valid Direction value.
std::optional<Error> check_rule(const BlockRule& rule, std::span<const Prefix> protected_prefixes);

class DryrunEnforcer final : public Enforcer {
 public:
  // `logger` may be null: spdlog's default logger is used.
  explicit DryrunEnforcer(std::shared_ptr<spdlog::logger> logger = nullptr);

  std::string_view name() const override { return "dryrun"; }
  void set_protected(std::vector<Prefix> protected_prefixes) override;
  Result<ApplyReport> apply(std::span<const BlockRule> rules, TimeMs now) override;
  Result<std::size_t> remove(std::span<const Prefix> prefixes) override;
  Result<std::vector<BlockRule>> list(TimeMs now) override;
  EnforcerStats stats() const override;

 private:
  std::shared_ptr<spdlog::logger> log_;
  std::vector<Prefix> protected_;
  std::map<Prefix, BlockRule> rules_;
};

}  // namespace meshd::sensor
