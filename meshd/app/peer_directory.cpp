#include "meshd/app/peer_directory.hpp"

namespace meshd::app {

core::PeerId PeerDirectory::connected(net::PeerId conn, const std::string& node_id) {
  auto [it, fresh] = core_of_node_.try_emplace(node_id, next_core_id_);
  if (fresh) ++next_core_id_;
  const core::PeerId peer = it->second;
  core_of_conn_[conn] = peer;
  conn_of_core_[peer] = conn;
  node_of_core_[peer] = node_id;
  return peer;
}

std::optional<core::PeerId> PeerDirectory::disconnected(net::PeerId conn) {
  auto it = core_of_conn_.find(conn);
  if (it == core_of_conn_.end()) return std::nullopt;
  const core::PeerId peer = it->second;
  core_of_conn_.erase(it);
  auto live = conn_of_core_.find(peer);
  if (live == conn_of_core_.end() || live->second != conn) return std::nullopt;
  conn_of_core_.erase(live);
  return peer;
}

std::optional<core::PeerId> PeerDirectory::core_of(net::PeerId conn) const {
  auto it = core_of_conn_.find(conn);
  if (it == core_of_conn_.end()) return std::nullopt;
  return it->second;
}

std::optional<core::PeerId> PeerDirectory::core_of_node(const std::string& node_id) const {
  auto it = core_of_node_.find(node_id);
  if (it == core_of_node_.end()) return std::nullopt;
  return it->second;
}

std::optional<net::PeerId> PeerDirectory::connection_of(core::PeerId peer) const {
  auto it = conn_of_core_.find(peer);
  if (it == conn_of_core_.end()) return std::nullopt;
  return it->second;
}

const std::string& PeerDirectory::node_of(core::PeerId peer) const {
  static const std::string unknown;
  auto it = node_of_core_.find(peer);
  return it == node_of_core_.end() ? unknown : it->second;
}

}  // namespace meshd::app
