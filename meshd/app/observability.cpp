#include "meshd/app/observability.hpp"

#include <time.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "meshd/app/daemon_impl.hpp"
#include "meshd/common/numbers.hpp"
#include "proto/convert.hpp"
#include "proto/envelope.hpp"
#include "sensor/bpf_enforcer.hpp"

namespace meshd::app {

using nlohmann::json;

namespace {

std::string prefix_of(const v1::Claim& c) {
  auto p = proto::to_prefix(c.target());
  return p ? p->to_string() : std::string("?");
}

void record_claim(Daemon::Impl& d, const core::Persist& p, double seconds, TimeMs now) {
  auto& o = d.obs;
  if (o.claim_event_tokens <= 0) {
    ++o.claim_events_summarised;
    return;
  }
  --o.claim_event_tokens;
  v1::Envelope env;
  if (!env.ParseFromString(*p.envelope)) return;  // opened by the core: cannot happen
  auto c = proto::decode_claim(env);
  if (!c) return;
  const std::string prefix = prefix_of(*c);
  std::string verdict;
  if (auto pr = proto::to_prefix(c->target()))
    verdict = std::string(to_string(d.node->decide(*pr, now).verdict));
  d.record_event(json{
      {"event", "claim_received"},
      {"origin", p.origin},
      {"seq", p.seq},
      {"prefix", prefix},
      {"detector", c->detector()},
      {"confidence", c->confidence()},
      {"path", p.via_sync ? "sync" : "push"},
      {"latency_ms", static_cast<std::int64_t>(seconds * 1000.0)},
      {"verdict", verdict},
      {"at", now}}.dump());
}

// "protected_target" for MISBEHAVIOUR_KIND_PROTECTED_TARGET, as the daemon's own proofs say.
std::string kind_name(v1::MisbehaviourKind k) {
  std::string name = v1::MisbehaviourKind_Name(k);
  constexpr std::string_view prefix = "MISBEHAVIOUR_KIND_";
  if (name.starts_with(prefix)) name.erase(0, prefix.size());
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

void record_proof(Daemon::Impl& d, const core::Persist& p, TimeMs now) {
  ++d.obs.proofs_in;
  v1::Envelope env;
  if (!env.ParseFromString(*p.envelope)) return;
  auto proof = proto::decode_misbehaviour_proof(env);
  if (!proof) return;
  d.record_event(json{
      {"event", "proof_received"},
      {"reporter", p.origin},
      {"accused", proof->accused()},
      {"kind", kind_name(proof->kind())},
      {"detail", proof->detail()},
      {"at", now}}.dump());
}

// New quarantines since the last look become "quarantined" events.
void scan_quarantines(Daemon::Impl& d, TimeMs now) {
  const auto& ledger = d.node->ledger();
  std::set<std::string> now_quarantined;
  for (const auto& [id, e] : ledger.entries()) {
    if (!ledger.quarantined(id, now)) continue;
    now_quarantined.insert(id);
    if (d.obs.quarantined.contains(id)) continue;
    d.record_event(json{
        {"event", "quarantined"},
        {"origin", id},
        {"domain", e.domain},
        {"until", e.quarantine_until},
        {"at", now}}.dump());
  }
  d.obs.quarantined = std::move(now_quarantined);
}

struct ProcessStats {
  double cpu_seconds = 0;
  double start_time_seconds = 0;
  double virtual_bytes = 0;
  double resident_bytes = 0;
  double open_fds = 0;
};

ProcessStats process_stats() {
  ProcessStats s;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  std::ifstream stat("/proc/self/stat");
  std::string line;
  std::getline(stat, line);
  // Fields after the command name (which may hold spaces) start after the last ')'.
  auto close = line.rfind(')');
  if (close != std::string::npos) {
    std::vector<std::string> f;
    std::string cur;
    for (char ch : line.substr(close + 2)) {
      if (ch == ' ') {
        f.push_back(cur);
        cur.clear();
      } else {
        cur += ch;
      }
    }
    f.push_back(cur);
    // f[0] is field 3 (state): utime 14, stime 15, starttime 22, vsize 23, rss 24.
    // An unreadable or odd /proc leaves zeros: metrics must never take the daemon down.
    auto number = [](std::string_view t) { return parse_finite(t, 0, 1e300).value_or(0.0); };
    auto field = [&](std::size_t n) { return n - 3 < f.size() ? number(f[n - 3]) : 0.0; };
    s.cpu_seconds = (field(14) + field(15)) / ticks;
    s.virtual_bytes = field(23);
    s.resident_bytes = field(24) * page;
    double boot = 0;
    std::ifstream st("/proc/stat");
    for (std::string l; std::getline(st, l);)
      if (l.starts_with("btime ")) boot = number(l.substr(6));
    s.start_time_seconds = boot + field(22) / ticks;
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    s.open_fds += 1;
  return s;
}

constexpr const char* kHookNames[MESHD_HOOK_COUNT] = {"connect4", "connect6",  "sendmsg4",
                                                      "sendmsg6", "tc_egress", "xdp_ingress"};

}  // namespace

void observe_actions(Daemon::Impl& d, const core::Actions& actions, TimeMs now) {
  for (const auto& p : actions.persist) {
    if (p.origin == d.node_id) continue;
    if (p.kind == core::EventKind::claim) {
      double seconds = static_cast<double>(now - p.issued_at) / 1000.0;
      if (seconds < 0) {
        ++d.obs.propagation_clock_skew;
        seconds = 0;
      }
      if (p.via_sync) {
        d.obs.propagation_sync.observe(seconds);
        ++d.obs.claims_in_sync;
      } else {
        d.obs.propagation_push.observe(seconds);
        ++d.obs.claims_in_push;
      }
      record_claim(d, p, seconds, now);
    } else if (p.kind == core::EventKind::misbehaviour_proof) {
      record_proof(d, p, now);
    }
  }
  const auto epoch = d.node->engine_stats().proofs_applied + d.node->stats().quarantines;
  if (epoch != d.obs.quarantine_epoch) {
    d.obs.quarantine_epoch = epoch;
    scan_quarantines(d, now);
  }
}

void observe_second(Daemon::Impl& d, TimeMs now) {
  auto& o = d.obs;
  if (o.claim_events_summarised > 0) {
    d.record_event(json{
        {"event", "claims_received"},
        {"count", o.claim_events_summarised},
        {"note", "a burst: more than " + std::to_string(kClaimEventsPerSecond) +
                     " claims a second are counted, not listed"},
        {"at", now}}.dump());
    o.claim_events_summarised = 0;
  }
  o.claim_event_tokens = kClaimEventsPerSecond;
  if (o.block_lines_summarised > 0)
    spdlog::info(
        "{} more block changes in the last second, not logged one by one (at most {} lines a "
        "second): `meshctl events` lists them, meshd_blocks_enforced_total and "
        "meshd_blocks_lifted_total count them",
        o.block_lines_summarised, kBlockLinesPerSecond);
  o.block_lines_summarised = 0;
  o.block_line_tokens = kBlockLinesPerSecond;
  scan_quarantines(d, now);  // quarantines also end (and a restored ledger starts with some)
}

namespace {
// The slowloris guards of the metrics listener and the control socket, counted alike.
void connections_closed(MetricsWriter& w, const char* family, const std::string& listener,
                        std::uint64_t timeouts, std::uint64_t refused) {
  w.family(family, "counter",
           listener +
               " connections cut off: no whole request within 5 s (timeout), or "
               "refused with too many open (limit).");
  w.sample(family, static_cast<double>(timeouts), {{"reason", "timeout"}});
  w.sample(family, static_cast<double>(refused), {{"reason", "limit"}});
}
}  // namespace

void append_observability_metrics(const Daemon::Impl& d, MetricsWriter& w) {
  const TimeMs now = wall_now_ms();
  const auto& o = d.obs;

  w.family("meshd_claim_propagation_seconds", "histogram",
           "From a claim's issued_at (the signer's clock) to its acceptance at this node, by "
           "the path it arrived on: push (eager gossip) or sync (anti-entropy).");
  w.histogram("meshd_claim_propagation_seconds", o.propagation_push, {{"path", "push"}});
  w.histogram("meshd_claim_propagation_seconds", o.propagation_sync, {{"path", "sync"}});
  w.counter("meshd_claim_propagation_clock_skew_total",
            "Accepted claims issued ahead of this node's clock (observed as 0 s).",
            static_cast<double>(o.propagation_clock_skew));

  const auto& es = d.node->engine_stats();
  w.family("meshd_block_decision_total", "counter",
           "Decisions the acceptance engine took on a target (after a claim, retraction, "
           "operator decision, expiry, budget retry or trust change), by verdict.");
  for (std::size_t v = 0; v < trust::kVerdictCount; ++v)
    w.sample("meshd_block_decision_total", static_cast<double>(es.decisions[v]),
             {{"verdict", std::string(to_string(static_cast<trust::Verdict>(v)))}});

  // Peers: connected ones that are in the ledger (certified fleet members); at most
  // mesh.max_peers series.
  const auto& ledger = d.node->ledger();
  w.family("meshd_peer_score", "gauge",
           "Score of each connected peer: minus its decayed penalty for invalid, malformed, "
           "rate-limited or useless input; it is disconnected at minus the score threshold.");
  d.peer_directory.for_each_connected([&](core::PeerId cid, const std::string& name) {
    const auto* entry = ledger.find(name);
    if (!entry) return;
    auto info = d.node->peer(cid, now);
    if (!info || !info->connected) return;
    w.sample("meshd_peer_score", info->penalty == 0 ? 0.0 : -info->penalty,
             {{"peer", name}, {"domain", entry->domain}});
  });

  // Trust: the ledger's origins, the kMaxTrustSeries least trusted (quarantined = 0) first.
  struct Row {
    const std::string* id;
    const trust::LedgerEntry* e;
    double t;
  };
  std::vector<Row> rows;
  rows.reserve(ledger.entries().size());
  std::size_t quarantined = 0;
  for (const auto& [id, e] : ledger.entries()) {
    rows.push_back({&id, &e, ledger.trust(e, now)});
    if (ledger.quarantined(id, now)) ++quarantined;
  }
  std::sort(rows.begin(), rows.end(),
            [](const Row& a, const Row& b) { return a.t != b.t ? a.t < b.t : *a.id < *b.id; });
  if (rows.size() > kMaxTrustSeries) rows.resize(kMaxTrustSeries);
  w.family("meshd_trust", "gauge",
           "Trust this node gives each origin in its ledger (0 while quarantined); at most " +
               std::to_string(kMaxTrustSeries) + " series, the least trusted first.");
  for (const auto& r : rows)
    w.sample("meshd_trust", r.t, {{"origin", *r.id}, {"domain", r.e->domain}});
  w.gauge("meshd_trust_origins", "Origins in the trust ledger (this node included).",
          static_cast<double>(ledger.entries().size()));
  w.gauge("meshd_trust_origins_quarantined", "Origins quarantined now.",
          static_cast<double>(quarantined));

  w.family("meshd_claims_in_total", "counter",
           "Claims of other origins accepted into this node's store, by path.");
  w.sample("meshd_claims_in_total", static_cast<double>(o.claims_in_push), {{"path", "push"}});
  w.sample("meshd_claims_in_total", static_cast<double>(o.claims_in_sync), {{"path", "sync"}});
  w.counter("meshd_proofs_in_total", "Misbehaviour proofs of other nodes accepted.",
            static_cast<double>(o.proofs_in));
  w.counter("meshd_events_total", "Events recorded in the event log (meshctl events, /ui).",
            static_cast<double>(o.events_total));

  // Drops by program: the bpf backend's kernel counters per hook; other backends are one
  // program (nftables counts its drops, dryrun drops nothing).
  w.family("meshd_enforcer_drops_total", "counter",
           "Packets dropped and connects/sendmsgs denied, by enforcement program.");
  const auto& enforcer = d.enforcement->enforcer();
  if (const auto* bpf = dynamic_cast<const sensor::BpfEnforcer*>(&enforcer)) {
    const auto s = bpf->detailed_stats();
    for (std::size_t h = 0; h < MESHD_HOOK_COUNT; ++h)
      w.sample("meshd_enforcer_drops_total", static_cast<double>(s.hooks[h].blocked),
               {{"program", kHookNames[h]}});
  } else {
    const auto s = enforcer.stats();
    w.sample("meshd_enforcer_drops_total",
             static_cast<double>(s.packets_dropped + s.connects_denied),
             {{"program", std::string(enforcer.name())}});
  }
  const auto* ring = d.enforcement->events();
  w.counter("meshd_sensor_events_lost_total",
            "Connect events lost: ring buffer full in the kernel, or a record of the wrong size "
            "(0 without the bpf sensor).",
            ring ? static_cast<double>(ring->lost_events()) : 0.0);
  w.gauge("meshd_sensor_attached", "1 while the bpf connect sensor feeds the detectors.",
          ring ? 1 : 0);

  if (d.http) {
    const auto hs = d.http->stats();
    w.family("meshd_http_requests_total", "counter",
             "Requests to the metrics listener (/metrics, /healthz, /ui), by result.");
    w.sample("meshd_http_requests_total", static_cast<double>(hs.ok), {{"result", "ok"}});
    w.sample("meshd_http_requests_total", static_cast<double>(hs.unauthorized),
             {{"result", "unauthorized"}});
    w.sample("meshd_http_requests_total", static_cast<double>(hs.not_found),
             {{"result", "not_found"}});
    w.sample("meshd_http_requests_total", static_cast<double>(hs.bad_request),
             {{"result", "bad_request"}});
    connections_closed(w, "meshd_http_connections_closed_total", "Metrics-listener", hs.timeouts,
                       hs.refused);
  }
  if (d.control) {
    const auto& cs = d.control->stats();
    connections_closed(w, "meshd_control_connections_closed_total", "Control-socket", cs.timeouts,
                       cs.refused);
  }

  const auto ps = process_stats();
  w.counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds.",
            ps.cpu_seconds);
  w.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", ps.resident_bytes);
  w.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", ps.virtual_bytes);
  w.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch.",
          ps.start_time_seconds);
  w.gauge("process_open_fds", "Open file descriptors.", ps.open_fds);
}

}  // namespace meshd::app
