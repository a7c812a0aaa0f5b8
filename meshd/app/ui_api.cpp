// The metrics listener's routes: /metrics, /healthz and the read-only fleet view /ui (page
// assets embedded at build time from meshd/app/ui/, and its JSON API). Every /ui answer is
// computed on the io thread from the daemon's state; nothing here changes that state (the
// control API's read-only requests are reused for explain, status and trust).
//
//   GET /ui                      the page (index.html; app.js and style.css beside it)
//   GET /ui/api/state            this node, peers, active blocks, ledger, counters, histogram
//   GET /ui/api/explain?ip=CIDR  `meshctl explain` as JSON
//   GET /ui/api/events?after=N   events with id > N (the page polls with the last id it saw)
#include "meshd/app/ui_api.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "meshd/app/daemon_impl.hpp"
#include "meshd/app/ui_assets.hpp"
#include "meshd/common/errno_text.hpp"

namespace meshd::app {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxBlocksShown = 100;
constexpr std::size_t kMaxLedgerShown = 500;
constexpr std::size_t kMaxEventsPerPoll = 200;

HttpResponse json_response(int code, std::string body) {
  HttpResponse r;
  r.code = code;
  r.content_type = "application/json";
  r.body = std::move(body);
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

HttpResponse json_error(int code, const std::string& error_code, const std::string& message) {
  return json_response(code, json{{"error_code", error_code}, {"error", message}}.dump());
}

json histogram_json(const Histogram& h) {
  return {{"buckets", h.buckets()}, {"count", h.count()}, {"sum", h.sum()}};
}

json state_json(Daemon::Impl& d) {
  const TimeMs now = wall_now_ms();
  const auto& ledger = d.node->ledger();
  const auto& es = d.node->engine_stats();
  const auto& cs = d.node->stats();

  // Peers: every peer the core knows (connected or not), with its transport details.
  std::unordered_map<std::string, const net::PeerInfo*> live;
  const auto transport_peers = d.transport->peers();
  for (const auto& p : transport_peers) live[p.node_id] = &p;
  json peers = json::array();
  for (const auto& info : d.node->peers(now)) {
    const std::string& name = d.peer_directory.node_of(info.peer);
    if (name.empty()) continue;
    const auto* entry = ledger.find(name);
    json j{{"node", name},
           {"domain", entry ? entry->domain : ""},
           {"connected", info.connected},
           {"score", info.penalty == 0 ? 0.0 : -info.penalty},
           {"score_threshold", -d.node->config().score_threshold},
           {"banned_until", info.banned_until},
           {"trust", ledger.trust(name, now)},
           {"quarantined", ledger.quarantined(name, now)}};
    if (auto t = live.find(name); t != live.end()) {
      j["address"] = t->second->remote.address().to_string();
      j["outbound"] = t->second->outbound;
      j["connected_since"] = t->second->connected_since_ms;
    }
    peers.push_back(j);
  }
  std::sort(peers.begin(), peers.end(),
            [](const json& a, const json& b) { return a["node"] < b["node"]; });

  // Active blocks, the most recent first, with the origins behind each.
  auto enforced = d.node->enforced();
  const std::size_t shown = std::min(enforced.size(), kMaxBlocksShown);
  std::partial_sort(enforced.begin(), enforced.begin() + static_cast<std::ptrdiff_t>(shown),
                    enforced.end(),
                    [](const trust::EnforcedBlock& a, const trust::EnforcedBlock& b) {
                      return a.since != b.since ? a.since > b.since : a.prefix < b.prefix;
                    });
  json blocks = json::array();
  for (std::size_t i = 0; i < shown; ++i) {
    const auto& b = enforced[i];
    auto x = d.node->explain(b.prefix, now);
    json origins = json::array();
    for (const auto& c : x.claims)
      origins.push_back({{"origin", c.origin.node},
                         {"domain", c.origin.domain},
                         {"contribution", c.contribution},
                         {"quarantined", c.quarantined}});
    blocks.push_back({{"prefix", b.prefix.to_string()},
                      {"direction", std::string(to_string(b.direction))},
                      {"since", b.since},
                      {"expires_at", b.expires_at},
                      {"ttl_ms", std::max<TimeMs>(0, b.expires_at - now)},
                      {"score", b.score},
                      {"threshold", x.decision.threshold},
                      {"verdict", std::string(to_string(x.decision.verdict))},
                      {"by_operator", b.by_operator},
                      {"origins", origins}});
  }

  json origins = json::array();
  for (const auto& [id, e] : ledger.entries())
    origins.push_back({{"origin", id},
                       {"domain", e.domain},
                       {"trust", ledger.trust(e, now)},
                       {"quarantined", ledger.quarantined(id, now)},
                       {"quarantine_until", e.quarantine_until},
                       {"self", e.pinned}});
  std::sort(origins.begin(), origins.end(),
            [](const json& a, const json& b) { return a["origin"] < b["origin"]; });
  const std::size_t ledger_total = origins.size();
  if (origins.size() > kMaxLedgerShown)
    origins.erase(origins.begin() + kMaxLedgerShown, origins.end());

  const auto enf = d.enforcement->enforcer().stats();
  std::uint64_t rejected = es.rejected_bad_input + es.rejected_future + es.rejected_expired +
                           es.rejected_quarantined + es.rejected_protected;
  json counters{{"claims_received", es.claims_received},
                {"claims_accepted", es.claims_accepted},
                {"claims_rejected", rejected},
                {"claims_in_push", d.obs.claims_in_push},
                {"claims_in_sync", d.obs.claims_in_sync},
                {"claims_signed", d.counters.local_claims},
                {"detections", d.counters.detections},
                {"blocks_active", es.active_blocks},
                {"blocks_pending", es.pending_blocks},
                {"blocks_enforced_total", es.blocks_enforced},
                {"blocks_lifted_total", es.blocks_lifted},
                {"misbehaviour_detected", es.misbehaviour_detected},
                {"proofs_received", cs.proofs_received},
                {"proofs_published", d.counters.proofs_published},
                {"gossip_events_new", cs.events_new},
                {"gossip_duplicates", cs.duplicates},
                {"packets_dropped", enf.packets_dropped},
                {"connects_denied", enf.connects_denied},
                {"enforcer_rules", enf.active_rules}};
  json decisions = json::object();
  for (std::size_t v = 0; v < trust::kVerdictCount; ++v)
    decisions[std::string(to_string(static_cast<trust::Verdict>(v)))] = es.decisions[v];

  return {{"now", now},
          {"node",
           {{"id", d.node_id},
            {"domain", d.domain},
            {"backend", std::string(d.enforcement->backend())},
            {"policy", trust::policy_to_string(d.params)},
            {"uptime_ms", now - d.started_at},
            {"peers_connected", transport_peers.size()}}},
          {"peers", peers},
          {"blocks", blocks},
          {"blocks_total", es.active_blocks},
          {"blocks_pending", es.pending_blocks},
          {"ledger", origins},
          {"ledger_total", ledger_total},
          {"counters", counters},
          {"decisions", decisions},
          {"propagation",
           {{"bounds", kPropagationBuckets},
            {"push", histogram_json(d.obs.propagation_push)},
            {"sync", histogram_json(d.obs.propagation_sync)}}},
          {"events_total", d.obs.events_total}};
}

HttpResponse explain(Daemon::Impl& d, const HttpRequest& req) {
  auto ip = query_param(req.query, "ip");
  if (!ip || ip->empty())
    return json_error(400, "bad_request", "explain needs ?ip=ADDRESS or CIDR");
  v1::ControlRequest r;
  r.mutable_explain()->set_ip(*ip);
  auto resp = d.handle_request(r, wall_now_ms());
  if (!resp.ok()) return json_error(400, resp.error_code(), resp.error());
  return json_response(200, resp.json());
}

HttpResponse events(Daemon::Impl& d, const HttpRequest& req) {
  std::uint64_t after = 0;
  if (auto a = query_param(req.query, "after"); a && !a->empty()) {
    auto [p, ec] = std::from_chars(a->data(), a->data() + a->size(), after);
    if (ec != std::errc{} || p != a->data() + a->size())
      return json_error(400, "bad_request", "after must be an event id (a whole number)");
  }
  const auto& log = d.events;
  const std::uint64_t total = d.obs.events_total;
  const std::uint64_t first = total - log.size() + 1;  // id of log.front()
  std::uint64_t from = std::max(after + 1, first);
  if (total >= kMaxEventsPerPoll && from + kMaxEventsPerPoll <= total)
    from = total - kMaxEventsPerPoll + 1;  // only the newest of a long gap
  // The lines are JSON objects already: wrap them without re-parsing.
  std::string body = "{\"next\":" + std::to_string(total) + ",\"first\":" + std::to_string(first) +
                     ",\"events\":[";
  bool comma = false;
  for (std::uint64_t id = from; id <= total; ++id) {
    if (comma) body += ',';
    comma = true;
    body += "{\"id\":" + std::to_string(id) + ",\"e\":";
    body += log[id - first];
    body += '}';
  }
  body += "]}";
  return json_response(200, std::move(body));
}

HttpResponse asset(const UiAsset& a) {
  HttpResponse r;
  r.content_type = std::string(a.content_type);
  r.body = std::string(a.body);
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'none'; script-src 'self'; style-src 'self'; "
                         "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                         "base-uri 'none'; form-action 'none'");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  return r;
}

HttpResponse ui(Daemon::Impl& d, const HttpRequest& req) {
  try {
    if (req.path == "/ui/api/state") return json_response(200, state_json(d).dump());
    if (req.path == "/ui/api/explain") return explain(d, req);
    if (req.path == "/ui/api/events") return events(d, req);
    std::string_view name = req.path == "/ui" || req.path == "/ui/"
                                ? std::string_view("index.html")
                                : std::string_view(req.path).substr(4);
    for (const auto& a : ui_assets())
      if (a.name == name) return asset(a);
    return json_error(404, "not_found", "no such page: " + req.path);
  } catch (const std::exception& e) {
    // E.g. a node id that is not UTF-8 refused by the JSON writer: one bad answer, no crash.
    spdlog::error("/ui request {} failed: {}", req.path, e.what());
    return json_error(500, "internal", std::string("the daemon could not answer: ") + e.what());
  }
}

bool loopback_listen(const std::string& listen) {
  auto hp = split_host_port(listen);
  if (!hp) return false;
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(hp->first, ec);
  return !ec && a.is_loopback();
}

}  // namespace

Result<std::string> load_token_file(std::string_view key, const std::string& path) {
  const std::string k(key);
  std::ifstream f(path);
  if (!f) return fail("bad_config", k + ": cannot read " + path + ": " + errno_text(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  std::string token = ss.str();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front())))
    token.erase(token.begin());
  // The contents are never part of a message.
  if (token.size() < 16)
    return fail("bad_config", k + ": " + path +
                                  " must hold a token of at least 16 characters (e.g. "
                                  "`head -c 24 /dev/urandom | base64`)");
  for (char c : token)
    if (std::isspace(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) < 0x21 ||
        static_cast<unsigned char>(c) > 0x7e)
      return fail("bad_config",
                  k + ": " + path + " holds spaces or non-printable characters in its token");
  return token;
}

Result<HttpRoutes> make_http_routes(Daemon::Impl& d) {
  HttpRoutes routes;
  routes.metrics = [&d] { return d.metrics_text(); };
  routes.unready_reason = [&d] { return d.self->unready_reason(); };
  routes.ui = [&d](const HttpRequest& r) { return ui(d, r); };
  if (!d.config.metrics_ui_token_file.empty()) {
    auto t = load_ui_token(d.config.metrics_ui_token_file);
    if (!t) return std::unexpected(t.error());
    routes.ui_token = std::move(*t);
  }
  if (!loopback_listen(d.config.metrics_listen))
    spdlog::info("/ui on {}: {}", d.config.metrics_listen,
                 routes.ui_token.empty()
                     ? "loopback addresses only (no metrics.ui_token_file)"
                     : "loopback addresses, others with the token of metrics.ui_token_file");
  return routes;
}

}  // namespace meshd::app
