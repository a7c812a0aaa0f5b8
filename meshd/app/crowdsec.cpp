// sensor.crowdsec: meshd as a CrowdSec bouncer. Polls the LAPI's decision stream on the io
// thread (asynchronous HTTP), enforces every ban decision on this node in one batch per
// answer, and turns the decisions this host made (crowdsec, cscli, cscli-import) into claims
// signed by this node, which the mesh gossips. What is decided where is documented in
// sensor/detectors/crowdsec.hpp.
//
// Failures (no key, LAPI unreachable, HTTP errors, garbage) are logged, counted in
// meshd_crowdsec_polls_total{result} and retried with back-off; nothing enforced is lifted
// because of them. The next successful answer is a full one (startup=true): the LAPI moves
// this bouncer's "last pull" on every request, so the changes of a lost answer only come back
// that way.
#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "meshd/app/daemon_impl.hpp"
#include "meshd/app/metrics.hpp"

namespace meshd::app {

using nlohmann::json;

namespace {

constexpr DurationMs kMaxBackoffMs = 60'000;
constexpr DurationMs kSweepMs = 30'000;
constexpr DurationMs kRequeueMs = 60'000;
constexpr const char* kDetector = "crowdsec";
// The LAPI's delta answers hold the decisions created since this bouncer's previous pull. A
// bulk insert (`cscli decisions import`, a list pull) commits in chunks whose creation time
// can precede a pull that runs before they are committed: that chunk is in no delta, ever
// (seen here: 50 of a 10,000-decision import, on meshd and on crowdsec-firewall-bouncer
// alike). So a delta with at least kBulkNew new decisions schedules a full pull
// kBulkSettleMs after the last such delta, and a full pull runs every kFullResyncMs anyway.
constexpr std::size_t kBulkNew = 50;
constexpr DurationMs kBulkSettleMs = 5'000;
constexpr DurationMs kFullResyncMs = 600'000;

const char* const kPollResults[] = {"ok",           "no_key",     "unreachable", "timeout",
                                    "unauthorized", "http_error", "too_large",   "io_error",
                                    "bad_json",     "bad_shape"};
const char* const kDecisionResults[] = {
    "enforced",     "lifted",        "claimed",   "retracted", "claim_refused", "refused",
    "skipped_type", "skipped_scope", "bad_value", "malformed", "store_failed"};

Result<std::string> read_key(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail("no_key", "CrowdSec API key file '" + path + "' cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string key = ss.str();
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.front()))) key.erase(0, 1);
  if (key.empty()) return fail("no_key", "CrowdSec API key file '" + path + "' is empty");
  if (key.find_first_of("\r\n") != std::string::npos)
    return fail("no_key", "CrowdSec API key file '" + path + "' holds more than one line");
  return key;
}

}  // namespace

Result<void> Daemon::Impl::start_crowdsec() {
  const auto& cc = config.sensor.crowdsec;
  auto url = sensor::parse_lapi_url(cc.url);
  if (!url) return fail("bad_config", "sensor.crowdsec.url: " + url.error().message);
  sensor::CrowdsecClientOptions co;
  co.url = *url;
  co.timeout = std::chrono::milliseconds(cc.timeout_ms);
  sensor::CrowdsecOptions so;
  so.claim_confidence = {{"crowdsec", cc.confidence_crowdsec},
                         {"cscli", cc.confidence_cscli},
                         {"cscli-import", cc.confidence_cscli_import}};
  crowdsec = std::make_unique<CrowdsecBridge>(io, std::move(co), std::move(so));
  for (const char* r : kPollResults) crowdsec->polls[r] = 0;
  for (const char* r : kDecisionResults) crowdsec->decisions[r] = 0;
  spdlog::info("CrowdSec bouncer: polling {} every {} ms (key from {})", cc.url, cc.poll_ms,
               cc.api_key_file);
  // Local-only decisions of the last run (restore_state() kept them in the kernel): held
  // until the LAPI's first full answer says which still exist.
  const TimeMs now = wall_now_ms();
  if (auto held = crowdsec_stored(now); !held.empty()) {
    auto changes = crowdsec->table.restore(held, now);
    crowdsec_apply(changes, now);
    spdlog::info("CrowdSec: {} local-only decision(s) restored from {} ({} prefixes)", held.size(),
                 store->path(), changes.local_enforce.size());
  }
  crowdsec_poll();
  return {};
}

