// One policy run of a scenario: N simulated nodes, each the real core::Node + trust::Engine,
// connected by simulated links, driven by a discrete-event loop on a virtual clock.
// Deterministic: every random draw comes from a stream seeded by the model's seed, ties in
// the event queue are broken by insertion order, and nothing reads a clock except wall_s.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "meshd/core/config.hpp"
#include "meshd/core/node.hpp"
#include "simulations/event_queue.hpp"
#include "simulations/model.hpp"
#include "simulations/opener.hpp"
#include "simulations/rng.hpp"
#include "simulations/run_result.hpp"
#include "trust/engine.hpp"
#include "trust/params.hpp"

namespace meshd::sim {

class World {
 public:
  // `params.mode` selects the policy of this run.
  World(std::shared_ptr<const Model> model, const trust::Params& params,
        const core::Config& config);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  RunResult run();
  // > 0: print a progress line on stderr about every `every_s` wall seconds and at the end.
  void set_progress(double every_s) { progress_every_s_ = every_s; }

 private:
  enum Kind : std::uint8_t {
    kDeliver,
    kTick,
    kEmit,
    kPublishProof,
    kSample,
    kPartition,
    kHeal,
    kCrash,
    kRestart,
    kReconnect,
  };

  // The usage interface of one node's cost model: expected flows over the usage window from
  // the traffic model (analytic, see README.md).
  class Usage final : public trust::UsageSource {
   public:
    Usage(const Model& m, std::uint32_t n) : m_(m), n_(n) {}
    std::uint64_t flows(const Prefix& target, TimeMs now) const override;
    trust::BenignEvidence evidence(const Prefix& target, TimeMs now) const override;

   private:
    const Model& m_;
    std::uint32_t n_;
  };

  struct ActiveBlock {
    std::uint32_t target;
    SimTimeUs since;
    SimTimeUs expires;
    double rate;  // benign flows/s this block denies
  };

  struct SimNode {
    std::uint32_t id = 0;
    Usage usage;
    // Held in place (not behind a pointer): every delivery touches them.
    std::optional<trust::Engine> engine;
    core::SplitMix64 rng{0};
    std::optional<core::Node> node;
    bool up = true;
    SimTimeUs tick_at = -1;  // time of the live tick event, -1 if none
    std::uint64_t quarantines_seen = 0;
    std::vector<ActiveBlock> blocks;
    SimTimeUs restarted_at = -1;
    // Only for nodes that will crash: what the daemon's store holds (persist - forget).
    bool keeps_store = false;
    std::vector<std::pair<core::EventId, core::Envelope>> store;
    std::string saved_ledger;  // serialised trust ledger at crash time

    SimNode(const Model& m, std::uint32_t n) : id(n), usage(m, n) {}
  };

  struct Edge {  // one undirected overlay link, stored at its lower endpoint's directed id
    std::uint32_t a = 0, b = 0;
    bool connected = false;
    std::uint32_t epoch = 0;     // bumped on every disconnect: in-flight messages die
    std::uint8_t cut = 0;        // number of active partitions separating a and b
    SimTimeUs banned_until = 0;  // a core ordered a disconnect until then
  };

  struct InFlight {
    core::Message message;
    std::uint32_t from = 0;
    std::uint32_t edge = 0;
    std::uint32_t epoch = 0;
  };

  void make_node(std::uint32_t n, SimTimeUs now);
  void schedule_static_events();
  void handle(const Event& e);
  void prefetch_ahead();
  void report_progress(SimTimeUs now, SimTimeUs end, bool last);
  void apply(SimNode& sn, core::Actions& acts, SimTimeUs now, bool from_tick);
  core::Actions take_actions();
  void give_back(core::Actions&& a);
  void send(std::uint32_t from, std::uint32_t to, core::Message&& msg, SimTimeUs now);
  void deliver(const Event& e);
  void emit(std::uint32_t claim_index, SimTimeUs now);
  void publish_proof(std::uint32_t node, std::uint32_t proof, SimTimeUs now);
  void refresh_edge(std::uint32_t edge, SimTimeUs now);
  void crash(std::uint32_t n, SimTimeUs now);
  void restart(std::uint32_t n, SimTimeUs now);
  void schedule_tick(SimNode& sn, TimeMs deadline, SimTimeUs now, bool from_tick);
  std::uint32_t edge_of(std::uint32_t a, std::uint32_t b) const;
  std::uint32_t alloc_slot();

  // Metrics (world_metrics.cpp).
  void on_block_change(SimNode& sn, const trust::BlockChange& c, SimTimeUs now);
  void close_block(SimNode& sn, std::size_t i, SimTimeUs now);
  void on_persist(SimNode& sn, const core::Persist& p, SimTimeUs now);
  void on_emitted(std::uint32_t claim_index, SimTimeUs now);
  void check_quarantine(SimNode& sn, SimTimeUs now);
  void take_sample(SimTimeUs now);
  void on_heal(std::size_t partition, SimTimeUs now);
  void finish(SimTimeUs end);
  void count_claim_envelopes(const core::Message& m);
  void add_counters(const SimNode& sn);

  std::shared_ptr<const Model> model_;
  const Model& m_;
  trust::Params params_;
  core::Config config_;
  SimOpener opener_;
  EventQueue queue_;
  Rng link_rng_;
  std::vector<SimNode> nodes_;            // reserved once: Usage objects are referenced by engines
  std::vector<Edge> edges_;               // indexed by canonical directed edge id
  std::vector<std::uint32_t> canonical_;  // directed edge id -> canonical id
  std::vector<SimTimeUs> last_arrival_;   // directed edge id -> FIFO bound
  std::vector<InFlight> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::vector<core::Actions> spare_actions_;

  // Per-run sequence numbers (proofs share the signer's seq space with its claims).
  std::vector<std::uint64_t> next_seq_;    // by identity index
  std::vector<std::uint64_t> claim_seq_;   // claim index -> seq it was issued with (0 = not)
  std::vector<core::Envelope> claim_env_;  // claim index -> envelope (built at emission)
  std::vector<std::uint32_t> proof_node_;  // proof index -> reporter
  std::size_t next_claim_ = 0;

  // Metrics state.
  RunResult r_;
  std::vector<std::uint64_t> received_;  // bitset (claim index x node)
  std::vector<char> issued_;             // claim index -> emitted
  std::size_t honest_nodes_ = 0;
  std::size_t honest_up_ = 0;                                     // honest nodes currently up
  double closed_harm_ = 0, open_rate_ = 0, open_rate_since_ = 0;  // harm accounting
  double closed_protected_ = 0, open_prot_rate_ = 0, open_prot_since_ = 0;
  std::vector<std::uint64_t> heal_pending_;  // per partition: pairs still missing
  std::uint64_t enforced_benign_ = 0, enforced_malicious_ = 0, enforced_protected_ = 0;
  std::vector<SimTimeUs> tp_first_enforce_;  // (node x malicious) -> first enforcement
  std::vector<std::uint32_t> adversary_ids_;
  std::vector<SimTimeUs> first_offence_;                // by adversary_ids_ index
  std::vector<std::vector<SimTimeUs>> quarantined_at_;  // adversary x node
  std::vector<SimTimeUs> heal_at_;
  std::vector<std::pair<std::string, std::uint64_t>> counters_;
  std::uint64_t links_up_ = 0;

  // Progress lines (host measurements only, never part of the results).
  double progress_every_s_ = 0;
  std::chrono::steady_clock::time_point progress_start_{}, progress_last_{};
  std::uint64_t progress_events_ = 0;  // r_.events at the last line
};

}  // namespace meshd::sim
