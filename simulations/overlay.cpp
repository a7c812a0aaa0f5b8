#include "simulations/overlay.hpp"

#include <algorithm>
#include <numeric>
#include <unordered_set>

#include "simulations/rng.hpp"

namespace meshd::sim {

namespace {

std::uint64_t edge_key(std::uint32_t a, std::uint32_t b) {
  if (a > b) std::swap(a, b);
  return (std::uint64_t(a) << 32) | b;
}

}  // namespace

Overlay Overlay::from_edges(int nodes, const std::vector<std::pair<int, int>>& edges) {
  Overlay g;
  std::vector<std::uint32_t> deg(nodes, 0);
  for (auto [a, b] : edges) ++deg[a], ++deg[b];
  g.offsets_.assign(nodes + 1, 0);
  for (int i = 0; i < nodes; ++i) g.offsets_[i + 1] = g.offsets_[i] + deg[i];
  g.adj_.assign(g.offsets_[nodes], 0);
  std::vector<std::uint32_t> fill(g.offsets_.begin(), g.offsets_.end() - 1);
  for (auto [a, b] : edges) {
    g.adj_[fill[a]++] = b;
    g.adj_[fill[b]++] = a;
  }
  // Sorted neighbour lists make index_of a binary search and iteration order canonical.
  for (int i = 0; i < nodes; ++i)
    std::sort(g.adj_.begin() + g.offsets_[i], g.adj_.begin() + g.offsets_[i + 1]);
  return g;
}

Overlay Overlay::random(int nodes, int degree, Rng& rng) {
  std::vector<std::pair<int, int>> edges;
  std::unordered_set<std::uint64_t> have;
  auto add = [&](int a, int b) {
    if (a == b || !have.insert(edge_key(a, b)).second) return false;
    edges.emplace_back(a, b);
    return true;
  };
  std::vector<int> perm(nodes);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  if (degree < 2 || nodes < 3) {
    for (int i = 1; i < nodes; ++i) add(perm[i], perm[rng.below(i)]);
    return from_edges(nodes, edges);
  }
  for (int i = 0; i < nodes; ++i) add(perm[i], perm[(i + 1) % nodes]);
  std::vector<int> stubs;
  stubs.reserve(std::size_t(nodes) * (degree - 2));
  for (int n = 0; n < nodes; ++n)
    for (int k = 2; k < degree; ++k) stubs.push_back(n);
  std::shuffle(stubs.begin(), stubs.end(), rng);
  std::vector<int> leftover;
  for (std::size_t i = 0; i + 1 < stubs.size(); i += 2)
    if (!add(stubs[i], stubs[i + 1]))
      leftover.push_back(stubs[i]), leftover.push_back(stubs[i + 1]);
  // Re-pair the stubs that collided, a few rounds; what is left stays one short.
  for (int round = 0; round < 8 && leftover.size() > 1; ++round) {
    std::shuffle(leftover.begin(), leftover.end(), rng);
    std::vector<int> next;
    for (std::size_t i = 0; i + 1 < leftover.size(); i += 2)
      if (!add(leftover[i], leftover[i + 1]))
        next.push_back(leftover[i]), next.push_back(leftover[i + 1]);
    leftover.swap(next);
  }
  return from_edges(nodes, edges);
}

int Overlay::index_of(int n, std::uint32_t peer) const {
  auto nb = neighbours(n);
  auto it = std::lower_bound(nb.begin(), nb.end(), peer);
  return (it != nb.end() && *it == peer) ? int(it - nb.begin()) : -1;
}

bool Overlay::connected() const {
  const int n = nodes();
  if (n == 0) return true;
  std::vector<char> seen(n, 0);
  std::vector<std::uint32_t> stack{0};
  seen[0] = 1;
  int count = 1;
  while (!stack.empty()) {
    auto u = stack.back();
    stack.pop_back();
    for (auto v : neighbours(u))
      if (!seen[v]) seen[v] = 1, ++count, stack.push_back(v);
  }
  return count == n;
}

int Overlay::diameter() const {
  const int n = nodes();
  if (n <= 1) return 0;
  if (!connected()) return -1;
  int diam = 0;
  std::vector<std::uint64_t> visited(n), frontier(n), next(n);
  for (int base = 0; base < n; base += 64) {
    const int batch = std::min(64, n - base);
    std::fill(visited.begin(), visited.end(), 0);
    std::fill(frontier.begin(), frontier.end(), 0);
    for (int k = 0; k < batch; ++k) visited[base + k] = frontier[base + k] = 1ULL << k;
    // Levels until every source has reached every node: the last level index is the max
    // eccentricity over this batch.
    for (int level = 0;; ++level) {
      bool any = false;
      for (int u = 0; u < n; ++u) {
        std::uint64_t acc = 0;
        for (auto v : neighbours(u)) acc |= frontier[v];
        acc &= ~visited[u];
        next[u] = acc;
        any |= acc != 0;
      }
      if (!any) {
        diam = std::max(diam, level);
        break;
      }
      for (int u = 0; u < n; ++u) visited[u] |= next[u];
      frontier.swap(next);
    }
  }
  return diam;
}

}  // namespace meshd::sim
