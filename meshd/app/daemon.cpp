#include "meshd/app/daemon.hpp"

#include <malloc.h>
#include <sodium.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "meshd/app/daemon_impl.hpp"
#include "meshd/app/frames.hpp"
#include "meshd/app/subsystems.hpp"
#include "meshd/app/ui_api.hpp"
#include "meshd/common/numbers.hpp"
#include "proto/cert.hpp"
#include "proto/keys.hpp"
#include "sensor/bpf_ringbuf.hpp"

namespace meshd::app {

using nlohmann::json;

namespace {

// The store's row for an enforced block (EnforcedBlock or an enforce/retime BlockChange).
template <class Block>
StoredBlock stored_block(const Block& b) {
  return StoredBlock{b.prefix.to_string(), static_cast<int>(b.direction), rule_id_of(b.prefix),
                     b.expires_at, b.score};
}

Result<void> load_identity(Daemon::Impl& d, TimeMs now) {
  const auto& n = d.config.node;
  auto ca = proto::load_public_key(n.ca);
  if (!ca) return fail(ca.error().code, "node.ca: " + ca.error().message);
  auto cert = proto::load_cert_file(n.cert);
  if (!cert) return fail(cert.error().code, "node.cert: " + cert.error().message);
  auto key = proto::load_secret_key(n.key);
  if (!key) return fail(key.error().code, "node.key: " + key.error().message);
  // The transport loads its own copy (make_transport); this one checks cert and key match.
  auto check_key = proto::load_secret_key(n.key);
  if (!check_key) return fail(check_key.error().code, "node.key: " + check_key.error().message);
  auto identity = net::make_identity(std::move(*check_key), *cert, *ca, now);
  if (!identity) return fail(identity.error().code, "node.cert: " + identity.error().message);
  if (!n.name.empty() && n.name != identity->node_cert.node_id())
    return fail("identity_mismatch", "node.name is '" + n.name + "' but node.cert certifies '" +
                                         identity->node_cert.node_id() + "'");
  d.ca = *ca;
  d.cert = *cert;
  d.node_cert = identity->node_cert;
  d.node_id = d.node_cert.node_id();
  d.domain = d.node_cert.failure_domain();
  d.key.emplace(std::move(*key));
  return {};
}

std::string change_json(const trust::BlockChange& c) {
  // One clock reading for both times: "at" (ms, what every reader uses) is at_us / 1000.
  const std::int64_t at_us = realtime_ns() / 1000;
  return json{{"event", std::string("block_") + std::string(to_string(c.kind))},
              {"prefix", c.prefix.to_string()},
              {"direction", std::string(to_string(c.direction))},
              {"expires_at", c.expires_at},
              {"score", c.score},
              {"cause", std::string(to_string(c.cause))},
              {"at", at_us / 1000},
              {"at_us", at_us}}
      .dump();
}

}  // namespace

// The subsystems in dependency order; each factory names what is wrong when it fails.
Result<void> Daemon::Impl::start() {
  const TimeMs now = wall_now_ms();
  started_at = now;
  if (auto r = load_identity(*this, now); !r) return r;
  if (auto r = assign(store, Store::open(config.node.data_dir)); !r) return r;
  params = config.policy;
  usage_stats = sensor::UsageStats(sensor::UsageConfig{.bucket_ms = config.sensor.usage_bucket_ms,
                                                       .buckets = config.sensor.usage_buckets});
  usage = std::make_unique<UsageAdapter>(usage_stats);
  config_protected = node_protected_prefixes(config);
  trust::LocalContext ctx{trust::Origin{node_id, domain}, config_protected, usage.get()};
  if (auto r = assign(engine, make_engine(params, std::move(ctx), now)); !r) return r;
  if (auto r = assign(opener, make_opener(config, ca, params, cert, now)); !r) return r;
  rng = make_rng();
  archive = std::make_unique<StoreArchive>(*store, counters.store_errors);
  if (auto r = assign(node, make_node(config, *engine, *opener, *rng, archive.get())); !r) return r;
  if (auto r = assign(enforcement, Enforcement::create(config)); !r) return r;
  if (auto r = restore_state(now); !r) return r;
  watch_store();
  if (auto r = assign(transport, make_transport(io, config, cert, ca, peer_callbacks(), now)); !r)
    return r;
  if (auto r = assign(control, ControlServer::create(io, config.control_socket, control_hooks()));
      !r)
    return r;
  if (!config.metrics_listen.empty())
    if (auto r = start_http(); !r) return r;
  if (!config.sensor.falco_listen.empty())
    if (auto r = start_falco(); !r) return r;
  if (!config.sensor.crowdsec.url.empty())
    if (auto r = start_crowdsec(); !r) return r;
  feeds = make_feeds(config);
  fanout = make_fanout(config);
  start_sensor();
  start_signals();
  housekeeping();
  record_event(json{
      {"event", "started"},
      {"node", node_id},
      {"backend", std::string(enforcement->backend())},
      {"at", now}}.dump());
  return {};
}

// After a restart: the trust ledger, then every stored envelope; then the kernel state is made
// equal to what the engine enforces, and the blocks table restarts from it.
Result<void> Daemon::Impl::restore_state(TimeMs now) {
  actions.clear();
  if (auto blob = store->get_blob("ledger"); blob && *blob) {
    auto ledger = trust::TrustLedger::deserialize(**blob, params);
    if (ledger)
      node->restore_ledger(std::move(*ledger), now, actions);
    else
      spdlog::warn("stored trust ledger unreadable, starting from priors: {}",
                   ledger.error().message);
  }
  // In slices ordered by (origin, seq) (core::Node::restore's contract): a store of 100k
  // envelopes is never in memory all at once.
  std::size_t restored = 0;
  std::vector<core::Envelope> envs;
  auto scanned = store->scan_envelopes(4096, [&](std::vector<StoredEnvelope>& rows) {
    envs.clear();
    for (auto& e : rows) envs.push_back(core::make_envelope(std::move(e.bytes)));
    node->restore(envs, now, actions);
    // reconcile() below installs everything the engine enforces: the slice's block changes
    // are not kept (100k of them were the bulk of a restart's peak memory).
    actions.blocks.clear();
    restored += envs.size();
  });
  envs.clear();
  envs.shrink_to_fit();
  if (!scanned) return std::unexpected(scanned.error());
  spdlog::info("restored {} envelopes from {}", restored, store->path());

  // Local-only CrowdSec decisions of the last run stay in the kernel (no gap until the LAPI
  // answers, and none at all while it is down); start_crowdsec() puts them back in its table.
  auto want = node->enforced();
  if (!config.sensor.crowdsec.url.empty()) {
    std::set<Prefix> engine_held;
    for (const auto& b : want) engine_held.insert(b.prefix);
    for (const auto& h : crowdsec_stored(now)) {
      if (!engine_held.insert(h.prefix).second) continue;
      trust::EnforcedBlock b;
      b.prefix = h.prefix;
      b.since = now;
      b.expires_at = h.expires_at;
      want.push_back(b);
    }
  }
  auto rec = enforcement->reconcile(want, now);
  for (const auto& e : rec.errors) spdlog::warn("reconcile: {}", e.message);
  spdlog::info("reconciled enforcement: {} installed, {} stale removed", rec.applied, rec.removed);
  actions.blocks.clear();  // reconcile covered what the ledger and restore() enforced
  actions.blocks.shrink_to_fit();
  std::vector<trust::EnforcedBlock>().swap(want);  // before the rows: not both at the peak
  std::vector<StoredBlock> rows;
  {
    const auto enforced = node->enforced();
    rows.reserve(enforced.size());
    for (const auto& b : enforced) rows.push_back(stored_block(b));
  }
  if (auto r = store->replace_blocks(rows); !r) {
    // A read-only or full store must not keep the node from enforcing and gossiping;
    // watch_store() logs it once.
    ++counters.store_errors;
    spdlog::debug("{}", r.error().message);
  }
  // No transport yet: sends wait for peers, which get our version vector on peer-up.
  apply_actions(now);
  return {};
}

net::TransportCallbacks Daemon::Impl::peer_callbacks() {
  net::TransportCallbacks cb;
  cb.on_peer_up = [this](net::PeerId id, const v1::NodeCert& c) { on_peer_up(id, c); };
  cb.on_frame = [this](net::PeerId id, std::span<const std::uint8_t> p) { on_frame(id, p); };
  cb.on_peer_down = [this](net::PeerId id, std::string_view why) { on_peer_down(id, why); };
  cb.on_rate_drop = [this](net::PeerId id) { on_rate_drop(id); };
  return cb;
}

ControlHooks Daemon::Impl::control_hooks() {
  ControlHooks hooks;
  hooks.handle = [this](const v1::ControlRequest& r) { return handle(r); };
  hooks.subscribe = [this](std::function<void(const std::string&)> sink) {
    return self->subscribe_events(std::move(sink));
  };
  hooks.unsubscribe = [this](std::uint64_t id) { self->unsubscribe_events(id); };
  return hooks;
}

// /metrics, /healthz and /ui (ui_api.cpp) on metrics.listen.
Result<void> Daemon::Impl::start_http() {
  auto routes = make_http_routes(*this);
  if (!routes) return std::unexpected(routes.error());
  return assign(http, HttpServer::create(io, config.metrics_listen, std::move(*routes)));
}

// The connect sensor (bpf backend with cgroup hooks only): woken by its fd, drained in full.
void Daemon::Impl::start_sensor() {
  auto* src = event_source();
  if (!src) return;
  if (auto resolver = sensor::CgroupPathResolver::from_proc_mounts()) {
    cgroups.emplace(std::move(*resolver));
    pods = std::make_unique<sensor::PodIdentityResolver>(&*cgroups, nullptr);
  } else {
    spdlog::warn("pod identity off: {}", resolver.error().message);
  }
  sensor_fd.emplace(io, ::dup(src->readable_fd()));
  on_sensor_readable();
  drain_sensor();
}

void Daemon::Impl::start_signals() {
  signals.add(SIGTERM);
  signals.add(SIGINT);
  signals.add(SIGHUP);
  signals.async_wait(
      [this](const boost::system::error_code& ec, int sig) { on_signal_received(ec, sig); });
}

void Daemon::Impl::on_signal_received(const boost::system::error_code& ec, int sig) {
  if (ec) return;
  if (sig == SIGHUP) {
    reload();
    signals.async_wait(
        [this](const boost::system::error_code& e, int s) { on_signal_received(e, s); });
    return;
  }
  spdlog::info("signal {}: shutting down", sig);
  shutdown();
}

void Daemon::Impl::on_peer_up(net::PeerId id, const v1::NodeCert& c) {
  const TimeMs now = wall_now_ms();
  const core::PeerId cid = peer_directory.connected(id, c.node_id());
  actions.clear();
  node->register_origin(c.node_id(), c.failure_domain(), now, actions);
  protect_peer_address(id, c.node_id(), now);
  spdlog::info("peer up: {} (domain {})", c.node_id(), c.failure_domain());
  record_event(json{
      {"event", "peer_up"},
      {"peer", c.node_id()},
      {"domain", c.failure_domain()},
      {"at", now}}.dump());
  node->on_peer_up(cid, now, actions);
  apply_actions(now);
}

void Daemon::Impl::on_frame(net::PeerId id, std::span<const std::uint8_t> payload) {
  const auto cid = peer_directory.core_of(id);
  if (!cid) return;
  const TimeMs now = wall_now_ms();
  actions.clear();
  // Cheap rejection first: a frame over the peer's rate limit is dropped (and the peer scored)
  // before it is decoded, so a flood costs a token-bucket check per frame, not a decode,
  // a signature check and a store write.
  if (!node->admit(*cid, now, actions)) {
    log_rate_limited(*cid, now, "frame dropped");
    // Deferred like any received frame: a flood must not commit the open batch per frame.
    apply_actions(now, /*deferred=*/true);
    return;
  }
  auto msg = decode_message(payload);
  if (!msg) {
    ++counters.frames_malformed;
    // One warning every 10 s at most (the core scores the peer for each); the rest at debug.
    if (now - malformed_logged_at >= 10'000) {
      malformed_logged_at = now;
      spdlog::warn("malformed frame from {}: {}", peer_directory.node_of(*cid),
                   msg.error().message);
    } else {
      spdlog::debug("malformed frame from {}: {}", peer_directory.node_of(*cid),
                    msg.error().message);
    }
    // The core scores malformed input: hand it an empty push (a malformed message).
    msg = core::Message{core::Push{core::make_envelope(std::string())}};
  } else if (park_push(*cid, *msg)) {
    if (!actions.empty()) apply_actions(now, /*deferred=*/true);
    return;
  }
  node->on_admitted_message(*cid, *msg, now, actions);
  apply_actions(now, /*deferred=*/true);
}

bool Daemon::Impl::park_push(core::PeerId cid, const core::Message& msg) {
  const auto* push = std::get_if<core::Push>(&msg);
  if (push == nullptr || !push->envelope) return false;
  const core::EventId id = opener->event_id(*push->envelope);
  if (node->seen(id)) return false;  // a duplicate: the core counts (and scores) it now
  const std::string_view signer = signer_of(*push->envelope);
  if (signer.empty()) return false;  // the core finds it malformed and scores the peer
  auto offer = intake.offer(signer, {cid, push->envelope, id});
  if (offer == PushIntake::Offer::full) {
    ++counters.intake_full;
    // Never past this signer's own waiting events (push_intake.hpp): open its oldest now and
    // queue the new one behind the rest. None waiting: the new one is next in order anyway.
    auto oldest = intake.take_oldest(signer);
    if (!oldest) return false;
    if (!actions.empty()) apply_actions(wall_now_ms(), /*deferred=*/true);
    open_parked(std::move(*oldest));
    actions.clear();
    offer = intake.offer(signer, {cid, push->envelope, id});
    if (offer == PushIntake::Offer::full) return false;  // cannot happen: one place was freed
  }
  if (offer == PushIntake::Offer::already_queued) {
    ++counters.intake_copies;
    return true;
  }
  if (!intake_scheduled) {
    intake_scheduled = true;
    boost::asio::post(io, [this] { drain_intake(); });
  }
  return true;
}

void Daemon::Impl::open_parked(PushIntake::Item item) {
  const TimeMs now = wall_now_ms();
  actions.clear();
  // A peer that went down meanwhile: the core ignores it (messages_ignored); the event
  // comes again from another peer or through anti-entropy.
  node->on_admitted_message(item.peer, core::Message{core::Push{std::move(item.envelope)}}, now,
                            actions);
  // A received envelope like any other: into the open store batch, relayed after its commit.
  apply_actions(now, /*deferred=*/true);
}

// kIntakePerTurn waiting pushes per io turn, one signer after another; then the readers, the
// store flush and the timers run again, so a frame that arrives meanwhile joins the intake
// before the next one is opened.
void Daemon::Impl::drain_intake() {
  intake_scheduled = false;
  if (stopping) return;
  for (std::size_t k = 0; k < kIntakePerTurn; ++k) {
    auto item = intake.next();
    if (!item) break;
    open_parked(std::move(*item));
  }
  if (!intake.empty() && !intake_scheduled) {
    intake_scheduled = true;
    boost::asio::post(io, [this] { drain_intake(); });
  }
}

void Daemon::Impl::on_rate_drop(net::PeerId id) {
  const auto cid = peer_directory.core_of(id);
  if (!cid) return;
  const TimeMs now = wall_now_ms();
  actions.clear();
  node->on_rate_dropped(*cid, now, actions);
  log_rate_limited(*cid, now, "frame dropped by the transport's byte/frame budget");
  apply_actions(now, /*deferred=*/true);
}

void Daemon::Impl::log_rate_limited(core::PeerId cid, TimeMs now, const char* what) {
  const auto info = node->peer(cid, now);
  // Not connected (anymore): in-flight frames after a disconnect, not worth a line.
  if (!info || (!info->connected && info->banned_until <= now)) return;
  const auto left_out = rate_limit_log.admit();
  if (!left_out) return;
  const auto& cc = node->config();
  spdlog::warn(
      "peer {} exceeds its rate limit ({:.0f} frames/s, burst {:.0f}): {}; penalty {:.1f} of "
      "{:.0f}{}{}",
      peer_directory.node_of(cid), cc.peer_rate_per_s, cc.peer_burst, what, info->penalty,
      cc.score_threshold, info->connected ? "" : ", now banned", LogLimit::and_more(*left_out));
}

void Daemon::Impl::on_peer_down(net::PeerId id, std::string_view reason) {
  // Unknown, or a replaced duplicate connection: the node is still up on its other one.
  const auto gone = peer_directory.disconnected(id);
  if (!gone) return;
  const TimeMs now = wall_now_ms();
  const core::PeerId cid = *gone;
  const std::string& peer = peer_directory.node_of(cid);
  if (reason.find("overflow") != std::string_view::npos)
    spdlog::warn("peer down: {} ({})", peer, reason);
  else
    spdlog::info("peer down: {} ({})", peer, reason);
  record_event(json{
      {"event", "peer_down"},
      {"peer", peer},
      {"reason", std::string(reason)},
      {"at", now}}.dump());
  actions.clear();
  node->on_peer_down(cid, now, actions);
  apply_actions(now);
}

void Daemon::Impl::apply_actions(TimeMs now, bool deferred) {
  // Input other than a received frame: what the last burst left waits no longer, so sends
  // to a peer keep their order and no peer mapping changes under a deferred send.
  if (!deferred) flush_received();
  if (deferred) {
    if (!actions.persist.empty() && !store->in_batch() && store->writable())
      if (auto r = store->begin_batch(); !r) {
        ++counters.store_errors;
        spdlog::debug("{}", r.error().message);
      }
    // Durable before anything is sent: the relays wait for the batch's commit.
    if (!batch_pending && (!actions.persist.empty() || !actions.sends.empty())) {
      batch_pending = true;
      batch_begun = std::chrono::steady_clock::now();
    }
    batch_envelopes += actions.persist.size();
    persist_actions(now);
    for (const auto& s : actions.sends)
      deferred_sends.emplace_back(s.peer, encode_message(s.message));
    if (!flush_posted && (store->in_batch() || !deferred_sends.empty())) {
      flush_posted = true;
      boost::asio::post(io, [this] {
        flush_posted = false;
        // Held: the next open (drain_intake is scheduled) posts this flush again.
        if (!stopping && !hold_batch()) flush_received();
      });
    }
  } else {
    // Stored before it is sent, for the same reason (a commit costs tens of microseconds).
    persist_actions(now);
    for (const auto& s : actions.sends) {
      const auto conn = peer_directory.connection_of(s.peer);
      if (!conn) continue;
      std::string bytes = encode_message(s.message);
      auto r = transport->send(*conn,
                               {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
      if (!r) ++counters.sends_failed;
    }
  }
  if (!actions.blocks.empty()) apply_block_changes(actions.blocks, now);
  for (const auto& d : actions.disconnects) {
    const auto conn = peer_directory.connection_of(d.peer);
    const std::string& peer = peer_directory.node_of(d.peer);
    spdlog::warn("disconnecting peer {}: {}", peer, d.reason);
    record_event(json{
        {"event", "peer_banned"},
        {"peer", peer},
        {"reason", d.reason},
        {"ban_until", d.ban_until},
        {"at", now}}.dump());
    if (conn)
      transport->disconnect(*conn, d.reason,
                            std::chrono::milliseconds(std::max<TimeMs>(0, d.ban_until - now)));
  }
  auto proofs = std::move(actions.proofs);
  auto deadline = actions.next_deadline;
  actions.proofs.clear();
  observe_actions(*this, actions, now);  // before publish_proof reuses `actions`
  for (const auto& p : proofs) publish_proof(p, now);
  schedule_tick(deadline);
}

void Daemon::Impl::persist_actions(TimeMs now) {
  if (actions.persist.empty()) return;
  std::vector<StoredEnvelope> rows;
  rows.reserve(actions.persist.size());
  for (const auto& p : actions.persist)
    rows.push_back(
        {p.id, p.origin, p.seq, static_cast<int>(p.kind), *p.envelope, now, p.expires_at});
  if (auto r = store->put_envelopes(rows); !r) {
    ++counters.store_errors;
    spdlog::debug("{}", r.error().message);
  }
  watch_store();  // one log line when the store stops (or resumes) taking writes
}

bool Daemon::Impl::hold_batch() const {
  return intake_scheduled && !intake.empty() && batch_envelopes < kBatchMaxEnvelopes &&
         std::chrono::steady_clock::now() - batch_begun < kBatchMaxAge;
}

void Daemon::Impl::flush_received() {
  batch_pending = false;
  batch_envelopes = 0;
  if (store && store->in_batch()) {
    if (auto r = store->commit_batch(); !r) {
      ++counters.store_errors;
      spdlog::debug("{}", r.error().message);
    }
    watch_store();
  }
  if (deferred_sends.empty()) return;
  auto sends = std::move(deferred_sends);
  deferred_sends.clear();
  for (const auto& [peer, bytes] : sends) {
    const auto conn = peer_directory.connection_of(peer);
    if (!conn) continue;
    auto r =
        transport->send(*conn, {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
    if (!r) ++counters.sends_failed;
  }
}

void Daemon::Impl::apply_block_changes(const std::vector<trust::BlockChange>& changes, TimeMs now) {
  auto result = enforcement->apply(crowdsec_overlay(changes), now);
  for (const auto& e : result.errors) {
    ++counters.enforcer_refused;
    spdlog::warn("enforcement: {}", e.message);
  }
  for (const auto& c : changes) {
    // One line each up to kBlockLinesPerSecond a second; observe_second() summarises the rest.
    if (obs.block_line_tokens > 0) {
      --obs.block_line_tokens;
      spdlog::info("{} {} ({}, score {:.3f}, cause {}, until {})", to_string(c.kind),
                   c.prefix.to_string(), to_string(c.direction), c.score, to_string(c.cause),
                   c.expires_at);
    } else {
      ++obs.block_lines_summarised;
    }
    record_event(change_json(c));
    if (c.kind == trust::BlockChange::Kind::lift)
      unsaved_blocks[c.prefix.to_string()] = std::nullopt;
    else
      unsaved_blocks[c.prefix.to_string()] = stored_block(c);
  }
}

void Daemon::Impl::save_blocks() {
  if (unsaved_blocks.empty()) return;
  std::vector<StoredBlock> changed;
  std::vector<std::string> lifted;
  for (auto& [prefix, block] : unsaved_blocks) {
    if (block)
      changed.push_back(std::move(*block));
    else
      lifted.push_back(prefix);
  }
  unsaved_blocks.clear();
  if (auto r = store->update_blocks(changed, lifted); !r) {
    ++counters.store_errors;
    spdlog::debug("{}", r.error().message);
  }
}

// One log line when the store stops taking writes and one when it takes them again; the
// gauge meshd_store_writable and the counter meshd_store_errors_total follow every write.
void Daemon::Impl::watch_store() {
  const bool writable = store->writable();
  if (writable == store_writable) return;
  store_writable = writable;
  if (writable)
    spdlog::info("store {} takes writes again", store->path());
  else
    spdlog::error(
        "store {} does not take writes ({}): no claim is signed until it does; received "
        "claims are still enforced, but not recorded",
        store->path(), store->last_write_error());
  record_event(json{{"event", writable ? "store_writable" : "store_unwritable"},
                    {"path", store->path()},
                    {"error", store->last_write_error()},
                    {"at", wall_now_ms()}}
                   .dump());
}

void Daemon::Impl::schedule_tick(TimeMs deadline) {
  if (deadline == core::kNoDeadline || deadline >= tick_at) {
    if (deadline == core::kNoDeadline) return;
    if (tick_at != core::kNoDeadline && deadline >= tick_at) return;
  }
  tick_at = deadline;
  auto delay = std::max<TimeMs>(0, deadline - wall_now_ms());
  tick_timer.expires_after(std::chrono::milliseconds(delay));
  tick_timer.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping) return;
    tick_at = core::kNoDeadline;
    const TimeMs now = wall_now_ms();
    actions.clear();
    node->tick(now, actions);
    apply_actions(now);
  });
}

void Daemon::Impl::housekeeping() {
  if (stopping) return;
  const TimeMs now = wall_now_ms();
  for (auto& f : feeds)
    if (auto r = f->maybe_reload(now); r && *r) {
      spdlog::info("threat feed {} reloaded: {} entries", f->path(), f->stats().entries);
      for (const auto& e : f->last_errors()) spdlog::warn("threat feed: {}", e);
    }
  recheck_usage_evidence(now);
  if (fanout) fanout->expire(now);
  crowdsec_housekeeping(now);
  drain_sensor();  // backstop only: the ring buffer's fd wakes the loop for new events
  if (now - last_prune >= 60'000) {
    last_prune = now;
    if (auto r = enforcement->prune(); !r) {
      ++counters.enforcer_errors;
      spdlog::warn("pruning expired blocks: {}", r.error().message);
    }
    if (auto r = store->forget_expired(now); !r) {
      ++counters.store_errors;
      spdlog::warn("forgetting expired envelopes: {}", r.error().message);
    }
  }
  save_blocks();
  watch_store();
  observe_second(*this, now);
  if (now - ledger_saved_at >= 10'000) {
    ledger_saved_at = now;
    if (auto r = store->put_blob("ledger", node->ledger().serialize()); !r) {
      ++counters.store_errors;
      spdlog::warn("saving the trust ledger: {}", r.error().message);
    }
    // A burst leaves freed send-queue frames and decode buffers scattered between long-lived
    // envelopes; glibc keeps those pages unless asked. Returning them costs a heap walk
    // (milliseconds) every 10 s, and keeps RSS close to what the node actually holds.
    ::malloc_trim(0);
  }
  // Backstop: a tick whose timer was lost (the node's deadline includes the engine's).
  if (node->next_deadline() <= now) {
    actions.clear();
    node->tick(now, actions);
    apply_actions(now);
  }
  housekeeping_timer.expires_after(std::chrono::seconds(1));
  housekeeping_timer.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) housekeeping();
  });
}

