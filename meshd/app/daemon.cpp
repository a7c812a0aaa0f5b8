#include "meshd/app/daemon.hpp"

#include <malloc.h>
#include <sodium.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>

#include "meshd/app/daemon_impl.hpp"
#include "meshd/app/frames.hpp"
#include "meshd/app/ui_api.hpp"
#include "meshd/common/numbers.hpp"
#include "proto/cert.hpp"
#include "proto/keys.hpp"
#include "sensor/bpf_ringbuf.hpp"

namespace meshd::app {

using nlohmann::json;

namespace {

constexpr std::size_t kEventLogSize = 2000;

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
  auto transport_key = proto::load_secret_key(n.key);  // the transport owns its own copy
  if (!transport_key)
    return fail(transport_key.error().code, "node.key: " + transport_key.error().message);
  auto identity = net::make_identity(std::move(*transport_key), *cert, *ca, now);
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

core::Config core_config(const AppConfig& c) {
  core::Config cc;
  cc.target_degree = static_cast<std::size_t>(c.mesh.target_peers);
  cc.max_peers = static_cast<std::size_t>(c.mesh.max_peers);
  cc.peer_rate_per_s = c.mesh.peer_rate_frames_per_s;
  cc.peer_burst = c.mesh.peer_rate_frames_per_s * 4;
  cc.origin_rate_per_min = c.mesh.origin_rate_per_min;
  cc.origin_burst = c.mesh.origin_burst;
  cc.claim_ttl_cap_ms = c.policy.ttl_max_ms;
  return cc;
}

net::TransportLimits transport_limits(const AppConfig& c) {
  net::TransportLimits l;
  l.handshake_timeout = std::chrono::milliseconds(c.mesh.handshake_timeout_ms);
  l.idle_timeout = std::chrono::milliseconds(c.mesh.idle_timeout_ms);
  l.max_peers = static_cast<std::size_t>(c.mesh.max_peers);
  l.target_peers = static_cast<std::size_t>(c.mesh.target_peers);
  l.max_frame_size = static_cast<std::size_t>(c.mesh.max_frame_bytes);
  l.dns_refresh = std::chrono::milliseconds(c.mesh.dns_refresh_ms);
  return l;
}

// validate() has checked every serial; a config built in code gets the same error here.
Result<std::unordered_set<std::uint64_t>> revoked_serials(const AppConfig& c) {
  std::unordered_set<std::uint64_t> out;
  for (const auto& s : c.mesh.revoked_serials) {
    auto n = parse_integer<std::uint64_t>(s, 0, std::numeric_limits<std::uint64_t>::max());
    if (!n) return fail("bad_config", "mesh.revoked_serials: " + n.error().message);
    out.insert(*n);
  }
  return out;
}

std::string change_json(const trust::BlockChange& c) {
  return json{{"event", std::string("block_") + std::string(to_string(c.kind))},
              {"prefix", c.prefix.to_string()},
              {"direction", std::string(to_string(c.direction))},
              {"expires_at", c.expires_at},
              {"score", c.score},
              {"cause", std::string(to_string(c.cause))},
              {"at", wall_now_ms()}}
      .dump();
}

}  // namespace

Result<void> Daemon::Impl::start() {
  const TimeMs now = wall_now_ms();
  started_at = now;
  if (auto r = load_identity(*this, now); !r) return r;
  auto st = Store::open(config.node.data_dir);
  if (!st) return std::unexpected(st.error());
  store.emplace(std::move(*st));

  params = config.policy;
  usage = std::make_unique<UsageAdapter>(usage_stats);
  config_protected = node_protected_prefixes(config);
  trust::LocalContext ctx{trust::Origin{node_id, domain}, config_protected, usage.get()};
  auto engine_or = trust::Engine::create(params, std::move(ctx), now);
  if (!engine_or) return fail("bad_config", "policy: " + engine_or.error().message);
  engine = std::make_unique<trust::Engine>(std::move(*engine_or));

  auto revoked = revoked_serials(config);
  if (!revoked) return std::unexpected(revoked.error());
  opener = std::make_unique<ProductionOpener>(ca, params);
  opener->set_revoked_serials(*revoked);
  (void)opener->learn_cert(cert, now);
  std::uint64_t seed;
  randombytes_buf(&seed, sizeof seed);
  rng = std::make_unique<core::SplitMix64>(seed);
  try {
    node = std::make_unique<core::Node>(core_config(config), *engine, *opener, *rng);
  } catch (const std::exception& e) {
    return fail("bad_config", std::string("mesh: ") + e.what());
  }

  // Durable state first: the trust ledger, then every stored envelope.
  if (auto blob = store->get_blob("ledger"); blob && *blob) {
    auto ledger = trust::TrustLedger::deserialize(**blob, params);
    if (ledger)
      (void)engine->restore_ledger(std::move(*ledger), now);
    else
      spdlog::warn("stored trust ledger unreadable, starting from priors: {}",
                   ledger.error().message);
  }
  auto stored = store->load_envelopes();
  if (!stored) return std::unexpected(stored.error());
  std::vector<core::Envelope> envs;
  envs.reserve(stored->size());
  for (auto& e : *stored) envs.push_back(core::make_envelope(std::move(e.bytes)));
  actions.clear();
  node->restore(envs, now, actions);
  spdlog::info("restored {} envelopes from {}", envs.size(), store->path());

  auto enf = Enforcement::create(config);
  if (!enf) return std::unexpected(enf.error());
  enforcement = std::move(*enf);
  auto rec = enforcement->reconcile(engine->enforced(), now);
  for (const auto& e : rec.errors) spdlog::warn("reconcile: {}", e.message);
  spdlog::info("reconciled enforcement: {} installed, {} stale removed", rec.applied, rec.removed);
  actions.blocks.clear();  // reconcile covered what restore() enforced
  {
    std::vector<StoredBlock> rows;  // the table restarts from what is enforced now
    for (const auto& b : engine->enforced()) rows.push_back(stored_block(b));
    if (auto r = store->replace_blocks(rows); !r) return std::unexpected(r.error());
  }
  apply_actions(now);

  // Peers.
  net::TransportCallbacks cb;
  cb.on_peer_up = [this](net::PeerId id, const v1::NodeCert& c) { on_peer_up(id, c); };
  cb.on_frame = [this](net::PeerId id, std::span<const std::uint8_t> p) { on_frame(id, p); };
  cb.on_peer_down = [this](net::PeerId id, std::string_view why) { on_peer_down(id, why); };
  auto identity = net::make_identity(*proto::load_secret_key(config.node.key), cert, ca, now);
  transport = std::make_unique<net::Transport>(io, std::move(*identity), transport_limits(config),
                                               std::move(cb));
  transport->set_revoked_serials(*revoked);
  if (!config.mesh.listen.empty()) {
    auto hp = split_host_port(config.mesh.listen);
    boost::system::error_code ec;
    auto addr = boost::asio::ip::make_address(hp->first, ec);
    if (ec) return fail("bad_config", "mesh.listen: '" + hp->first + "' is not an IP address");
    auto bound = transport->listen({addr, hp->second});
    if (!bound) return std::unexpected(bound.error());
    spdlog::info("node {} (domain {}) listening for peers on {}:{}", node_id, domain,
                 bound->address().to_string(), bound->port());
  }
  for (const auto& seed : config.mesh.peers)
    if (auto r = transport->add_seed(seed); !r)
      return fail("bad_config", "mesh.peers: " + r.error().message);

  // Operators.
  ControlHooks hooks;
  hooks.handle = [this](const v1::ControlRequest& r) { return handle(r); };
  hooks.subscribe = [this](std::function<void(const std::string&)> sink) {
    return self->subscribe_events(std::move(sink));
  };
  hooks.unsubscribe = [this](std::uint64_t id) { self->unsubscribe_events(id); };
  auto ctl = ControlServer::create(io, config.control_socket, std::move(hooks));
  if (!ctl) return std::unexpected(ctl.error());
  control = std::move(*ctl);
  if (!config.metrics_listen.empty()) {
    auto routes = make_http_routes(*this);  // /metrics, /healthz, /ui (ui_api.cpp)
    if (!routes) return std::unexpected(routes.error());
    auto h = HttpServer::create(io, config.metrics_listen, std::move(*routes));
    if (!h) return std::unexpected(h.error());
    http = std::move(*h);
  }
  if (!config.sensor.falco_listen.empty())
    if (auto r = start_falco(); !r) return r;
  if (!config.sensor.crowdsec.url.empty())
    if (auto r = start_crowdsec(); !r) return r;

  // Sensor and detectors.
  for (const auto& path : config.sensor.feeds) {
    sensor::FeedOptions fo;
    fo.name = std::filesystem::path(path).stem().string();
    fo.confidence = config.sensor.feed_confidence;
    auto feed = std::make_unique<sensor::ThreatFeed>(path, fo);
    if (auto r = feed->load(); !r) spdlog::warn("threat feed: {}", r.error().message);
    for (const auto& e : feed->last_errors()) spdlog::warn("threat feed: {}", e);
    feeds.push_back(std::move(feed));
  }
  sensor::FanoutConfig fc;
  fc.max_destinations = static_cast<std::size_t>(config.sensor.fanout_destinations);
  fc.max_ports = static_cast<std::size_t>(config.sensor.fanout_ports);
  fc.window_ms = config.sensor.fanout_window_ms;
  fc.bad_ports.assign(config.sensor.bad_ports.begin(), config.sensor.bad_ports.end());
  fanout = std::make_unique<sensor::FanoutDetector>(fc);
  if (auto* src = enforcement->events()) {
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

  signals.add(SIGTERM);
  signals.add(SIGINT);
  signals.add(SIGHUP);
  signals.async_wait(
      [this](const boost::system::error_code& ec, int sig) { on_signal_received(ec, sig); });
  housekeeping();
  record_event(json{
      {"event", "started"},
      {"node", node_id},
      {"backend", std::string(enforcement->backend())},
      {"at", now}}.dump());
  return {};
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
  auto [it, fresh] = core_id_of_node.try_emplace(c.node_id(), next_core_id);
  if (fresh) ++next_core_id;
  core::PeerId cid = it->second;
  core_of_net[id] = cid;
  net_of_core[cid] = id;
  node_of_core[cid] = c.node_id();
  engine->register_origin(c.node_id(), c.failure_domain(), now);
  protect_peer_address(id, c.node_id(), now);
  spdlog::info("peer up: {} (domain {})", c.node_id(), c.failure_domain());
  record_event(json{
      {"event", "peer_up"},
      {"peer", c.node_id()},
      {"domain", c.failure_domain()},
      {"at", now}}.dump());
  actions.clear();
  node->on_peer_up(cid, now, actions);
  apply_actions(now);
}

void Daemon::Impl::on_frame(net::PeerId id, std::span<const std::uint8_t> payload) {
  auto it = core_of_net.find(id);
  if (it == core_of_net.end()) return;
  const TimeMs now = wall_now_ms();
  auto msg = decode_message(payload);
  if (!msg) {
    ++counters.frames_malformed;
    spdlog::debug("malformed frame from {}: {}", node_of_core[it->second], msg.error().message);
    // The core scores malformed input: hand it an empty push (a malformed message).
    msg = core::Message{core::Push{core::make_envelope(std::string())}};
  }
  actions.clear();
  node->on_message(it->second, *msg, now, actions);
  apply_actions(now);
}

void Daemon::Impl::on_peer_down(net::PeerId id, std::string_view reason) {
  auto it = core_of_net.find(id);
  if (it == core_of_net.end()) return;
  const TimeMs now = wall_now_ms();
  core::PeerId cid = it->second;
  core_of_net.erase(it);
  auto n = net_of_core.find(cid);
  // A replaced duplicate connection: the node is still up on its other connection.
  if (n == net_of_core.end() || n->second != id) return;
  net_of_core.erase(n);
  if (reason.find("overflow") != std::string_view::npos)
    spdlog::warn("peer down: {} ({})", node_of_core[cid], reason);
  else
    spdlog::info("peer down: {} ({})", node_of_core[cid], reason);
  record_event(json{
      {"event", "peer_down"},
      {"peer", node_of_core[cid]},
      {"reason", std::string(reason)},
      {"at", now}}.dump());
  actions.clear();
  node->on_peer_down(cid, now, actions);
  apply_actions(now);
}

void Daemon::Impl::apply_actions(TimeMs now) {
  // Sends first: gossip latency is the product.
  for (const auto& s : actions.sends) {
    auto n = net_of_core.find(s.peer);
    if (n == net_of_core.end()) continue;
    std::string bytes = encode_message(s.message);
    auto r = transport->send(n->second,
                             {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
    if (!r) ++counters.sends_failed;
  }
  if (!actions.blocks.empty()) apply_block_changes(actions.blocks, now);
  if (!actions.persist.empty()) {
    std::vector<StoredEnvelope> rows;
    rows.reserve(actions.persist.size());
    for (const auto& p : actions.persist)
      rows.push_back(
          {p.id, p.origin, p.seq, static_cast<int>(p.kind), *p.envelope, now, p.expires_at});
    if (auto r = store->put_envelopes(rows); !r) {
      ++counters.store_errors;
      spdlog::error("{}", r.error().message);
    }
  }
  for (const auto& d : actions.disconnects) {
    auto n = net_of_core.find(d.peer);
    spdlog::warn("disconnecting peer {}: {}", node_of_core[d.peer], d.reason);
    record_event(json{
        {"event", "peer_banned"},
        {"peer", node_of_core[d.peer]},
        {"reason", d.reason},
        {"ban_until", d.ban_until},
        {"at", now}}.dump());
    if (n != net_of_core.end())
      transport->disconnect(n->second, d.reason,
                            std::chrono::milliseconds(std::max<TimeMs>(0, d.ban_until - now)));
  }
  auto proofs = std::move(actions.proofs);
  auto deadline = actions.next_deadline;
  actions.proofs.clear();
  observe_actions(*this, actions, now);  // before publish_proof reuses `actions`
  for (const auto& p : proofs) publish_proof(p, now);
  schedule_tick(deadline);
}

void Daemon::Impl::apply_block_changes(const std::vector<trust::BlockChange>& changes, TimeMs now) {
  auto result = enforcement->apply(crowdsec_overlay(changes), now);
  for (const auto& e : result.errors) {
    ++counters.enforcer_refused;
    spdlog::warn("enforcement: {}", e.message);
  }
  for (const auto& c : changes) {
    spdlog::info("{} {} ({}, score {:.3f}, cause {}, until {})", to_string(c.kind),
                 c.prefix.to_string(), to_string(c.direction), c.score, to_string(c.cause),
                 c.expires_at);
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
    spdlog::error("{}", r.error().message);
  }
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
  usage_stats.expire(now);
  if (fanout) fanout->expire(now);
  crowdsec_housekeeping(now);
  drain_sensor();  // backstop only: the ring buffer's fd wakes the loop for new events
  if (now - last_prune >= 60'000) {
    last_prune = now;
    enforcement->prune();
    if (auto r = store->forget_expired(now); !r) ++counters.store_errors;
  }
  save_blocks();
  observe_second(*this, now);
  if (now - ledger_saved_at >= 10'000) {
    ledger_saved_at = now;
    if (auto r = store->put_blob("ledger", engine->ledger().serialize()); !r)
      ++counters.store_errors;
    // A burst leaves freed send-queue frames and decode buffers scattered between long-lived
    // envelopes; glibc keeps those pages unless asked. Returning them costs a heap walk
    // (milliseconds) every 10 s, and keeps RSS close to what the node actually holds.
    ::malloc_trim(0);
  }
  // The engine may have work (expiry) even when the core scheduled nothing sooner.
  if (auto d = engine->next_deadline(); d && *d <= now) {
    actions.clear();
    node->tick(now, actions);
    apply_actions(now);
  }
  housekeeping_timer.expires_after(std::chrono::seconds(1));
  housekeeping_timer.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) housekeeping();
  });
}

void Daemon::Impl::reload() {
  const TimeMs now = wall_now_ms();
  auto fresh = load_config_file(config_path);
  if (!fresh) {
    ++counters.reload_failures;
    spdlog::error("SIGHUP: config not reloaded: {}", fresh.error().message);
    return;
  }
  auto changes = engine->set_params(fresh->policy, now);
  if (!changes) {
    ++counters.reload_failures;
    spdlog::error("SIGHUP: policy not reloaded: {}", changes.error().message);
    return;
  }
  config.policy = fresh->policy;
  config.protected_prefixes = fresh->protected_prefixes;
  params = fresh->policy;
  config_protected = node_protected_prefixes(config);  // own addresses, gateway, DNS again
  auto more = refresh_protected(now);
  changes->insert(changes->end(), more.begin(), more.end());
  if (!changes->empty()) apply_block_changes(*changes, now);
  ++counters.reloads;
  spdlog::info("SIGHUP: policy and protected prefixes reloaded ({} block changes)",
               changes->size());
  record_event(json{{"event", "reloaded"}, {"changes", changes->size()}, {"at", now}}.dump());
}

// Config-derived protected prefixes plus the address of every fleet peer seen (I1: a
// compromised node must not get the mesh's own members blocked), to the engine and, as
// defence in depth, to the enforcer. Returns the block changes (lifts) it causes.
std::vector<trust::BlockChange> Daemon::Impl::refresh_protected(TimeMs now) {
  auto prot = config_protected;
  for (const auto& [prefix, node_id] : peer_addresses)
    prot.push_back({prefix, "fleet peer " + node_id, false});
  auto changes = engine->set_protected(prot, now);
  enforcement->set_protected(prot);
  return changes;
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
    auto changes = refresh_protected(now);
    if (!changes.empty()) apply_block_changes(changes, now);
    return;
  }
}

void Daemon::Impl::shutdown() {
  if (stopping) return;
  stopping = true;
  const TimeMs now = wall_now_ms();
  (void)store->put_blob("ledger", engine->ledger().serialize());
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
  events.push_back(line);
  ++obs.events_total;
  if (events.size() > kEventLogSize) events.pop_front();
  for (auto& [id, sink] : subscribers) sink(line);
}

// ---- Daemon ----

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->self = this;
}
Daemon::~Daemon() = default;

Result<std::unique_ptr<Daemon>> Daemon::create(AppConfig config, std::string config_path) {
  auto impl = std::make_unique<Impl>();
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
  auto n = std::min(limit, e.size());
  return std::deque<std::string>(e.end() - static_cast<std::ptrdiff_t>(n), e.end());
}

std::string Daemon::metrics_text() const {
  return impl_->metrics_text();
}
bool Daemon::healthy() const {
  return !impl_->stopping && impl_->engine != nullptr;
}

}  // namespace meshd::app
