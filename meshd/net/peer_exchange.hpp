// Peer exchange (wire: meshd.v1.PeerExchange, version 1), without I/O.
//
// Two uses, both transport level (the daemon never sees these frames):
//   * after a handshake each side sends, sealed, the peer addresses it is connected to and its
//     own listen port, so a fleet learns live addresses from each other instead of only from
//     seeds and DNS (which lists pods that are not up yet, and lags pods that are);
//   * a node at max_peers answers a dialer that proved its identity (Hello + HelloAuth
//     verified) with redirect = true in place of its own HelloAuth, and closes: the dialer
//     dials the listed peers next instead of retrying a full node.
// Sent only to peers whose Hello advertises feature_peer_exchange (handshake.hpp) (older nodes
// would take the frame for garbage). Received addresses are hints: each is dialed and must pass the
// certified handshake like any seed. decode() keeps at most kMaxPeerExchangeAddresses well-formed,
// distinct, dialable (unicast, port 1..65535) addresses and drops the rest.
#pragma once

#include "meshd/common/asio.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include "meshd/common/result.hpp"
#include "proto/wire.pb.h"

namespace meshd::net {

constexpr std::uint32_t kPeerExchangeVersion = 1;
constexpr std::size_t kMaxPeerExchangeAddresses = 32;
constexpr std::size_t kMaxPeerExchangeNodeId = 256;

struct PexAddress {
  boost::asio::ip::tcp::endpoint endpoint;
  std::string node_id;  // hint ("" = unknown)
  bool operator==(const PexAddress&) const = default;
};

struct PeerExchange {
  std::vector<PexAddress> peers;
  bool redirect = false;
  std::uint16_t listen_port = 0;
  // Entries decode() dropped (malformed, undialable, duplicate or beyond the limit).
  std::size_t dropped = 0;
};

// Errors: `pex_version` (a version this node does not speak: ignore the frame),
// `pex_malformed` (listen_port out of range).
Result<PeerExchange> decode_peer_exchange(const v1::PeerExchange& msg);
// The Frame carrying `pex` (version 1; at most kMaxPeerExchangeAddresses peers are written).
v1::Frame encode_peer_exchange(const PeerExchange& pex);
// An address worth dialing: unicast, not unspecified, port != 0 (IPv4-mapped IPv6 included).
bool dialable(const boost::asio::ip::tcp::endpoint& endpoint);

}  // namespace meshd::net