void Daemon::Impl::crowdsec_schedule(DurationMs delay) {
  if (!crowdsec || stopping) return;
  crowdsec->timer.expires_after(std::chrono::milliseconds(delay));
  crowdsec->timer.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopping) crowdsec_poll();
  });
}

void Daemon::Impl::crowdsec_poll() {
  if (!crowdsec || stopping || crowdsec->client.busy()) return;
  auto key = read_key(config.sensor.crowdsec.api_key_file);
  if (!key) {
    crowdsec_failure(key.error());
    return;
  }
  auto& cs = *crowdsec;
  const TimeMs now = wall_now_ms();
  const bool full =
      cs.need_full || (cs.full_at != 0 && now >= cs.full_at) || now - cs.last_full >= kFullResyncMs;
  crowdsec->client.get_stream(full, *key, [this, full](Result<std::string> body) {
    if (stopping) return;
    if (!body) {
      crowdsec_failure(body.error());
      return;
    }
    on_crowdsec_answer(*body, full);
  });
}

void Daemon::Impl::crowdsec_failure(const Error& e) {
  auto& cs = *crowdsec;
  ++cs.polls[e.code];
  ++cs.failures;
  cs.need_full = true;
  const DurationMs base = std::max(config.sensor.crowdsec.poll_ms, 1000);
  const DurationMs delay = std::min(kMaxBackoffMs, base << std::min(cs.failures - 1, 6));
  // Repeats of the same failure are logged at most once a minute (the back-off's ceiling).
  if (cs.last_error != e.message || delay >= kMaxBackoffMs || cs.failures <= 3)
    spdlog::warn("{} [{}]; retrying in {} ms (failure {}); blocks in force stay", e.message, e.code,
                 delay, cs.failures);
  cs.last_error = e.message;
  crowdsec_schedule(delay);
}

void Daemon::Impl::on_crowdsec_answer(const std::string& body, bool full) {
  auto& cs = *crowdsec;
  const auto t0 = std::chrono::steady_clock::now();
  auto stream = sensor::parse_crowdsec_stream(body);
  if (!stream) {
    crowdsec_failure(
        Error{stream.error().code, "CrowdSec LAPI answer ignored: " + stream.error().message});
    return;
  }
  ++cs.polls["ok"];
  if (cs.failures > 0)
    spdlog::info("CrowdSec: LAPI answering again after {} failure(s)", cs.failures);
  cs.failures = 0;
  cs.last_error.clear();
  cs.need_full = false;
  if (full) {
    cs.last_full = wall_now_ms();
    cs.full_at = 0;
  } else if (stream->added.size() >= kBulkNew) {  // re-armed while the bulk goes on
    cs.full_at =
        wall_now_ms() + std::max<DurationMs>(kBulkSettleMs, config.sensor.crowdsec.poll_ms);
  }
  if (stream->malformed > 0) {
    cs.decisions["malformed"] += stream->malformed;
    spdlog::warn("CrowdSec: {} malformed decision(s) skipped, e.g. {}", stream->malformed,
                 stream->errors.front());
  }
  const TimeMs now = wall_now_ms();
  auto changes = cs.table.apply(*stream, full, now);
  crowdsec_apply(changes, now);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::size_t batch = changes.local_enforce.size() + changes.local_lift.size();
  if (batch > 0 || full) {
    cs.last_batch_seconds = seconds;
    cs.last_batch_size = batch;
    const auto st = cs.table.stats();
    spdlog::info(
        "CrowdSec: {} answer: {} new, {} deleted -> {} enforced, {} lifted, {} to claim, {} "
        "to retract in {:.1f} ms ({} prefixes held, {} claimed)",
        full ? "full" : "delta", stream->added.size(), stream->deleted.size(),
        changes.local_enforce.size(), changes.local_lift.size(), changes.claim.size(),
        changes.retract.size(), seconds * 1000, st.prefixes, st.claimed);
    record_event(json{{"event", "crowdsec_applied"},
                      {"full", full},
                      {"enforced", changes.local_enforce.size()},
                      {"lifted", changes.local_lift.size()},
                      {"claims", changes.claim.size()},
                      {"retractions", changes.retract.size()},
                      {"apply_ms", seconds * 1000},
                      {"at", now},
                      {"done_at", wall_now_ms()}}
                     .dump());
  }
  if (full && !cs.cleaned_stale) {
    cs.cleaned_stale = true;
    // Own claims of decisions that ended while meshd was not running.
    for (const auto& b : node->enforced()) {
      if (cs.table.claim_for(b.prefix)) continue;
      for (const auto& c : node->explain(b.prefix, now).claims)
        if (c.origin.node == node_id && c.detector == kDetector) {
          if (auto r = retract_own(b.prefix, "CrowdSec decision gone"); r)
            ++cs.decisions["retracted"];
          break;
        }
    }
  }
  crowdsec_schedule(config.sensor.crowdsec.poll_ms);
}

