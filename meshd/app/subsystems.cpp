#include "meshd/app/subsystems.hpp"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <limits>
#include <unordered_set>

#include "meshd/app/http_server.hpp"
#include "meshd/common/numbers.hpp"
#include "proto/keys.hpp"

namespace meshd::app {
namespace {

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
  l.max_concurrent_dials = static_cast<std::size_t>(c.mesh.max_concurrent_dials);
  l.peer_exchange = c.mesh.peer_exchange;
  l.redirect_slots = static_cast<std::size_t>(c.mesh.redirect_slots);
  l.max_learned_addresses = static_cast<std::size_t>(c.mesh.max_learned_addresses);
  l.trim_surplus = c.mesh.trim_surplus;
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

}  // namespace

Result<std::unique_ptr<trust::Engine>> make_engine(const trust::Params& policy,
                                                   trust::LocalContext ctx, TimeMs now) {
  auto engine = trust::Engine::create(policy, std::move(ctx), now);
  if (!engine) return fail("bad_config", "policy: " + engine.error().message);
  return std::make_unique<trust::Engine>(std::move(*engine));
}

Result<std::unique_ptr<ProductionOpener>> make_opener(const AppConfig& config,
                                                      const proto::PublicKey& ca,
                                                      const trust::Params& params,
                                                      const v1::SignedCert& own_cert, TimeMs now) {
  auto revoked = revoked_serials(config);
  if (!revoked) return std::unexpected(revoked.error());
  auto opener = std::make_unique<ProductionOpener>(ca, params);
  opener->set_revoked_serials(std::move(*revoked));
  // load_identity() has verified the cert; it could only fail here if it expired since.
  if (auto learned = opener->learn_cert(own_cert, now); !learned)
    return fail("bad_identity", "node.cert: " + learned.error().message);
  return opener;
}

void StoreArchive::load(std::string_view origin, std::span<const std::uint64_t> seqs,
                        std::vector<core::Envelope>& out) {
  const std::size_t base = out.size();
  out.resize(base + seqs.size());
  if (seqs.empty()) return;
  origin_.assign(origin);
  rows_.clear();
  if (auto r = store_.load_range(origin_, seqs.front(), seqs.back(), rows_); !r) {
    ++errors_;
    spdlog::error("{}", r.error().message);
    return;
  }
  // Both ascending: one merge. A seq stored twice (not expected) gives its first row.
  std::size_t k = 0;
  for (auto& [seq, bytes] : rows_) {
    while (k < seqs.size() && seqs[k] < seq) ++k;
    if (k == seqs.size()) break;
    if (seqs[k] == seq && !out[base + k]) out[base + k] = core::make_envelope(std::move(bytes));
  }
}

Result<std::unique_ptr<core::Node>> make_node(const AppConfig& config, trust::Engine& engine,
                                              core::EventOpener& opener, core::Rng& rng,
                                              core::EnvelopeArchive* archive) {
  auto node = core::Node::create(core_config(config), engine, opener, rng, archive);
  if (!node) return fail("bad_config", "mesh: " + node.error().message);
  return std::make_unique<core::Node>(std::move(*node));
}

std::unique_ptr<core::SplitMix64> make_rng() {
  std::uint64_t seed;
  randombytes_buf(&seed, sizeof seed);
  return std::make_unique<core::SplitMix64>(seed);
}

Result<std::unique_ptr<net::Transport>> make_transport(
    boost::asio::io_context& io, const AppConfig& config, const v1::SignedCert& own_cert,
    const proto::PublicKey& ca, net::TransportCallbacks callbacks, TimeMs now) {
  auto revoked = revoked_serials(config);
  if (!revoked) return std::unexpected(revoked.error());
  auto key = proto::load_secret_key(config.node.key);  // the transport owns its own copy
  if (!key) return fail(key.error().code, "node.key: " + key.error().message);
  auto identity = net::make_identity(std::move(*key), own_cert, ca, now);
  if (!identity) return fail(identity.error().code, "node.cert: " + identity.error().message);
  const std::string node_id = identity->node_cert.node_id();
  const std::string domain = identity->node_cert.failure_domain();
  auto transport = std::make_unique<net::Transport>(io, std::move(*identity),
                                                    transport_limits(config), std::move(callbacks));
  transport->set_revoked_serials(*revoked);
  if (!config.mesh.listen.empty()) {
    auto hp = split_host_port(config.mesh.listen);
    if (!hp) return fail("bad_config", "mesh.listen: " + hp.error().message);
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
  return transport;
}

std::vector<std::unique_ptr<sensor::ThreatFeed>> make_feeds(const AppConfig& config) {
  std::vector<std::unique_ptr<sensor::ThreatFeed>> feeds;
  for (const auto& path : config.sensor.feeds) {
    sensor::FeedOptions fo;
    fo.name = std::filesystem::path(path).stem().string();
    fo.confidence = config.sensor.feed_confidence;
    auto feed = std::make_unique<sensor::ThreatFeed>(path, fo);
    if (auto r = feed->load(); !r) spdlog::warn("threat feed: {}", r.error().message);
    for (const auto& e : feed->last_errors()) spdlog::warn("threat feed: {}", e);
    feeds.push_back(std::move(feed));
  }
  return feeds;
}

std::unique_ptr<sensor::FanoutDetector> make_fanout(const AppConfig& config) {
  sensor::FanoutConfig fc;
  fc.max_destinations = static_cast<std::size_t>(config.sensor.fanout_destinations);
  fc.max_ports = static_cast<std::size_t>(config.sensor.fanout_ports);
  fc.window_ms = config.sensor.fanout_window_ms;
  fc.bad_ports.assign(config.sensor.bad_ports.begin(), config.sensor.bad_ports.end());
  return std::make_unique<sensor::FanoutDetector>(fc);
}

}  // namespace meshd::app