sensor::EventSource* Daemon::Impl::event_source() {
  if (injected_events) return injected_events.get();
  return enforcement ? enforcement->events() : nullptr;
}

// Once per usage bucket (from housekeeping): the buckets that left the window are dropped, and
// the claims on every destination whose usage moved since the last round (new flows, or flows
// leaving the window) are checked against the evidence again. A claim on what is now strongly
// used costs its origin trust (the engine's contradiction path, once per claim), and the
// targets are re-decided either way. The work per round follows the number of destinations
// that moved, never the number of flows: at most UsageStats::kMaxChanged of them, past which
// one recheck of every target replaces them.
void Daemon::Impl::recheck_usage_evidence(TimeMs now) {
  const std::int64_t bucket = usage_stats.bucket_of(now);
  if (bucket <= usage_bucket) return;
  usage_bucket = bucket;
  usage_stats.expire(now);
  auto changed = usage_stats.take_changed();
  if (!changed.overflow && changed.destinations.empty()) return;
  const auto& es = node->engine_stats();
  const std::uint64_t contradictions = es.contradictions;
  actions.clear();
  ++counters.usage_recheck_rounds;
  if (changed.overflow) {
    ++counters.usage_full_rechecks;
    node->recheck_usage(now, actions);
  } else {
    counters.usage_rechecked_destinations += changed.destinations.size();
    for (const auto& d : changed.destinations) node->on_usage_changed(d, now, actions);
  }
  const std::uint64_t contradicted = node->engine_stats().contradictions - contradictions;
  const std::size_t changes = actions.blocks.size();
  if (contradicted > 0 || changes > 0) {
    spdlog::info("usage re-check: {} destinations{}, {} claims contradicted, {} block changes",
                 changed.destinations.size(), changed.overflow ? " (all targets)" : "",
                 contradicted, changes);
    record_event(json{
        {"event", "usage_recheck"},
        {"destinations", changed.destinations.size()},
        {"all_targets", changed.overflow},
        {"contradicted", contradicted},
        {"changes", changes},
        {"at", now}}.dump());
  }
  apply_actions(now);
}