std::vector<sensor::CrowdsecHeld> Daemon::Impl::crowdsec_stored(TimeMs now) const {
  std::vector<sensor::CrowdsecHeld> out;
  auto rows = store->load_crowdsec_local();
  if (!rows) {
    spdlog::warn("CrowdSec: stored local-only decisions not loaded: {}", rows.error().message);
    return out;
  }
  for (auto& r : *rows) {
    if (r.expires_at <= now) continue;
    auto p = Prefix::parse(r.prefix);
    if (!p) {
      spdlog::warn("CrowdSec: stored decision {} skipped: {}", r.id, p.error().message);
      continue;
    }
    out.push_back({r.id, *p, std::move(r.origin), std::move(r.scenario), r.expires_at, false});
  }
  return out;
}

nlohmann::json Daemon::Impl::crowdsec_explain(const Prefix& prefix, TimeMs now) const {
  json arr = json::array();
  if (!crowdsec) return arr;
  for (const auto& h : crowdsec->table.overlapping(prefix))
    arr.push_back({{"source", "crowdsec/" + h.origin},
                   {"decision_id", h.id},
                   {"prefix", h.prefix.to_string()},
                   {"scenario", h.scenario},
                   {"expires_at", h.expires_at},
                   {"remaining_ms", std::max<TimeMs>(0, h.expires_at - now)},
                   {"gossiped", h.gossip},
                   {"enforced_locally", crowdsec->local.contains(h.prefix)}});
  return arr;
}

