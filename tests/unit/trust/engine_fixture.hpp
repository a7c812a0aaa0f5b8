// Helpers shared by the trust engine tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>

#include "meshd/common/prefix.hpp"
#include "trust/engine.hpp"

namespace meshd::trust::testing {

inline Prefix P(const char* s) {
  auto p = Prefix::parse(s);
  EXPECT_TRUE(p.has_value()) << s;
  return p.value_or(Prefix{});
}

inline Digest D(std::uint64_t n) {
  Digest d{};
  for (int i = 0; i < 8; ++i) d[i] = static_cast<std::uint8_t>(n >> (8 * i));
  d[31] = 0xab;
  return d;
}

// Flow counts per exact prefix (a host's flows also count for every prefix containing it).
// set(host, n) gives only flows (UsageSource's default evidence: every flow its own source,
// span 0); set(host, n, sources, span, flagged) gives the full benign evidence.
class FakeUsage : public UsageSource {
 public:
  void set(const Prefix& host, std::uint64_t n) { hosts_[host] = Host{n, std::nullopt}; }
  void set(const Prefix& host, std::uint64_t n, std::uint64_t sources, DurationMs span = 0,
           bool flagged = false) {
    hosts_[host] = Host{n, BenignEvidence{n, sources, span, flagged}};
  }
  std::uint64_t flows(const Prefix& target, TimeMs) const override {
    std::uint64_t sum = 0;
    for (auto& [p, h] : hosts_)
      if (target.contains(p)) sum += h.flows;
    return sum;
  }
  BenignEvidence evidence(const Prefix& target, TimeMs now) const override {
    BenignEvidence ev;
    for (auto& [p, h] : hosts_) {
      if (!target.contains(p)) continue;
      BenignEvidence e = h.ev.value_or(UsageSource::evidence(p, now));
      ev.flows += e.flows;
      ev.sources += e.sources;
      ev.span_ms = std::max(ev.span_ms, e.span_ms);
      ev.flagged = ev.flagged || e.flagged;
    }
    return ev;
  }

 private:
  struct Host {
    std::uint64_t flows = 0;
    std::optional<BenignEvidence> ev;
  };
  std::map<Prefix, Host> hosts_;
};

inline constexpr TimeMs T0 = 1'700'000'000'000;  // a realistic Unix ms

inline ClaimFacts claim(const std::string& node, const std::string& domain, std::uint64_t seq,
                        const Prefix& prefix, double conf = 0.9, TimeMs issued = T0,
                        Severity sev = Severity::high, DurationMs ttl = kHour) {
  ClaimFacts c;
  c.origin = Origin{node, domain};
  c.seq = seq;
  c.prefix = prefix;
  c.direction = Direction::egress;
  c.detector = "test";
  c.severity = sev;
  c.confidence = conf;
  c.issued_at = issued;
  c.requested_ttl = ttl;
  return c;
}

inline ClaimFacts claim(const std::string& node, const std::string& domain, std::uint64_t seq,
                        const char* prefix, double conf = 0.9, TimeMs issued = T0,
                        Severity sev = Severity::high, DurationMs ttl = kHour) {
  return claim(node, domain, seq, P(prefix), conf, issued, sev, ttl);
}

inline OperatorDecision op(OperatorDecision::Action a, const Prefix& prefix) {
  OperatorDecision d;
  d.action = a;
  d.prefix = prefix;
  return d;
}
inline OperatorDecision op(OperatorDecision::Action a, const char* prefix) {
  return op(a, P(prefix));
}

inline LocalContext context(const UsageSource* usage = nullptr,
                            std::vector<ProtectedPrefix> prot = {}) {
  LocalContext ctx;
  ctx.self = Origin{"self", "zone-self"};
  ctx.protected_prefixes = std::move(prot);
  ctx.usage = usage;
  return ctx;
}

inline int count_kind(const std::vector<BlockChange>& v, BlockChange::Kind k) {
  int n = 0;
  for (auto& c : v) n += c.kind == k;
  return n;
}

inline const BlockChange* find_change(const std::vector<BlockChange>& v, const Prefix& p,
                                      BlockChange::Kind k) {
  for (auto& c : v)
    if (c.prefix == p && c.kind == k) return &c;
  return nullptr;
}

// A ledger where `node` has `pos` positive observations (trust near t_cap when large).
inline TrustLedger trusted_ledger(const Params& params,
                                  const std::vector<std::pair<std::string, std::string>>& nodes,
                                  double pos, TimeMs now) {
  std::string text = "meshd-trust-ledger v1\n";
  for (auto& [n, d] : nodes)
    text += n + " " + d + " " + std::to_string(pos) + " 0 " + std::to_string(now) + " 0 0\n";
  auto l = TrustLedger::deserialize(text, params);
  EXPECT_TRUE(l.has_value()) << (l ? "" : l.error().message);
  return l.value_or(TrustLedger(params));
}

}  // namespace meshd::trust::testing
