#include "simulations/model.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "simulations/rng.hpp"

namespace meshd::sim {

namespace {

constexpr std::uint32_t ip4(int a, int b, int c, int d) {
  return (std::uint32_t(a) << 24) | (std::uint32_t(b) << 16) | (std::uint32_t(c) << 8) |
         std::uint32_t(d);
}
constexpr std::uint32_t kNodeBase = ip4(100, 64, 0, 0);
constexpr std::uint32_t kServiceBase = ip4(198, 18, 0, 0);
constexpr std::uint32_t kMaliciousBase = ip4(240, 0, 0, 0);
constexpr std::uint32_t kGatewayBase = ip4(172, 16, 0, 0);

SimTimeUs us(double seconds) {
  return static_cast<SimTimeUs>(std::llround(seconds * 1e6));
}

std::uint32_t v4_of(const Prefix& p) {
  return (std::uint32_t(p.addr[0]) << 24) | (std::uint32_t(p.addr[1]) << 16) |
         (std::uint32_t(p.addr[2]) << 8) | p.addr[3];
}

Severity severity_of(const std::string& s) {
  auto r = parse_severity(s);
  return r ? *r : Severity::high;
}

struct Builder {
  const Scenario& sc;
  Model& m;
  std::uint64_t seed;

  std::uint32_t add_target(Prefix p, TargetKind kind, std::uint32_t index) {
    auto [it, inserted] = m.target_of.emplace(p, std::uint32_t(m.targets.size()));
    if (inserted) m.targets.push_back(Target{p, kind, index});
    return it->second;
  }

  void identities() {
    m.nodes = sc.nodes;
    m.node_ids.resize(sc.nodes);
    m.domain_of.resize(sc.nodes);
    m.domain_ids.resize(sc.domains);
    for (int d = 0; d < sc.domains; ++d) m.domain_ids[d] = "zone-" + std::to_string(d);
    for (int n = 0; n < sc.nodes; ++n) {
      m.node_ids[n] = "node-" + std::to_string(n);
      m.domain_of[n] = std::uint32_t(n % sc.domains);  // round-robin over the domains
    }
    m.compromised.assign(sc.nodes, 0);
  }

  void address_plan() {
    m.first_service = 0;
    m.services = std::uint32_t(sc.traffic.services);
    for (std::uint32_t s = 0; s < m.services; ++s)
      add_target(Prefix::v4(kServiceBase + s, 32), TargetKind::benign, s);
    m.first_malicious = std::uint32_t(m.targets.size());
    for (const auto& a : sc.attacks) m.malicious += std::uint32_t(a.targets);
    for (std::uint32_t i = 0; i < m.malicious; ++i)
      add_target(Prefix::v4(kMaliciousBase + i, 32), TargetKind::malicious, i);
    m.first_protected = std::uint32_t(m.targets.size());
    m.fleet_protected = {Prefix::v4(kNodeBase, 10), Prefix::v4(ip4(10, 96, 0, 1), 32),
                         Prefix::v4(ip4(10, 96, 0, 10), 32)};
    add_target(m.fleet_protected[1], TargetKind::protected_fleet, 0);
    add_target(m.fleet_protected[2], TargetKind::protected_fleet, 1);
  }

  void traffic() {
    const auto& t = sc.traffic;
    const std::size_t cells = std::size_t(sc.nodes) * m.services;
    m.rate.assign(cells, 0.0f);
    m.protected_rate.assign(sc.nodes, float(t.protected_flows_per_s));
    std::vector<double> w(m.services);
    double sum = 0;
    for (std::uint32_t s = 0; s < m.services; ++s) sum += w[s] = 1.0 / std::pow(s + 1.0, t.zipf);
    Rng rng(seed, "traffic");
    const double sigma = t.node_variation, shift = sigma * sigma / 2;
    for (int n = 0; n < sc.nodes; ++n) {
      const double node_mult = std::exp(sigma * rng.normal() - shift);
      for (std::uint32_t s = 0; s < m.services; ++s) {
        const double noise = std::exp(sigma * rng.normal() - shift);
        m.rate[std::size_t(n) * m.services + s] =
            float(t.flows_per_node_per_s * node_mult * noise * w[s] / sum);
      }
    }
  }

