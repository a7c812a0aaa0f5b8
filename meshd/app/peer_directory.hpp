// Who is who among the daemon's peers: the transport names a connection (net::PeerId, new
// for every connection), the core names a remote node (core::PeerId, stable per node id for
// the daemon's lifetime, because the core keeps ban state under it), operators name it by its
// certificate's node id. One class keeps the three in step.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>

#include "meshd/core/messages.hpp"
#include "meshd/net/transport.hpp"

namespace meshd::app {

class PeerDirectory {
 public:
  // A connection of `node_id` is up: returns the node's core id (assigned at first sight).
  // A second connection of the same node replaces the first as its live one.
  core::PeerId connected(net::PeerId conn, const std::string& node_id);
  // The connection is gone. Returns the node's core id if it was the node's live connection;
  // nullopt for an unknown connection or a replaced duplicate (the node is still up).
  std::optional<core::PeerId> disconnected(net::PeerId conn);

  std::optional<core::PeerId> core_of(net::PeerId conn) const;
  std::optional<core::PeerId> core_of_node(const std::string& node_id) const;
  std::optional<net::PeerId> connection_of(core::PeerId peer) const;
  // The node id behind a core id; "" if it never connected.
  const std::string& node_of(core::PeerId peer) const;

  // Calls f(core id, node id) for every node with a live connection.
  template <class F>
  void for_each_connected(F&& f) const {
    for (const auto& [peer, conn] : conn_of_core_) f(peer, node_of(peer));
  }

 private:
  std::unordered_map<std::string, core::PeerId> core_of_node_;
  std::unordered_map<net::PeerId, core::PeerId> core_of_conn_;
  std::unordered_map<core::PeerId, net::PeerId> conn_of_core_;
  std::unordered_map<core::PeerId, std::string> node_of_core_;
  core::PeerId next_core_id_ = 1;
};

}  // namespace meshd::app