// Kernel state for the table's changes in one enforcer batch, then claims and retractions.
void Daemon::Impl::crowdsec_apply(const sensor::CrowdsecChanges& changes, TimeMs now) {
  auto& cs = *crowdsec;
  if (!changes.local_held.empty() || !changes.local_gone.empty()) {
    std::vector<StoredCrowdsecDecision> rows;
    rows.reserve(changes.local_held.size());
    for (const auto& h : changes.local_held)
      rows.push_back({h.id, h.prefix.to_string(), h.origin, h.scenario, h.expires_at});
    // A store failure costs persistence across a restart only: enforcement goes on.
    if (auto r = store->update_crowdsec_local(rows, changes.local_gone, now); !r) {
      ++cs.decisions["store_failed"];
      spdlog::warn("CrowdSec: local-only decisions not persisted: {}", r.error().message);
    }
  }
  for (const auto& [kind, n] : changes.skipped) {
    const std::string result = kind.starts_with("type ")    ? "skipped_type"
                               : kind.starts_with("scope ") ? "skipped_scope"
                                                            : "bad_value";
    cs.decisions[result] += n;
    if (cs.logged_kinds.insert(kind).second)
      spdlog::info(
          "CrowdSec: skipping decisions of {} (meshd enforces bans of scope Ip and "
          "Range); counted in meshd_crowdsec_decisions_total{{result=\"{}\"}}",
          kind, result);
  }
  for (const auto& why : changes.bad_values) spdlog::warn("CrowdSec: skipped {}", why);

  // Lifted prefixes leave the local set first, so the engine's lifts caused by the retractions
  // below go straight to the kernel instead of being held by the overlay.
  for (const auto& p : changes.local_lift) cs.local.erase(p);
  for (const auto& p : changes.retract) {
    if (cs.queued.erase(p)) std::erase(cs.claim_queue, p);
    for (const auto& c : node->explain(p, now).claims)
      if (c.origin.node == node_id && c.detector == kDetector) {
        if (auto r = retract_own(p, "CrowdSec decision deleted or expired"); r)
          ++cs.decisions["retracted"];
        else
          spdlog::warn("CrowdSec: retraction of {} failed: {}", p.to_string(), r.error().message);
        break;
      }
  }

  std::vector<trust::BlockChange> batch;
  batch.reserve(changes.local_enforce.size() + changes.local_lift.size());
  for (const auto& b : changes.local_enforce) {
    cs.local[b.prefix] = b.expires_at;
    trust::BlockChange c;
    c.kind = trust::BlockChange::Kind::enforce;
    c.prefix = b.prefix;
    c.direction = Direction::both;
    c.expires_at = b.expires_at;
    if (auto e = node->enforced(b.prefix)) c.expires_at = std::max(c.expires_at, e->expires_at);
    batch.push_back(c);
  }
  for (const auto& p : changes.local_lift) {
    trust::BlockChange c;
    c.prefix = p;
    if (auto e = node->enforced(p)) {  // the engine still holds it: keep its rule
      c.kind = trust::BlockChange::Kind::enforce;
      c.direction = e->direction;
      c.expires_at = e->expires_at;
    } else {
      c.kind = trust::BlockChange::Kind::lift;
    }
    batch.push_back(c);
  }
  if (!batch.empty()) {
    auto result = enforcement->apply(batch, now);
    cs.decisions["enforced"] += changes.local_enforce.size();
    cs.decisions["lifted"] += changes.local_lift.size();
    cs.decisions["refused"] += result.errors.size();
    std::size_t shown = 0;
    for (const auto& e : result.errors)
      if (shown++ < 5) spdlog::warn("CrowdSec: enforcement: {}", e.message);
    if (result.errors.size() > 5)
      spdlog::warn("CrowdSec: enforcement: {} more refused", result.errors.size() - 5);
  }

  for (const auto& c : changes.claim)
    if (cs.queued.insert(c.prefix).second) cs.claim_queue.push_back(c.prefix);
  crowdsec_drain_claims(now);
}