  // Colluders: `domains` distinct failure domains drawn at random, nodes dealt round-robin
  // over them.
  std::vector<std::uint32_t> pick_adversaries(const AdversarySpec& a, Rng& rng) {
    std::vector<std::uint32_t> doms(sc.domains);
    std::iota(doms.begin(), doms.end(), 0);
    std::shuffle(doms.begin(), doms.end(), rng);
    doms.resize(a.domains);
    std::vector<std::uint32_t> chosen;
    for (int k = 0; k < a.count; ++k) {
      const std::uint32_t d = doms[k % a.domains];
      for (int tries = 0; tries < 100000; ++tries) {
        // Nodes of domain d are d, d + domains, d + 2*domains, ...
        const std::uint32_t per = std::uint32_t((sc.nodes - d + sc.domains - 1) / sc.domains);
        const std::uint32_t n = d + std::uint32_t(rng.below(per)) * sc.domains;
        if (!m.compromised[n]) {
          m.compromised[n] = 1;
          chosen.push_back(n);
          break;
        }
      }
    }
    return chosen;
  }

  void push_claim(PlannedClaim c) { m.claims.push_back(c); }

  void honest_detections(const std::vector<double>& honest_until) {
    Rng rng(seed, "detections");
    const SimTimeUs end = us(sc.duration_s);
    std::uint32_t target = m.first_malicious;
    m.first_detection.assign(m.malicious, -1);
    for (const auto& a : sc.attacks) {
      const auto sev = severity_of(a.severity);
      for (int k = 0; k < a.targets; ++k, ++target) {
        for (int n = 0; n < sc.nodes; ++n) {
          if (!rng.chance(a.detect_prob)) continue;
          const double t = a.start_s + rng.uniform() * a.spread_s;
          const SimTimeUs at = us(t);
          if (at >= end) continue;
          if (m.compromised[n] && t >= honest_until[n]) continue;
          PlannedClaim c;
          c.at = at;
          c.producer = c.origin = std::uint32_t(n);
          c.target = target;
          c.ttl_ms = std::llround(a.ttl_s * 1000);
          c.confidence = float(a.confidence);
          c.severity = sev;
          c.route = Route::local_event;
          c.honest = !m.compromised[n];
          push_claim(c);
          auto& first = m.first_detection[target - m.first_malicious];
          if (c.honest && (first < 0 || at < first)) first = at;
        }
      }
    }
  }

  std::uint32_t protected_target(Rng& rng, std::uint64_t k, bool& fleet_wide) {
    switch (k % 4) {
      case 0:
        fleet_wide = true;
        return m.first_protected;  // kubernetes api
      case 1:
        fleet_wide = true;
        return m.first_protected + 1;  // cluster DNS
      case 2: {
        fleet_wide = false;
        const auto d = std::uint32_t(rng.below(sc.domains));
        return add_target(m.gateway_of_domain(d), TargetKind::protected_local, d);
      }
      default: {
        fleet_wide = true;
        const auto n = std::uint32_t(rng.below(sc.nodes));
        return add_target(m.node_address(n), TargetKind::protected_fleet, 2 + n);
      }
    }
  }

