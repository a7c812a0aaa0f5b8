// The dialer: seeds -> resolved candidate addresses -> outbound connections, keeping about
// target_peers connections with jittered exponential back-off per address.
#include "meshd/common/asio.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "meshd/net/transport_impl.hpp"

namespace meshd::net {

using asio::redirect_error;
using asio::use_awaitable;
using boost::system::error_code;

namespace {
// Without any event, the dialer still wakes this often (ban expiry, lost wake-ups).
constexpr auto dial_recheck = std::chrono::seconds(5);
// A seed that failed to resolve is retried sooner than the normal refresh.
constexpr auto resolve_retry = std::chrono::seconds(5);
}  // namespace

Result<void> TransportImpl::add_seed(std::string_view text) {
  auto seed = parse_seed(text);
  if (!seed) return std::unexpected(seed.error());
  seeds_.push_back(std::move(*seed));
  seeds_changed_ = true;
  start();
  resolve_timer_.cancel();  // resolve now if the loop is sleeping
  return {};
}

void TransportImpl::kick_dialer() {
  if (!stopped_) dial_timer_.cancel();
}

std::size_t TransportImpl::live_count() const {
  std::size_t n = 0;
  for (const auto& [id, conn] : conns_) {
    // Inbound connections count once they are up; our own pending dials count at once.
    if (conn->announced() ||
        (conn->outbound() && conn->state() == Connection::State::handshaking)) {
      ++n;
    }
  }
  return n;
}

std::size_t TransportImpl::dials_in_flight() const {
  std::size_t n = 0;
  for (const auto& [id, conn] : conns_)
    if (conn->outbound() && conn->state() == Connection::State::handshaking) ++n;
  return n;
}

asio::awaitable<void> TransportImpl::resolve_loop(std::shared_ptr<TransportImpl> self) {
  tcp::resolver resolver(self->io_);
  while (!self->stopped_) {
    self->seeds_changed_ = false;
    const std::uint64_t generation = ++self->generation_;
    const std::size_t seed_count = self->seeds_.size();
    std::vector<bool> resolved(seed_count, false);
    bool any_failed = false;
    for (std::size_t i = 0; i < seed_count; ++i) {
      const Seed seed = self->seeds_[i];  // copy: seeds_ may grow while we wait
      std::vector<tcp::endpoint> endpoints;
      error_code ec;
      // An IP literal needs no resolver. Each async_resolve is a round trip through the
      // resolver thread: with ~100 literal seeds on a loaded machine (a fleet starting at
      // once) that took tens of seconds before the first dial.
      const auto literal = seed.kind == Seed::Kind::host ? asio::ip::make_address(seed.host, ec)
                                                         : asio::ip::address();
      if (seed.kind == Seed::Kind::host && !ec) {
        endpoints.emplace_back(literal, seed.port);
      } else {
        ec.clear();
        // No address_configured flag: it hides loopback-only answers ("localhost" in a bare
        // network namespace).
        const std::string port = std::to_string(seed.port);
        auto results = co_await resolver.async_resolve(
            seed.host, port, tcp::resolver::numeric_service, redirect_error(use_awaitable, ec));
        if (self->stopped_) co_return;
        if (ec || results.empty()) {
          self->stats_.resolve_failures++;
          any_failed = true;
          spdlog::warn("net: cannot resolve seed '{}': {}", seed.text,
                       ec ? ec.message() : std::string("no addresses"));
          continue;
        }
        for (const auto& entry : results) endpoints.push_back(entry.endpoint());
        // Dial what is known while further names resolve.
        self->kick_dialer();
      }
      resolved[i] = true;
      for (const auto& endpoint : endpoints) {
        auto [it, fresh] = self->candidates_.try_emplace(endpoint);
        if (!fresh && it->second.seed == kLearnedSeed) {
          it->second.seed = i;  // a seed lists it too: it is no longer only learned
          --self->learned_count_;
        }
        if (fresh) {
          it->second.seed = i;
          spdlog::debug("net: seed '{}' lists {}", seed.text, to_string(endpoint));
        }
        // Every address, also for host:port: a name may list ::1 before 127.0.0.1 while
        // the peer listens on one family only. Two addresses of one node end up as one
        // connection by the duplicate rule, and the dialer then knows both are that node.
        it->second.generation = generation;
      }
    }
    // Forget addresses their seed no longer lists (pods gone), unless in use.
    std::erase_if(self->candidates_, [&](const auto& kv) {
      const Candidate& c = kv.second;
      return c.seed < seed_count && resolved[c.seed] && c.generation != generation && c.conn == 0;
    });
    self->kick_dialer();
    if (self->seeds_changed_) continue;
    self->resolve_timer_.expires_after(
        any_failed ? std::min<std::chrono::milliseconds>(self->limits_.dns_refresh, resolve_retry)
                   : self->limits_.dns_refresh);
    error_code ec;
    co_await self->resolve_timer_.async_wait(redirect_error(use_awaitable, ec));
  }
}

asio::awaitable<void> TransportImpl::dial_loop(std::shared_ptr<TransportImpl> self) {
  while (!self->stopped_) {
    const SteadyTime next = self->dial_round(std::chrono::steady_clock::now());
    self->dial_timer_.expires_at(next);
    error_code ec;
    co_await self->dial_timer_.async_wait(redirect_error(use_awaitable, ec));
  }
}

SteadyTime TransportImpl::dial_round(SteadyTime now) {
  SteadyTime next = now + dial_recheck;
  std::erase_if(bans_, [&](const auto& kv) { return kv.second <= now; });
  // Addresses learned from peers that kept failing are forgotten (seeds stay).
  std::erase_if(candidates_, [&](const auto& kv) {
    const Candidate& c = kv.second;
    const bool drop = c.seed == kLearnedSeed && c.conn == 0 && c.failures >= 4;
    if (drop) --learned_count_;
    return drop;
  });
  std::size_t live = live_count();
  if (live >= limits_.target_peers) return next;
  std::size_t in_flight = dials_in_flight();
  if (in_flight >= limits_.max_concurrent_dials) return next;  // a finished dial kicks us

  std::vector<std::map<tcp::endpoint, Candidate>::iterator> eligible;
  for (auto it = candidates_.begin(); it != candidates_.end(); ++it) {
    Candidate& c = it->second;
    if (c.self || c.conn != 0) continue;
    if (!c.node_id.empty()) {
      if (by_node_.contains(c.node_id)) continue;  // already connected (maybe inbound)
      if (auto ban = bans_.find(c.node_id); ban != bans_.end()) {
        next = std::min(next, ban->second);
        continue;
      }
    }
    if (c.next_attempt > now) {
      next = std::min(next, c.next_attempt);
      continue;
    }
    eligible.push_back(it);
  }
  // Random order spreads a fleet's dials over all pods of a headless Service; addresses a
  // peer is connected to (peer exchange, redirects) first: they are known to listen.
  for (std::size_t i = eligible.size(); i > 1; --i) {
    std::swap(eligible[i - 1], eligible[randombytes_uniform(static_cast<std::uint32_t>(i))]);
  }
  std::stable_partition(eligible.begin(), eligible.end(),
                        [](const auto& it) { return it->second.hinted; });
  for (auto it : eligible) {
    if (live >= limits_.target_peers || conns_.size() - redirecting_ >= limits_.max_peers ||
        in_flight >= limits_.max_concurrent_dials)
      break;
    dial(it->first, it->second);
    ++live;
    ++in_flight;
  }
  return next;
}

void TransportImpl::dial(const tcp::endpoint& endpoint, Candidate& candidate) {
  stats_.connections_dialed++;
  const PeerId id = next_id_++;
  auto conn = std::make_shared<Connection>(shared_from_this(), tcp::socket(io_), id, endpoint);
  conns_.emplace(id, conn);
  candidate.conn = id;
  candidate.hinted = false;
  spdlog::debug("net: dialing {}", to_string(endpoint));
  Connection::spawn(conn);
}

}  // namespace meshd::net