// Signs queued claims while the rate allows (max_claims_per_min, checked by config against
// the fleet's overrun limit).
void Daemon::Impl::crowdsec_drain_claims(TimeMs now) {
  auto& cs = *crowdsec;
  while (!cs.signed_at.empty() && now - cs.signed_at.front() >= 60'000) cs.signed_at.pop_front();
  const auto limit = static_cast<std::size_t>(config.sensor.crowdsec.max_claims_per_min);
  while (!cs.claim_queue.empty() && cs.signed_at.size() < limit) {
    const Prefix p = cs.claim_queue.front();
    cs.claim_queue.pop_front();
    cs.queued.erase(p);
    auto claim = cs.table.claim_for(p);
    if (!claim || claim->expires_at <= now) continue;
    sensor::Detection d;
    d.prefix = p;
    d.direction = Direction::both;
    d.detector = kDetector;
    d.severity = Severity::high;
    d.confidence = claim->confidence;
    d.reason =
        claim->scenario.empty() ? "CrowdSec " + claim->origin + " decision" : claim->scenario;
    d.at = now;
    const DurationMs ttl = std::min(claim->expires_at - now, params.ttl_max_ms);
    cs.signed_at.push_back(now);
    ++counters.detections;
    if (auto r = submit_claim(d, ttl); r) {
      ++cs.decisions["claimed"];
    } else {
      ++cs.decisions["claim_refused"];
      spdlog::warn("CrowdSec: no claim for {}: {}", p.to_string(), r.error().message);
    }
  }
}

// Every second (from housekeeping): ended decisions, the claim queue, and every kSweepMs
// the claims of active decisions that lost their own claim (spent at the end of a
// single-domain block, expired, or never signed): they are queued again.
void Daemon::Impl::crowdsec_housekeeping(TimeMs now) {
  if (!crowdsec) return;
  auto& cs = *crowdsec;
  auto expired = cs.table.expire(now);
  if (!expired.empty()) crowdsec_apply(expired, now);
  if (now - cs.last_sweep >= kSweepMs) {
    cs.last_sweep = now;
    std::erase_if(cs.requeued_at, [&](const auto& kv) { return now - kv.second >= kRequeueMs; });
    for (const auto& p : cs.table.claimed_prefixes()) {
      if (cs.queued.contains(p) || cs.requeued_at.contains(p)) continue;
      bool live = false;
      for (const auto& c : node->explain(p, now).claims)
        if (c.origin.node == node_id && c.detector == kDetector && !c.spent && c.expires_at > now)
          live = true;
      if (live) continue;
      cs.requeued_at[p] = now;
      cs.queued.insert(p);
      cs.claim_queue.push_back(p);
    }
  }
  crowdsec_drain_claims(now);
}

// The engine's changes, with the local CrowdSec blocks kept in force: a lift of a prefix
// still held becomes a re-install with the local expiry, an enforce lasts at least as long.
std::vector<trust::BlockChange> Daemon::Impl::crowdsec_overlay(
    const std::vector<trust::BlockChange>& changes) const {
  if (!crowdsec || crowdsec->local.empty()) return changes;
  const TimeMs now = wall_now_ms();
  std::vector<trust::BlockChange> out = changes;
  for (auto& c : out) {
    auto it = crowdsec->local.find(c.prefix);
    if (it == crowdsec->local.end() || it->second <= now) continue;
    if (c.kind == trust::BlockChange::Kind::lift) c.kind = trust::BlockChange::Kind::enforce;
    c.direction = Direction::both;
    c.expires_at = std::max(c.expires_at, it->second);
  }
  return out;
}

void Daemon::Impl::crowdsec_metrics(MetricsWriter& w) const {
  if (!crowdsec) return;
  const auto& cs = *crowdsec;
  w.family("meshd_crowdsec_polls_total", "counter",
           "Requests to the CrowdSec LAPI decision stream, by result.");
  for (const auto& [r, n] : cs.polls)
    w.sample("meshd_crowdsec_polls_total", static_cast<double>(n), {{"result", r}});
  w.family("meshd_crowdsec_decisions_total", "counter",
           "CrowdSec decisions by what became of them (enforced and lifted on this node, "
           "claimed and retracted on the mesh, skipped).");
  for (const auto& [r, n] : cs.decisions)
    w.sample("meshd_crowdsec_decisions_total", static_cast<double>(n), {{"result", r}});
  const auto st = cs.table.stats();
  w.family("meshd_crowdsec_prefixes", "gauge",
           "Prefixes enforced for CrowdSec decisions, by whether this node claims them.");
  w.sample("meshd_crowdsec_prefixes", static_cast<double>(st.claimed), {{"class", "claimed"}});
  w.sample("meshd_crowdsec_prefixes", static_cast<double>(st.local_only),
           {{"class", "local_only"}});
  w.gauge("meshd_crowdsec_claims_queued", "Claims waiting for sensor.crowdsec.max_claims_per_min.",
          static_cast<double>(cs.claim_queue.size()));
  w.gauge("meshd_crowdsec_consecutive_failures", "Failed polls since the last good answer.",
          cs.failures);
  w.gauge("meshd_crowdsec_last_batch_seconds",
          "Time from a LAPI answer to its decisions in the kernel, last non-empty answer.",
          cs.last_batch_seconds);
}

}  // namespace meshd::app
