// Test support: a fake EventOpener over a shared registry of events, and a tiny network
// harness that delivers core Messages between Nodes in FIFO order on a manual clock.
// Envelope bytes are opaque tokens ("ev:17"); the registry says what each token decodes to
// and whether its "signature" verifies, so tests model who signed what without crypto.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "meshd/core/node.hpp"
#include "meshd/core/opener.hpp"
#include "trust/engine.hpp"

namespace meshd::core::test {

inline constexpr TimeMs kT0 = 1'700'000'000'000;  // a realistic Unix ms start

struct Spec {
  EventKind kind = EventKind::claim;
  std::string origin = "n1";
  std::string domain = "d1";
  std::uint64_t seq = 1;
  TimeMs issued_at = kT0;
  std::string prefix = "203.0.113.7/32";
  double confidence = 0.9;
  Severity severity = Severity::high;
  DurationMs ttl = kHour;
  std::string salt{};  // different salt = different body (equivocation)
  bool signature_ok = true;
  bool stale = false;
  // retraction
  std::uint64_t retract_seq = 0;
  // operator decision
  trust::OperatorDecision decision{};
  // proof
  std::string accused{};
  MisbehaviourKind proof_kind = MisbehaviourKind::equivocation;
  std::vector<Envelope> evidence{};
};

class Registry {
 public:
  // Registers `s` and returns its envelope. `resign` = same body, new signature bytes.
  Envelope make(const Spec& s) {
    const std::string token = "ev:" + std::to_string(specs_.size());
    specs_.emplace(token, s);
    return make_envelope(token);
  }
  const Spec* find(const std::string& bytes) const {
    auto it = specs_.find(bytes);
    return it == specs_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::string, Spec> specs_;
};

inline EventId fake_id(const std::string& bytes) {
  EventId id{};
  for (int k = 0; k < 4; ++k) {  // FNV-1a with four seeds: deterministic, non-zero
    std::uint64_t h =
        1469598103934665603ULL ^ static_cast<std::uint64_t>(k + 1) * 0x9e3779b97f4a7c15ULL;
    for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ULL;
    for (int b = 0; b < 8; ++b)
      id[static_cast<std::size_t>(k * 8 + b)] = static_cast<std::uint8_t>(h >> (8 * b));
  }
  return id;
}

inline trust::Digest body_digest(const Spec& s) {
  std::string body = std::to_string(static_cast<int>(s.kind)) + "|" + s.origin + "|" +
                     std::to_string(s.seq) + "|" + s.prefix + "|" + std::to_string(s.confidence) +
                     "|" + std::to_string(s.retract_seq) + "|" + s.accused + "|" + s.salt;
  return fake_id(body);
}

class FakeOpener final : public EventOpener {
 public:
  explicit FakeOpener(const Registry& r) : reg_(r) {}

  EventId event_id(const std::string& envelope) const override { return fake_id(envelope); }
  Result<SignedEvent> open(const std::string& envelope, TimeMs now) override {
    ++opens[envelope];
    return decode(envelope, now, true);
  }
  // Off unless a test turns it on (the production opener peeks; the simulator's does not).
  std::optional<UnverifiedOrigin> peek(const std::string& envelope) const override {
    if (!peeks) return std::nullopt;
    const Spec* s = reg_.find(envelope);
    if (s == nullptr) return std::nullopt;
    return UnverifiedOrigin{s->origin, s->seq, s->kind == EventKind::operator_decision};
  }
  bool peeks = false;
  Result<SignedEvent> open_evidence(const std::string& envelope, TimeMs now) override {
    ++evidence_opens;
    return decode(envelope, now, false);
  }

  std::map<std::string, int> opens;
  int evidence_opens = 0;