void Daemon::Impl::reload() {
  const TimeMs now = wall_now_ms();
  auto fresh = load_config_file(config_path);
  if (!fresh) {
    ++counters.reload_failures;
    spdlog::error("SIGHUP: config not reloaded: {}", fresh.error().message);
    return;
  }
  actions.clear();
  if (auto r = node->set_params(fresh->policy, now, actions); !r) {
    ++counters.reload_failures;
    spdlog::error("SIGHUP: policy not reloaded: {}", r.error().message);
    return;
  }
  config.policy = fresh->policy;
  config.protected_prefixes = fresh->protected_prefixes;
  params = fresh->policy;
  config_protected = node_protected_prefixes(config);  // own addresses, gateway, DNS again
  refresh_protected(now);
  const std::size_t changes = actions.blocks.size();
  apply_actions(now);
  ++counters.reloads;
  spdlog::info("SIGHUP: policy and protected prefixes reloaded ({} block changes)", changes);
  record_event(json{{"event", "reloaded"}, {"changes", changes}, {"at", now}}.dump());
}

// Config-derived protected prefixes plus the address of every fleet peer seen (I1: a
// compromised node must not get the mesh's own members blocked), to the engine and, as
// defence in depth, to the enforcer. The block changes (lifts) it causes go to `actions`.
void Daemon::Impl::refresh_protected(TimeMs now) {
  auto prot = config_protected;
  for (const auto& [prefix, node_id] : peer_addresses)
    prot.push_back({prefix, "fleet peer " + node_id, false});
  enforcement->set_protected(prot);
  node->set_protected(std::move(prot), now, actions);
}