  void adversary_claims(const AdversarySpec& a, const std::vector<std::uint32_t>& nodes,
                        std::size_t spec_index) {
    Rng rng(seed, "adversary", spec_index);
    const SimTimeUs end = us(sc.duration_s);
    const double start =
        a.strategy == Strategy::milking ? std::max(a.start_s, a.honest_until_s) : a.start_s;
    if (a.rate_per_min <= 0) return;
    const SimTimeUs step = std::max<SimTimeUs>(1, us(60.0 / a.rate_per_min));
    const std::uint32_t top = std::max<std::uint32_t>(1, m.services / 10);
    const auto sev = severity_of(a.severity);
    for (std::size_t ai = 0; ai < nodes.size(); ++ai) {
      const std::uint32_t node = nodes[ai];
      std::uint32_t sybil_base = 0;
      if (a.strategy == Strategy::sybil) {
        sybil_base = std::uint32_t(m.nodes + m.sybil_ids.size());
        for (int k = 0; k < a.sybils; ++k)
          m.sybil_ids.push_back("sybil-" + std::to_string(node) + "-" + std::to_string(k));
      }
      // Colluders are staggered within one step so they do not fire in lockstep.
      SimTimeUs at = us(start) + SimTimeUs(rng.below(std::uint64_t(step)));
      for (std::uint64_t k = 0; at < end; ++k, at += step) {
        PlannedClaim c;
        c.at = at;
        c.producer = c.origin = node;
        c.ttl_ms = std::llround(a.ttl_s * 1000);
        c.confidence = float(a.confidence);
        c.severity = sev;
        c.route = Route::push_all;
        c.honest = false;
        switch (a.strategy) {
          case Strategy::random:
          case Strategy::flood:
            c.target = m.first_service + std::uint32_t(rng.below(m.services));
            break;
          case Strategy::targeted:
          case Strategy::milking:
          case Strategy::equivocate:
            c.target = m.first_service + std::uint32_t(k % top);
            break;
          case Strategy::protected_: {
            bool fleet_wide = false;
            c.target = protected_target(rng, k, fleet_wide);
            c.offending = fleet_wide;
            break;
          }
          case Strategy::sybil: {
            c.target = m.first_service + std::uint32_t(k % top);
            if (k % 5 == 4) {
              // A forgery: declares an honest node as origin; the signature cannot match.
              std::uint32_t victim;
              do victim = std::uint32_t(rng.below(m.nodes));
              while (m.compromised[victim]);
              c.origin = victim;
              c.valid = false;
            } else {
              c.origin = sybil_base + std::uint32_t(k % a.sybils);
              c.valid = false;  // uncertified key
            }
            break;
          }
        }
        if (a.strategy == Strategy::equivocate) {
          c.route = Route::push_even;
          push_claim(c);
          c.route = Route::push_odd;
          c.variant = 1;
          c.offending = true;
        }
        push_claim(c);
      }
    }
  }

  // Per-origin sequence numbers in issue order; an equivocating pair shares one.
  void assign_sequences() {
    std::stable_sort(m.claims.begin(), m.claims.end(), [](const auto& x, const auto& y) {
      return x.at != y.at ? x.at < y.at : x.producer < y.producer;
    });
    std::unordered_map<std::uint32_t, std::uint64_t> next;
    for (std::size_t i = 0; i < m.claims.size(); ++i) {
      auto& c = m.claims[i];
      const bool twin = c.variant == 1 && i > 0 && m.claims[i - 1].origin == c.origin &&
                        m.claims[i - 1].at == c.at && m.claims[i - 1].variant == 0;
      c.seq = twin ? m.claims[i - 1].seq : ++next[c.origin];
      if (c.valid) ++m.valid_claims;
      if (c.valid && c.honest) ++m.honest_claims;
    }
  }

  void faults() {
    Rng rng(seed, "faults");
    for (const auto& f : sc.faults) {
      if (f.kind == FaultKind::partition) {
        Model::Partition p;
        p.at = us(f.at_s);
        p.heal = us(f.at_s + f.duration_s);
        p.side.assign(sc.nodes, 0);
        std::vector<std::uint32_t> order(sc.nodes);
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), rng);
        const auto cut = std::size_t(std::llround(f.fraction * sc.nodes));
        for (std::size_t i = 0; i < cut; ++i) p.side[order[i]] = 1;
        m.partitions.push_back(std::move(p));
      } else {
        Model::Crash c;
        c.at = us(f.at_s);
        c.restart = us(f.at_s + f.restart_after_s);
        std::vector<std::uint32_t> honest;
        for (int n = 0; n < sc.nodes; ++n)
          if (!m.compromised[n]) honest.push_back(std::uint32_t(n));
        std::shuffle(honest.begin(), honest.end(), rng);
        honest.resize(std::min<std::size_t>(honest.size(), std::size_t(f.count)));
        std::sort(honest.begin(), honest.end());
        c.nodes = std::move(honest);
        m.crashes.push_back(std::move(c));
      }
    }
  }
};

}  // namespace

