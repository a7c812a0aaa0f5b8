// The control API's request handlers: every answer is a JSON document, so `meshctl --json`
// prints it verbatim and the human view is rendered from the same data.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "meshd/app/daemon_impl.hpp"
#include "proto/convert.hpp"
#include "proto/envelope.hpp"
#include "sensor/detectors/detection.hpp"

namespace meshd::app {

using nlohmann::json;

namespace {

v1::ControlResponse ok(const json& j) {
  v1::ControlResponse r;
  r.set_ok(true);
  r.set_json(j.dump());
  return r;
}

v1::ControlResponse error(const Error& e) {
  v1::ControlResponse r;
  r.set_ok(false);
  r.set_error_code(e.code);
  r.set_error(e.message);
  return r;
}

json claim_json(const trust::ClaimExplanation& c) {
  return {{"origin", c.origin.node},
          {"domain", c.origin.domain},
          {"seq", c.seq},
          {"detector", c.detector},
          {"severity", std::string(to_string(c.severity))},
          {"direction", std::string(to_string(c.direction))},
          {"trust", c.trust},
          {"confidence", c.confidence},
          {"contribution", c.contribution},
          {"quarantined", c.quarantined},
          {"spent", c.spent},
          {"contradicted", c.contradicted},
          {"issued_at", c.issued_at},
          {"expires_at", c.expires_at}};
}

json budget_json(const trust::BudgetExplanation& b) {
  return {{"applies", b.applies}, {"domain", b.domain},     {"origin", b.origin},
          {"tokens", b.tokens},   {"capacity", b.capacity}, {"rate_per_min", b.rate_per_min},
          {"pending", b.pending}, {"retry_at", b.retry_at}};
}

json explanation_json(const trust::Explanation& e) {
  const auto& d = e.decision;
  json claims = json::array(), domains = json::array(), payers = json::array();
  json refused_by = json::array();
  for (const auto& v : e.refused_by) refused_by.push_back(std::string(to_string(v)));
  for (const auto& c : e.claims) claims.push_back(claim_json(c));
  for (const auto& b : e.payers) payers.push_back(budget_json(b));
  for (const auto& dm : e.domains)
    domains.push_back({{"domain", dm.domain},
                       {"support", dm.support},
                       {"max_contribution", dm.max_contribution},
                       {"lead", dm.lead}});
  return {{"prefix", e.prefix.to_string()},
          {"policy", e.policy},
          {"verdict", std::string(to_string(d.verdict))},
          // Every rule that refuses it (the verdict is the first): e.g. colluders' claims on a
          // used service are below_threshold and domains_short at once.
          {"refused_by", refused_by},
          {"enforce", d.enforce},
          {"score", d.score},
          {"cost", std::isinf(d.cost) ? json("inf") : json(d.cost)},
          {"benefit", d.benefit},
          {"threshold", d.threshold},
          {"domains_supporting", d.domains},
          {"single_domain", d.single_domain},
          {"ttl_ms", d.ttl},
          {"flows", e.flows},
          // Collusion resistance (trust/README.md): the local benign evidence E and what it
          // demands: C's terms, the domains required against those backing the target (of the
          // full quorum of D known domains), the benefit cap, every pivotal domain's payer.
          {"benign_evidence",
           {{"flows", e.evidence.flows},
            {"sources", e.evidence.sources},
            {"span_ms", e.evidence.span_ms},
            {"flagged", e.evidence.flagged},
            {"E", d.benign},
            {"strong", d.strong_benign}}},
          {"cost_terms",
           {{"base", e.cost_terms.base},
            {"usage", e.cost_terms.usage},
            {"breadth", e.cost_terms.breadth},
            {"benign", e.cost_terms.benign}}},
          {"domains_required", d.domains_required},
          {"quorum_max", d.quorum_max},
          {"fleet_domains", d.fleet_domains},
          {"self_claim", d.self_claim},
          {"benefit_claimed", d.benefit_claimed},
          {"benefit_cap", d.benefit_cap},
          {"payers", payers},
          {"enforced", e.enforced},
          {"enforced_since", e.enforced_since},
          {"enforced_until", e.enforced_until},
          {"by_operator", e.by_operator},
          {"protected_reason", e.protected_reason},
          {"protected_by", e.protected_by ? e.protected_by->to_string() : ""},
          {"budget", budget_json(e.budget)},
          {"claims", claims},
          {"domains", domains},
          {"text", trust::format_explanation(e)}};
}

// "1.2.3.4:80", "[::1]:80"
std::string endpoint_text(const boost::asio::ip::tcp::endpoint& ep) {
  const auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

Result<Prefix> parse_target(const std::string& text) {
  auto p = Prefix::parse(text);
  if (!p) return fail("bad_cidr", p.error().message);
  return p;
}

}  // namespace

v1::ControlResponse Daemon::Impl::handle(const v1::ControlRequest& req) {
  ++counters.control_requests;
  v1::ControlResponse r;
  try {
    r = handle_request(req, wall_now_ms());
  } catch (const std::exception& e) {
    // E.g. nlohmann::json refusing a string that is not UTF-8: one bad request must not
    // take the daemon (it runs on the io thread) down.
    spdlog::error("control request failed: {}", e.what());
    r = error(Error{"internal", std::string("the daemon could not answer: ") + e.what()});
  }
  if (!r.ok()) ++counters.control_errors;
  return r;
}

v1::ControlResponse Daemon::Impl::handle_request(const v1::ControlRequest& req, TimeMs now) {
  auto failed = [](const Error& e) { return error(e); };
  switch (req.request_case()) {
    case v1::ControlRequest::kStatus: {
      const auto& s = node->engine_stats();
      return ok({{"node", node_id},
                 {"domain", domain},
                 {"peers", transport->peers().size()},
                 {"enforced", s.active_blocks},  // a count: enforced() copies every block
                 {"active_claims", s.active_claims},
                 {"pending_blocks", s.pending_blocks},
                 {"backend", std::string(enforcement->backend())},
                 {"enforcement", enforcement->description()},
                 {"policy", trust::policy_to_string(params)},
                 {"uptime_ms", now - started_at},
                 {"store_envelopes", node->store_size()},
                 {"own_seq", store->last_sequence().value_or(0)},
                 {"falco_listen", falco ? endpoint_text(falco->local_endpoint()) : ""},
                 {"usage",
                  {{"addresses", usage_stats.counters().addresses},
                   {"flows_recorded", usage_stats.counters().recorded},
                   {"recheck_rounds", counters.usage_recheck_rounds},
                   {"rechecked_destinations", counters.usage_rechecked_destinations},
                   {"full_rechecks", counters.usage_full_rechecks},
                   {"claims_contradicted", s.contradictions},
                   {"domains_short", s.domains_short}}}});
    }
    case v1::ControlRequest::kPeers: {
      json arr = json::array();
      for (const auto& p : transport->peers()) {
        json j{{"node", p.node_id},
               {"domain", p.failure_domain},
               {"address", p.remote.address().to_string()},
               {"port", p.remote.port()},
               {"outbound", p.outbound},
               {"connected_since", p.connected_since_ms},
               {"frames_in", p.frames_in},
               {"frames_out", p.frames_out},
               {"bytes_in", p.bytes_in},
               {"bytes_out", p.bytes_out},
               {"trust", node->ledger().trust(p.node_id, now)}};
        if (auto c = peer_directory.core_of_node(p.node_id))
          if (auto info = node->peer(*c, now)) j["penalty"] = info->penalty;
        arr.push_back(j);
      }
      return ok(arr);
    }
    case v1::ControlRequest::kBlocks: {
      // Every known target, enforced or not, most recent decision first by prefix order.
      json arr = json::array();
      for (const char* all : {"0.0.0.0/0", "::/0"}) {
        for (const auto& e : node->explain_overlapping(*Prefix::parse(all), now)) {
          if (e.claims.empty() && !e.enforced) continue;
          json origins = json::array();
          for (const auto& c : e.claims) origins.push_back(c.origin.node);
          arr.push_back({{"prefix", e.prefix.to_string()},
                         {"enforced", e.enforced},
                         {"direction", std::string(to_string(e.decision.direction))},
                         {"expires_at", e.enforced ? e.enforced_until : 0},
                         {"score", e.decision.score},
                         {"threshold", e.decision.threshold},
                         {"verdict", std::string(to_string(e.decision.verdict))},
                         {"by_operator", e.by_operator},
                         {"origins", origins}});
        }
      }
      return ok(arr);
    }
    case v1::ControlRequest::kBlockAdd: {
      const auto& b = req.block_add();
      auto prefix = parse_target(b.cidr());
      if (!prefix) return failed(prefix.error());
      if (!(b.confidence() >= 0 && b.confidence() <= 1))
        return failed(Error{"bad_confidence", "confidence must be a number in [0, 1]"});
      if (b.ttl_ms() < 0)
        return failed(Error{"bad_duration", "ttl_ms must be >= 0 (0 = the policy's ttl_max)"});
      // Unspecified = the daemon's default for a manual block.
      auto sev = b.severity() == v1::SEVERITY_UNSPECIFIED ? Result<Severity>(Severity::high)
                                                          : proto::to_severity(b.severity());
      if (!sev) return failed(sev.error());
      auto dir = proto::to_direction(b.direction()).value_or(Direction::both);
      auto d = sensor::make_manual_detection(*prefix, b.confidence(), b.reason(), now, dir, *sev);
      auto seq = submit_claim(d, b.ttl_ms());
      if (!seq) return failed(seq.error());
      auto dec = node->decide(*prefix, now);
      return ok({{"prefix", prefix->to_string()},
                 {"seq", *seq},
                 {"enforced", node->enforced(*prefix).has_value()},
                 {"verdict", std::string(to_string(dec.verdict))},
                 {"score", dec.score}});
    }
    case v1::ControlRequest::kBlockDel: {
      auto prefix = parse_target(req.block_del().cidr());
      if (!prefix) return failed(prefix.error());
      auto r = retract_own(*prefix, req.block_del().reason());
      if (!r) return failed(r.error());
      return ok({{"prefix", prefix->to_string()},
                 {"retracted", true},
                 {"enforced", node->enforced(*prefix).has_value()}});
    }
    case v1::ControlRequest::kExplain: {
      auto prefix = Prefix::parse(req.explain().ip());
      if (!prefix) return failed(Error{"bad_cidr", prefix.error().message});
      json arr = json::array();
      for (const auto& e : node->explain_overlapping(*prefix, now))
        arr.push_back(explanation_json(e));
      // CrowdSec decisions (sensor.crowdsec) are enforced here without the engine for those
      // of shared lists (CAPI, lists): each gets its target, with where it came from.
      const json local = crowdsec_explain(*prefix, now);
      for (const auto& d : local) {
        const std::string p = d["prefix"];
        if (std::none_of(arr.begin(), arr.end(), [&](const json& t) { return t["prefix"] == p; }))
          arr.push_back(explanation_json(node->explain(*Prefix::parse(p), now)));
      }
      if (arr.empty()) arr.push_back(explanation_json(node->explain(*prefix, now)));
      for (auto& t : arr) {
        json mine = json::array();
        std::string text = t["text"];
        if (!text.empty() && !text.ends_with("\n")) text += "\n";
        for (const auto& d : local) {
          if (d["prefix"] != t["prefix"]) continue;
          mine.push_back(d);
          text += "CrowdSec decision " + std::to_string(d["decision_id"].get<std::uint64_t>()) +
                  " (source " + d["source"].get<std::string>() + ", scenario '" +
                  d["scenario"].get<std::string>() + "'): " +
                  (d["gossiped"].get<bool>() ? "claimed by this node and gossiped"
                                             : "enforced on this node only, not gossiped") +
                  ", expires at " + std::to_string(d["expires_at"].get<TimeMs>()) + " (in " +
                  std::to_string(d["remaining_ms"].get<TimeMs>() / 1000) + " s)\n";
        }
        t["crowdsec"] = mine;
        t["text"] = text;
      }
      return ok({{"query", prefix->to_string()}, {"targets", arr}, {"crowdsec", local}});
    }
    case v1::ControlRequest::kTrust: {
      json arr = json::array();
      const auto& ledger = node->ledger();
      for (const auto& [id, entry] : ledger.entries())
        arr.push_back({{"node", id},
                       {"domain", entry.domain},
                       {"trust", ledger.trust(id, now)},
                       {"positive", entry.pos},
                       {"negative", entry.neg},
                       {"quarantined", ledger.quarantined(id, now)},
                       {"quarantine_until", entry.quarantine_until},
                       {"self", entry.pinned}});
      std::sort(arr.begin(), arr.end(),
                [](const json& a, const json& b) { return a["node"] < b["node"]; });
      return ok(arr);
    }
    case v1::ControlRequest::kEvents: {
      std::size_t limit = req.events().limit() ? req.events().limit() : 50;
      json arr = json::array();
      for (const auto& line : self->recent_events(limit)) arr.push_back(json::parse(line));
      return ok(arr);
    }
    case v1::ControlRequest::kOperatorDecision: {
      const auto& od = req.operator_decision();
      auto r = submit_operator_decision(od.decision(), od.operator_cert());
      if (!r) return failed(r.error());
      return ok({{"accepted", true}});
    }
    default:
      return failed(Error{"bad_request", "unknown control request"});
  }
}

}  // namespace meshd::app