 private:
  Result<SignedEvent> decode(const std::string& bytes, TimeMs, bool fresh) const {
    const Spec* s = reg_.find(bytes);
    if (s == nullptr) return fail("malformed", "not an envelope: " + bytes);
    if (!s->signature_ok)
      return fail("bad_signature", "signature of " + bytes + " does not verify");
    if (fresh && s->stale) return fail("stale", bytes + " is outside the freshness window");
    SignedEvent ev;
    ev.kind = s->kind;
    ev.origin = trust::Origin{s->origin, s->domain};
    ev.seq = s->seq;
    ev.body_digest = body_digest(*s);
    ev.issued_at = s->issued_at;
    switch (s->kind) {
      case EventKind::claim: {
        trust::ClaimFacts f;
        f.origin = ev.origin;
        f.seq = s->seq;
        f.prefix = *Prefix::parse(s->prefix);
        f.direction = Direction::both;
        f.detector = "test";
        f.severity = s->severity;
        f.confidence = s->confidence;
        f.issued_at = s->issued_at;
        f.requested_ttl = s->ttl;
        ev.body = f;
        break;
      }
      case EventKind::retraction:
        ev.body = RetractionBody{s->retract_seq, std::nullopt, "test"};
        break;
      case EventKind::operator_decision:
        ev.body = s->decision;
        break;
      case EventKind::misbehaviour_proof:
        ev.body = ProofBody{s->accused, s->proof_kind, s->evidence, "test proof"};
        break;
    }
    return ev;
  }
  const Registry& reg_;
};

// One node with its own engine, opener and rng.
struct TestNode {
  TestNode(const Registry& reg, std::string name, std::string domain, Config cfg = Config{},
           std::uint64_t seed = 1, trust::Params params = trust::Params{},
           std::vector<trust::ProtectedPrefix> protected_prefixes = {})
      : opener(reg),
        rng(seed),
        engine(params,
               trust::LocalContext{trust::Origin{name, domain}, std::move(protected_prefixes),
                                   nullptr},
               kT0),
        node(Node::create(cfg, engine, opener, rng).value()),
        name(std::move(name)) {}
  FakeOpener opener;
  SplitMix64 rng;
  trust::Engine engine;
  Node node;
  std::string name;
};

// Delivers one message from a driver-side fake peer (brought up on first use).
inline Actions inject(TestNode& t, PeerId fake_peer, Message m, TimeMs now) {
  if (!t.node.peer(fake_peer, now) || !t.node.peer(fake_peer, now)->connected) {
    t.node.on_peer_up(fake_peer, now);
  }
  return t.node.on_message(fake_peer, m, now);
}

// Sends of one Actions, by peer.
inline std::vector<const Send*> sends_to(const Actions& a, PeerId peer) {
  std::vector<const Send*> v;
  for (const Send& s : a.sends)
    if (s.peer == peer) v.push_back(&s);
  return v;
}

inline std::size_t push_count(const Actions& a) {
  std::size_t n = 0;
  for (const Send& s : a.sends) n += std::holds_alternative<Push>(s.message) ? 1 : 0;
  return n;
}

// A full mesh or any graph of nodes; node i's peer id for node j is j. Messages are
// delivered in FIFO order with zero latency; the clock is advanced by the test.
class Network {
 public:
  explicit Network(Registry& reg) : reg_(reg) {}
  TestNode& add(std::string name, std::string domain, Config cfg = Config{},
                std::uint64_t seed = 1) {
    nodes_.push_back(
        std::make_unique<TestNode>(reg_, std::move(name), std::move(domain), cfg, seed));
    return *nodes_.back();
  }
  TestNode& at(std::size_t i) { return *nodes_[i]; }
  std::size_t size() const { return nodes_.size(); }
  std::size_t in_flight() const { return queue_.size(); }
  void drop_in_flight() { queue_.clear(); }

  void link(std::size_t a, std::size_t b, TimeMs now) {
    links_.insert({a, b});
    links_.insert({b, a});
    Actions x;
    nodes_[a]->node.on_peer_up(b, now, x);
    absorb(a, x);
    Actions y;
    nodes_[b]->node.on_peer_up(a, now, y);
    absorb(b, y);
  }
  void unlink(std::size_t a, std::size_t b, TimeMs now) {
    links_.erase({a, b});
    links_.erase({b, a});
    Actions x;
    nodes_[a]->node.on_peer_down(b, now, x);
    absorb(a, x);
    Actions y;
    nodes_[b]->node.on_peer_down(a, now, y);
    absorb(b, y);
  }
  // Node `i` signs and publishes an event.
  void publish(std::size_t i, const Envelope& env, TimeMs now) {
    Actions a;
    auto r = nodes_[i]->node.on_local_event(env, now, a);
    if (!r) throw std::runtime_error(r.error().message);
    absorb(i, a);
  }
  void absorb(std::size_t from, Actions& a) {
    for (Send& s : a.sends)
      queue_.push_back({from, static_cast<std::size_t>(s.peer), std::move(s.message)});
    for (auto& b : a.blocks) blocks[from].push_back(b);
    for (auto& p : a.persist) persisted[from].push_back(p.envelope);
    for (auto& p : a.proofs) proofs[from].push_back(p);
    for (auto& d : a.disconnects) disconnects[from].push_back(d);
  }
  // Delivers until no message is in flight; returns deliveries.
  std::size_t run(TimeMs now, std::size_t limit = 1'000'000) {
    std::size_t n = 0;
    while (!queue_.empty() && n < limit) {
      Item it = std::move(queue_.front());
      queue_.pop_front();
      if (!links_.count({it.from, it.to})) continue;  // link cut: lost
      ++n;
      Actions a;
      nodes_[it.to]->node.on_message(it.from, it.msg, now, a);
      absorb(it.to, a);
    }
    return n;
  }
  void tick_all(TimeMs now) {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      Actions a;
      nodes_[i]->node.tick(now, a);
      absorb(i, a);
    }
  }
  std::map<std::size_t, std::vector<trust::BlockChange>> blocks;
  std::map<std::size_t, std::vector<Envelope>> persisted;
  std::map<std::size_t, std::vector<ProofRequest>> proofs;
  std::map<std::size_t, std::vector<Disconnect>> disconnects;

 private:
  struct Item {
    std::size_t from, to;
    Message msg;
  };
  Registry& reg_;
  std::vector<std::unique_ptr<TestNode>> nodes_;
  std::set<std::pair<std::size_t, std::size_t>> links_;
  std::deque<Item> queue_;
};

}  // namespace meshd::core::test