Prefix Model::node_address(std::uint32_t n) const {
  return Prefix::v4(kNodeBase + n + 1, 32);
}
Prefix Model::gateway_of_domain(std::uint32_t d) const {
  return Prefix::v4(kGatewayBase + d * 256 + 1, 32);
}

double Model::target_rate(std::uint32_t n, std::uint32_t t) const {
  const Target& tg = targets[t];
  switch (tg.kind) {
    case TargetKind::benign:
      return rate[std::size_t(n) * services + tg.index];
    case TargetKind::malicious:
      return 0;
    case TargetKind::protected_fleet:
      return protected_rate[n];
    case TargetKind::protected_local:
      return domain_of[n] == tg.index ? protected_rate[n] : 0;
  }
  return 0;
}

double Model::flow_rate(std::uint32_t n, const Prefix& p) const {
  if (auto it = target_of.find(p); it != target_of.end()) return target_rate(n, it->second);
  if (p.family != Family::v4) return 0;
  // A prefix nobody planned (e.g. a broad one): sum what it covers.
  const std::uint64_t lo = v4_of(p), hi = lo + (std::uint64_t(1) << p.host_bits()) - 1;
  double r = 0;
  const std::uint64_t s_lo = std::max<std::uint64_t>(lo, kServiceBase);
  const std::uint64_t s_hi =
      std::min<std::uint64_t>(hi, std::uint64_t(kServiceBase) + services - 1);
  for (std::uint64_t a = s_lo; a <= s_hi && s_lo <= s_hi; ++a)
    r += rate[std::size_t(n) * services + (a - kServiceBase)];
  auto covers = [&](std::uint32_t addr) { return lo <= addr && addr <= hi; };
  if (covers(ip4(10, 96, 0, 1))) r += protected_rate[n];
  if (covers(ip4(10, 96, 0, 10))) r += protected_rate[n];
  if (covers(kGatewayBase + domain_of[n] * 256 + 1)) r += protected_rate[n];
  return r;
}

Result<std::shared_ptr<const Model>> build_model(const Scenario& sc, std::uint64_t seed) {
  if (double(sc.nodes) * sc.traffic.services > 2e8)
    return fail("too_large", "nodes x traffic.services = " +
                                 std::to_string(double(sc.nodes) * sc.traffic.services) +
                                 " flow-rate cells exceed the simulator's limit of 2e8");
  if (sc.nodes >= (1 << 22) - 2) return fail("too_large", "nodes must be < 4194302");
  auto model = std::make_shared<Model>();
  Model& m = *model;
  m.scenario = sc;
  m.seed = seed;
  Builder b{sc, m, seed};
  b.identities();
  Rng overlay_rng(seed, "overlay");
  m.overlay = Overlay::random(sc.nodes, sc.degree, overlay_rng);
  m.diameter = m.overlay.diameter();
  b.address_plan();
  b.traffic();
  Rng adv_rng(seed, "adversary-selection");
  std::vector<double> honest_until(sc.nodes, 1e300);
  std::vector<std::vector<std::uint32_t>> adv_nodes;
  for (const auto& a : sc.adversaries) {
    adv_nodes.push_back(b.pick_adversaries(a, adv_rng));
    for (auto n : adv_nodes.back()) honest_until[n] = a.honest_until_s;
  }
  b.honest_detections(honest_until);
  for (std::size_t i = 0; i < sc.adversaries.size(); ++i)
    b.adversary_claims(sc.adversaries[i], adv_nodes[i], i);
  b.assign_sequences();
  b.faults();
  return std::shared_ptr<const Model>(std::move(model));
}

}  // namespace meshd::sim
