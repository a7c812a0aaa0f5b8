#include "sensor/dryrun_enforcer.hpp"

#include <spdlog/spdlog.h>

namespace meshd::sensor {

std::optional<Error> check_rule(const BlockRule& rule, std::span<const Prefix> protected_prefixes) {
  const auto dir = static_cast<std::uint8_t>(rule.direction);
  if (dir < 1 || dir > 3)
    return Error{"bad_direction", "rule " + std::to_string(rule.rule_id) + " for " +
                                      rule.prefix.to_string() + " has invalid direction " +
                                      std::to_string(dir)};
  for (const auto& p : protected_prefixes)
    if (rule.prefix.overlaps(p))
      return Error{"protected", rule.prefix.to_string() + " overlaps protected prefix " +
                                    p.to_string() + "; refusing to block it"};
  return std::nullopt;
}

DryrunEnforcer::DryrunEnforcer(std::shared_ptr<spdlog::logger> logger)
    : log_(logger ? std::move(logger) : spdlog::default_logger()) {}

void DryrunEnforcer::set_protected(std::vector<Prefix> protected_prefixes) {
  protected_ = std::move(protected_prefixes);
  // Rules installed before the list changed must not stay if they now overlap.
  std::erase_if(rules_, [&](const auto& kv) {
    if (auto err = check_rule(kv.second, protected_)) {
      log_->warn("dryrun: would remove {} now that it is protected: {}", kv.first.to_string(),
                 err->message);
      return true;
    }
    return false;
  });
}

Result<ApplyReport> DryrunEnforcer::apply(std::span<const BlockRule> rules, TimeMs now) {
  ApplyReport report;
  for (const auto& r : rules) {
    if (auto err = check_rule(r, protected_)) {
      log_->warn("dryrun: refusing {}: {}", r.prefix.to_string(), err->message);
      report.refused.emplace_back(r, *err);
      continue;
    }
    if (r.expires_at <= now) continue;  // already expired: nothing to install
    log_->info("dryrun: would block {} {} (rule {}) for {} s", to_string(r.direction),
               r.prefix.to_string(), r.rule_id, (r.expires_at - now) / 1000);
    rules_[r.prefix] = r;
    ++report.applied;
  }
  return report;
}

Result<std::size_t> DryrunEnforcer::remove(std::span<const Prefix> prefixes) {
  std::size_t removed = 0;
  for (const auto& p : prefixes)
    if (rules_.erase(p)) {
      log_->info("dryrun: would unblock {}", p.to_string());
      ++removed;
    }
  return removed;
}

Result<std::vector<BlockRule>> DryrunEnforcer::list(TimeMs now) {
  std::erase_if(rules_, [&](const auto& kv) { return kv.second.expires_at <= now; });
  std::vector<BlockRule> out;
  out.reserve(rules_.size());
  for (const auto& [p, r] : rules_) out.push_back(r);
  return out;
}

EnforcerStats DryrunEnforcer::stats() const {
  EnforcerStats s;
  s.active_rules = rules_.size();
  return s;
}

}  // namespace meshd::sensor
