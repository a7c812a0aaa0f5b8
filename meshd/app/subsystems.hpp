// The daemon's subsystems, each built from the config by one factory that returns the ready
// subsystem or an error naming what is wrong (a start-up error). Daemon::Impl::start() is the
// list of these calls, in dependency order.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "meshd/app/config.hpp"
#include "meshd/app/opener.hpp"
#include "meshd/app/store.hpp"
#include "meshd/common/asio.hpp"
#include "meshd/common/result.hpp"
#include "meshd/core/node.hpp"
#include "meshd/net/transport.hpp"
#include "proto/crypto.hpp"
#include "proto/wire.pb.h"
#include "sensor/detectors/fanout.hpp"
#include "sensor/detectors/threat_feed.hpp"
#include "trust/engine.hpp"

namespace meshd::app {

// Moves a factory's product into its owner, or passes the factory's error on:
//   if (auto r = assign(store, Store::open(dir)); !r) return r;
template <class Owner, class Product>
Result<void> assign(Owner& owner, Result<Product> made) {
  if (!made) return std::unexpected(made.error());
  owner = std::move(*made);
  return {};
}

// `policy` from the config; `ctx` names this node, its protected prefixes and its usage source.
Result<std::unique_ptr<trust::Engine>> make_engine(const trust::Params& policy,
                                                   trust::LocalContext ctx, TimeMs now);

// Checks envelopes against the fleet CA, the revoked serials and `params` (which it keeps a
// reference to: the daemon swaps its contents on SIGHUP). Knows this node's own cert.
Result<std::unique_ptr<ProductionOpener>> make_opener(const AppConfig& config,
                                                      const proto::PublicKey& ca,
                                                      const trust::Params& params,
                                                      const v1::SignedCert& own_cert, TimeMs now);

// The core's envelopes, read back from the store: the daemon persists every Persist action
// before its next call into the core, so the core keeps no envelope bytes in memory. A
// failed read is counted in `errors` and logged (the envelope is then not served).
class StoreArchive final : public core::EnvelopeArchive {
 public:
  StoreArchive(const Store& store, std::uint64_t& errors) : store_(store), errors_(errors) {}
  void load(std::string_view origin, std::span<const std::uint64_t> seqs,
            std::vector<core::Envelope>& out) override;

 private:
  const Store& store_;
  std::uint64_t& errors_;
  std::string origin_;                                       // reused: the query's text
  std::vector<std::pair<std::uint64_t, std::string>> rows_;  // reused
};

// The gossip core with the mesh.* limits; envelope bytes in `archive` when given.
Result<std::unique_ptr<core::Node>> make_node(const AppConfig& config, trust::Engine& engine,
                                              core::EventOpener& opener, core::Rng& rng,
                                              core::EnvelopeArchive* archive = nullptr);

// A seed from the OS for the core's randomness (anti-entropy jitter, proof delays).
std::unique_ptr<core::SplitMix64> make_rng();

// The peer transport: listening on mesh.listen (if set), dialing mesh.peers.
Result<std::unique_ptr<net::Transport>> make_transport(
    boost::asio::io_context& io, const AppConfig& config, const v1::SignedCert& own_cert,
    const proto::PublicKey& ca, net::TransportCallbacks callbacks, TimeMs now);

// Threat feeds of sensor.feeds. A feed that cannot be read yet is logged and kept: it is
// reloaded when the file appears.
std::vector<std::unique_ptr<sensor::ThreatFeed>> make_feeds(const AppConfig& config);
std::unique_ptr<sensor::FanoutDetector> make_fanout(const AppConfig& config);

}  // namespace meshd::app
