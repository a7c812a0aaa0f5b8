// Cold-start overlay formation (label netns, root): a fleet started all at once, every node
// seeded with every other node's address (as from a Kubernetes headless Service), must form
// ONE connected overlay without isolated nodes within seconds, and every node must then
// reach its target degree. The overlay is checked at a fixed moment after the start, rebuilt
// from the daemons' peer_up / peer_down events, so polling cannot disturb the formation.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "meshd/common/clock.hpp"
#include "tests/netns/mesh/mesh_cluster.hpp"

namespace meshd::test {
namespace {

using nlohmann::json;

std::string describe(const OverlayReplay::PeerSets& peers) {
  std::string out;
  const auto degrees = OverlayReplay::degrees(peers);
  for (std::size_t i = 0; i < degrees.size(); ++i)
    out += "node" + std::to_string(i + 1) + ":" + std::to_string(degrees[i]) + " ";
  return out;
}

TEST(MeshFormation, FleetStartedAtOnceIsOneComponentWithoutIsolatedNodesWithinSeconds) {
  MESHD_SKIP_UNLESS_ROOT();
  constexpr int kNodes = 24;
  constexpr int kProbeMs = 8000;  // "shortly after start", with room for a loaded CI machine
  constexpr int kTarget = 8;      // mesh.target_peers default
  MeshOptions o;
  o.nodes = kNodes;
  o.log_level = "warn";
  MeshCluster mesh(o);
  const std::int64_t started = wall_now_ms();
  mesh.start_all();
  // Hands off until the probe moment: the answer comes from the daemons' own event logs.
  std::this_thread::sleep_for(std::chrono::milliseconds(kProbeMs + 200));

  const OverlayReplay replay = OverlayReplay::of(mesh);
  const auto probe = replay.at(started + kProbeMs);
  int largest = 0;
  const int components = OverlayReplay::components(probe, &largest);
  int isolated = 0;
  for (int d : OverlayReplay::degrees(probe)) isolated += d == 0;
  EXPECT_EQ(isolated, 0) << "degrees at " << kProbeMs << " ms: " << describe(probe);
  EXPECT_EQ(components, 1) << "largest component " << largest << " of " << kNodes
                           << "; degrees: " << describe(probe);

  // Every node reaches the target degree (the dialer keeps dialing until it does).
  const bool at_target = wait_until(
      [&] {
        for (int i = 1; i <= kNodes; ++i) {
          json s = mesh.ctl_json(i, "status");
          if (s.is_null() || s.value("peers", 0) < kTarget) return false;
        }
        return true;
      },
      20000);
  const auto now_peers = OverlayReplay::of(mesh).at(wall_now_ms());
  EXPECT_TRUE(at_target) << "degrees now: " << describe(now_peers);
  EXPECT_EQ(OverlayReplay::components(now_peers), 1);
  if (HasFailure()) std::cerr << mesh.logs(10);
}

}  // namespace
}  // namespace meshd::test
