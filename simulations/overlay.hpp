// The simulated overlay: an undirected random graph in which every node has about `degree`
// connections in total (inbound + outbound), guaranteed connected. Stored as CSR.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace meshd::sim {

class Rng;

class Overlay {
 public:
  // Builds a connected graph: a random Hamiltonian ring (connectivity) plus a configuration
  // model over the remaining degree - 2 stubs; self-loops and duplicate edges are dropped,
  // so a few nodes end one connection short. degree < 2 gives a random tree.
  static Overlay random(int nodes, int degree, Rng& rng);
  // For tests: from an explicit edge list.
  static Overlay from_edges(int nodes, const std::vector<std::pair<int, int>>& edges);

  int nodes() const { return static_cast<int>(offsets_.size()) - 1; }
  std::span<const std::uint32_t> neighbours(int n) const {
    return {adj_.data() + offsets_[n], adj_.data() + offsets_[n + 1]};
  }
  // Position of `peer` in neighbours(n), or -1.
  int index_of(int n, std::uint32_t peer) const;
  // Index of the directed edge n -> neighbours(n)[i] in [0, directed_edges()).
  std::uint32_t edge_id(int n, int i) const { return offsets_[n] + i; }
  std::size_t directed_edges() const { return adj_.size(); }
  double mean_degree() const { return nodes() ? double(adj_.size()) / nodes() : 0; }

  // Exact diameter in hops (64 BFS sources at a time with bit-parallel frontiers); -1 if
  // the graph is disconnected.
  int diameter() const;
  bool connected() const;

 private:
  std::vector<std::uint32_t> offsets_;
  std::vector<std::uint32_t> adj_;
};

}  // namespace meshd::sim