void Daemon::Impl::protect_peer_address(net::PeerId id, const std::string& node_id, TimeMs now) {
  for (const auto& p : transport->peers()) {
    if (p.id != id) continue;
    auto addr = p.remote.address();
    if (addr.is_v6() && addr.to_v6().is_v4_mapped())
      addr = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, addr.to_v6());
    auto prefix = Prefix::parse(addr.to_string());
    if (!prefix || !peer_addresses.emplace(*prefix, node_id).second) return;
    spdlog::info("protecting fleet peer {} at {}", node_id, prefix->to_string());
    refresh_protected(now);  // on_peer_up applies the actions
    return;
  }
}

void Daemon::Impl::shutdown() {
  if (stopping) return;
  flush_received();  // the last burst's envelopes and relays
  stopping = true;
  const TimeMs now = wall_now_ms();
  if (auto r = store->put_blob("ledger", node->ledger().serialize()); !r) {
    ++counters.store_errors;
    spdlog::error("saving the trust ledger at shutdown: {} (restart starts from the last save)",
                  r.error().message);
  }
  save_blocks();
  tick_timer.cancel();
  housekeeping_timer.cancel();
  sensor_timer.cancel();
  signals.cancel();
  if (sensor_fd) sensor_fd->close();
  if (control) control->stop();
  http.reset();
  if (falco) falco->stop();
  if (crowdsec) {
    crowdsec->timer.cancel();
    crowdsec->client.stop();
  }
  if (transport) transport->stop();
  (void)now;
  io.stop();
}

