#include "meshd/net/peer_exchange.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace meshd::net {

namespace ip = boost::asio::ip;

bool dialable(const ip::tcp::endpoint& endpoint) {
  if (endpoint.port() == 0) return false;
  ip::address a = endpoint.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped()) a = ip::make_address_v4(ip::v4_mapped, a.to_v6());
  if (a.is_unspecified() || a.is_multicast()) return false;
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255) return false;  // broadcast
  }
  return true;
}

Result<PeerExchange> decode_peer_exchange(const v1::PeerExchange& msg) {
  if (msg.version() != kPeerExchangeVersion)
    return fail("pex_version", "peer exchange version " + std::to_string(msg.version()) +
                                   " (this node speaks " + std::to_string(kPeerExchangeVersion) +
                                   ")");
  if (msg.listen_port() > 65535)
    return fail("pex_malformed",
                "peer exchange listen_port " + std::to_string(msg.listen_port()) + " > 65535");
  PeerExchange out;
  out.redirect = msg.redirect();
  out.listen_port = static_cast<std::uint16_t>(msg.listen_port());
  for (const auto& a : msg.peers()) {
    if (out.peers.size() == kMaxPeerExchangeAddresses) {
      ++out.dropped;
      continue;
    }
    ip::address addr;
    if (a.ip().size() == 4) {
      ip::address_v4::bytes_type b;
      std::memcpy(b.data(), a.ip().data(), 4);
      addr = ip::address_v4(b);
    } else if (a.ip().size() == 16) {
      ip::address_v6::bytes_type b;
      std::memcpy(b.data(), a.ip().data(), 16);
      addr = ip::address_v6(b);
    } else {
      ++out.dropped;
      continue;
    }
    if (a.port() == 0 || a.port() > 65535 || a.node_id().size() > kMaxPeerExchangeNodeId) {
      ++out.dropped;
      continue;
    }
    PexAddress p{ip::tcp::endpoint(addr, static_cast<std::uint16_t>(a.port())), a.node_id()};
    if (!dialable(p.endpoint) ||
        std::any_of(out.peers.begin(), out.peers.end(),
                    [&](const PexAddress& q) { return q.endpoint == p.endpoint; })) {
      ++out.dropped;
      continue;
    }
    out.peers.push_back(std::move(p));
  }
  return out;
}

v1::Frame encode_peer_exchange(const PeerExchange& pex) {
  v1::Frame frame;
  v1::PeerExchange* m = frame.mutable_peer_exchange();
  m->set_version(kPeerExchangeVersion);
  m->set_redirect(pex.redirect);
  m->set_listen_port(pex.listen_port);
  const std::size_t n = std::min(pex.peers.size(), kMaxPeerExchangeAddresses);
  for (std::size_t i = 0; i < n; ++i) {
    const PexAddress& p = pex.peers[i];
    auto* a = m->add_peers();
    const ip::address addr = p.endpoint.address();
    if (addr.is_v4()) {
      const auto b = addr.to_v4().to_bytes();
      a->set_ip(b.data(), b.size());
    } else {
      const auto b = addr.to_v6().to_bytes();
      a->set_ip(b.data(), b.size());
    }
    a->set_port(p.endpoint.port());
    a->set_node_id(p.node_id);
  }
  return frame;
}

}  // namespace meshd::net
