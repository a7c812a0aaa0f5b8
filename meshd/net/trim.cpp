// Trimming surplus connections (TransportLimits::trim_surplus, wire: meshd.v1.Trim).
//
// A fleet started at once ends with about twice target_peers per node: every node dials
// target_peers at once and accepts up to max_peers. Every claim is pushed over every link, so
// the surplus costs two frames per link and claim. Once a node saw no peer come up for
// trim_settle and has no dial in flight, it asks one peer at a time, picked at random, whether
// they may drop their link, naming its other peers. The peer agrees only if
//   * it keeps more than target_peers peers itself (counting the link it is asked about), and
//   * it is connected to one of the named nodes (a witness: the link lies on a triangle), and
//   * it is in no other trim (neither asking nor waiting for a close it agreed to).
// The asker closes the link on the agreement (if it still has the surplus). Because each node
// takes part in one trim at a time, the two links through the witness cannot be dropped while
// this one is: every dropped link had another path between its ends at that moment, so
// trimming never isolates a node nor splits the overlay, and both ends keep >= target_peers.
#include "meshd/common/asio.hpp"

#include <spdlog/spdlog.h>

#include "meshd/net/transport_impl.hpp"

namespace meshd::net {

using asio::redirect_error;
using asio::use_awaitable;
using boost::system::error_code;

namespace {
constexpr std::uint32_t kTrimVersion = 1;
// A request names at most this many neighbours; a reader looks at no more.
constexpr int kMaxTrimNeighbours = 64;
// An unanswered request is given up after this; an agreement whose peer did not close by then
// lapses (the asker only closes if the answer came within kTrimAskTimeout, which is shorter).
constexpr auto kTrimAskTimeout = std::chrono::milliseconds(1500);
constexpr auto kTrimGrantTimeout = std::chrono::milliseconds(3000);
// A peer that refused is not asked again before this, doubled with each refusal up to 16x
// (its peers change meanwhile; a node stuck above target_peers among peers at target_peers
// would otherwise ask each of them every few seconds for ever).
constexpr auto kTrimRefusedFor = std::chrono::milliseconds(3000);
constexpr unsigned kTrimRefusedMaxShift = 4;

std::chrono::milliseconds jitter_ms(std::uint32_t lo, std::uint32_t hi) {
  return std::chrono::milliseconds(lo + randombytes_uniform(hi - lo + 1));
}

v1::Frame trim_frame(bool reply, bool accept) {
  v1::Frame frame;
  v1::Trim* t = frame.mutable_trim();
  t->set_version(kTrimVersion);
  t->set_reply(reply);
  t->set_accept(accept);
  return frame;
}
}  // namespace

bool TransportImpl::trim_busy(SteadyTime now) {
  if (trim_asked_ != 0 && now - trim_asked_at_ >= kTrimAskTimeout) trim_asked_ = 0;
  if (trim_granted_ != 0 && now >= trim_granted_until_) trim_granted_ = 0;
  return trim_asked_ != 0 || trim_granted_ != 0;
}

asio::awaitable<void> TransportImpl::trim_loop(std::shared_ptr<TransportImpl> self) {
  while (!self->stopped_) {
    const auto wait = self->trim_round(std::chrono::steady_clock::now());
    self->trim_timer_.expires_after(wait);
    error_code ec;
    co_await self->trim_timer_.async_wait(redirect_error(use_awaitable, ec));
  }
}

std::chrono::steady_clock::duration TransportImpl::trim_round(SteadyTime now) {
  const auto settle = limits_.trim_settle;
  if (now < trim_pause_until_) return trim_pause_until_ - now;
  if (trim_busy(now)) return jitter_ms(100, 300);
  if (by_node_.size() <= limits_.target_peers) return settle;
  // Still forming: peers coming up or our own dials under way.
  if (dials_in_flight() > 0) return settle / 2 + jitter_ms(0, 200);
  if (now - last_peer_up_ < settle) return (last_peer_up_ + settle - now) + jitter_ms(0, 200);
  std::vector<std::shared_ptr<Connection>> pick;
  for (const auto& [node, id] : by_node_) {
    const auto& c = conns_.at(id);
    if (c->state() != Connection::State::up || (c->peer_features() & feature_trim) == 0) continue;
    if (c->up_for() < settle || c->trim_refused_until() > now) continue;
    pick.push_back(c);
  }
  if (pick.empty()) return settle / 2 + jitter_ms(0, 200);
  const auto& to = pick[randombytes_uniform(static_cast<std::uint32_t>(pick.size()))];
  v1::Frame frame = trim_frame(false, false);
  int named = 0;
  for (const auto& [node, id] : by_node_) {
    if (id == to->id()) continue;
    if (++named > kMaxTrimNeighbours) break;
    frame.mutable_trim()->add_neighbours(node);
  }
  to->send_transport_frame(frame);
  stats_.trim_requests_sent++;
  trim_asked_ = to->id();
  trim_asked_at_ = now;
  spdlog::debug("net: {} peers, target {}: asked node '{}' to drop our link", by_node_.size(),
                limits_.target_peers, to->cert().node_id());
  return kTrimAskTimeout;  // the answer kicks the timer earlier
}

void TransportImpl::on_trim(Connection& conn, const v1::Trim& msg) {
  const auto now = std::chrono::steady_clock::now();
  if (msg.version() != kTrimVersion) {
    stats_.trim_rejected++;
    if (!msg.reply()) conn.send_transport_frame(trim_frame(true, false));
    return;
  }
  if (!msg.reply()) {
    const std::string& asker = conn.cert().node_id();
    bool ok = limits_.trim_surplus && !trim_busy(now) && by_node_.size() > limits_.target_peers;
    if (ok) {
      ok = false;
      const int n = std::min(msg.neighbours_size(), kMaxTrimNeighbours);
      for (int i = 0; i < n && !ok; ++i) {
        const std::string& w = msg.neighbours(i);
        ok = w != asker && w != identity_.node_cert.node_id() && by_node_.contains(w);
      }
    }
    if (ok) {
      trim_granted_ = conn.id();
      trim_granted_until_ = now + kTrimGrantTimeout;
      stats_.trim_requests_granted++;
    } else {
      stats_.trim_requests_refused++;
    }
    conn.send_transport_frame(trim_frame(true, ok));
    return;
  }
  if (trim_asked_ != conn.id()) {  // unsolicited, or answered after we gave up
    stats_.trim_rejected++;
    return;
  }
  const bool in_time = now - trim_asked_at_ < kTrimAskTimeout;
  trim_asked_ = 0;
  if (!msg.accept()) {
    stats_.trim_refusals_received++;
    const unsigned shift = std::min(conn.trim_refusals(), kTrimRefusedMaxShift);
    conn.trim_refused(now + kTrimRefusedFor * (1u << shift) + jitter_ms(0, 1000));
  } else if (in_time && by_node_.size() > limits_.target_peers) {
    stats_.trims++;
    conn.close_gracefully("surplus link dropped by agreement (" + std::to_string(by_node_.size()) +
                          " peers, target " + std::to_string(limits_.target_peers) + ")");
  }
  // Next request soon, after a pause that keeps the fleet's requests out of step.
  trim_pause_until_ = now + jitter_ms(20, 120);
  trim_timer_.cancel();
}

}  // namespace meshd::net