void Daemon::Impl::record_event(const std::string& line) {
  events.push(line);
  ++obs.events_total;
  for (auto& [id, sink] : subscribers) sink(line);
}

// ---- Daemon ----

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->self = this;
}
Daemon::~Daemon() = default;

Result<std::unique_ptr<Daemon>> Daemon::create(AppConfig config, std::string config_path) {
  return create(std::move(config), std::move(config_path), nullptr);
}

Result<std::unique_ptr<Daemon>> Daemon::create(AppConfig config, std::string config_path,
                                               std::unique_ptr<sensor::EventSource> events) {
  auto impl = std::make_unique<Impl>();
  impl->injected_events = std::move(events);
  impl->config = std::move(config);
  impl->config_path = std::move(config_path);
  std::unique_ptr<Daemon> d(new Daemon(std::move(impl)));
  if (auto r = d->impl_->start(); !r) return std::unexpected(r.error());
  return d;
}

int Daemon::run() {
  impl_->io.run();
  spdlog::info("meshd stopped");
  return 0;
}

v1::ControlResponse Daemon::handle(const v1::ControlRequest& request) {
  return impl_->handle(request);
}

std::uint64_t Daemon::subscribe_events(EventSink sink) {
  auto id = impl_->next_subscriber++;
  impl_->subscribers.emplace(id, std::move(sink));
  return id;
}
void Daemon::unsubscribe_events(std::uint64_t id) {
  impl_->subscribers.erase(id);
}

std::deque<std::string> Daemon::recent_events(std::size_t limit) const {
  const auto& e = impl_->events;
  const auto n = std::min(limit, e.size());
  std::deque<std::string> out;
  for (std::size_t i = e.size() - n; i < e.size(); ++i) out.emplace_back(e[i]);
  return out;
}

std::string Daemon::metrics_text() const {
  return impl_->metrics_text();
}
std::string Daemon::unready_reason() const {
  if (impl_->stopping) return "stopping";
  if (impl_->node == nullptr) return "starting";
  if (impl_->enforcement) return impl_->enforcement->not_enforcing();
  return {};
}

}  // namespace meshd::app
