// Peer exchange frames as a peer sends them (meshd/net/peer_exchange.hpp): sealed after the
// handshake, or plaintext in place of a full node's HelloAuth (a redirect). Input: the frame
// payload, parsed as a Frame; one holding a PeerExchange goes through decode_peer_exchange.
// Properties: decoding either fails with pex_version (version != 1) or pex_malformed
// (listen_port > 65535), or keeps at most kMaxPeerExchangeAddresses distinct, dialable
// addresses with node ids of at most kMaxPeerExchangeNodeId bytes, and accounts for every
// entry (kept + dropped = sent); encoding what was kept decodes to the same addresses, flags
// and port with nothing dropped (decode -> encode -> decode is stable).
#include <cstdint>
#include <string>

#include "meshd/net/peer_exchange.hpp"
#include "tests/fuzz/targets/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meshd::net;
  meshd::v1::Frame frame;
  if (!frame.ParseFromArray(data, static_cast<int>(size)) || !frame.has_peer_exchange()) return 0;
  const meshd::v1::PeerExchange& msg = frame.peer_exchange();
  auto pex = decode_peer_exchange(msg);
  if (!pex) {
    const std::string& code = pex.error().code;
    FUZZ_CHECK(code == "pex_version" || code == "pex_malformed");
    FUZZ_CHECK(code != "pex_version" || msg.version() != kPeerExchangeVersion);
    FUZZ_CHECK(code != "pex_malformed" || msg.listen_port() > 65535);
    FUZZ_CHECK(!pex.error().message.empty());
    return 0;
  }
  FUZZ_CHECK(msg.version() == kPeerExchangeVersion);
  FUZZ_CHECK(pex->peers.size() <= kMaxPeerExchangeAddresses);
  FUZZ_CHECK(pex->peers.size() + pex->dropped == static_cast<std::size_t>(msg.peers_size()));
  FUZZ_CHECK(pex->listen_port == msg.listen_port());
  FUZZ_CHECK(pex->redirect == msg.redirect());
  for (std::size_t i = 0; i < pex->peers.size(); ++i) {
    FUZZ_CHECK(dialable(pex->peers[i].endpoint));
    FUZZ_CHECK(pex->peers[i].node_id.size() <= kMaxPeerExchangeNodeId);
    for (std::size_t j = 0; j < i; ++j)
      FUZZ_CHECK(!(pex->peers[j].endpoint == pex->peers[i].endpoint));
  }
  const meshd::v1::Frame again = encode_peer_exchange(*pex);
  meshd::v1::Frame reparsed;
  FUZZ_CHECK(reparsed.ParseFromString(again.SerializeAsString()));
  FUZZ_CHECK(reparsed.has_peer_exchange());
  auto second = decode_peer_exchange(reparsed.peer_exchange());
  FUZZ_CHECK(second.has_value());
  FUZZ_CHECK(second->peers == pex->peers);
  FUZZ_CHECK(second->redirect == pex->redirect);
  FUZZ_CHECK(second->listen_port == pex->listen_port);
  FUZZ_CHECK(second->dropped == 0);
  return 0;
}
